"""What every service uses: the parts of the core, and the permission check."""

from __future__ import annotations

from ...config import Config
from ...connector import NetworkConnector
from ..dispatcher import Dispatcher
from ..ghosts import GhostManager
from ..notices import Notices
from ..portals import PortalManager
from ..sender import MatrixSender
from .errors import PermissionDenied, allowed


class ServiceBase:
    def __init__(
        self,
        config: Config,
        connectors: dict[str, NetworkConnector],
        sender: MatrixSender,
        portals: PortalManager,
        ghosts: GhostManager,
        notices: Notices,
        dispatcher: Dispatcher,
    ) -> None:
        self.config = config
        self.connectors = connectors
        self.sender = sender
        self.portals = portals
        self.ghosts = ghosts
        self.notices = notices
        self.dispatcher = dispatcher

    # ------------------------------------------------------------------ permissions

    def level(self, actor: str, account: str | None = None) -> str:
        """``actor``'s level on ``account`` (without one: their highest on any account)."""
        return self.config.permission_level(actor, account)

    def check(self, actor: str, account: str, needed: str = "staff") -> None:
        """Raise ``ServiceError`` unless ``actor`` has ``needed`` on ``account``. An account
        they may not see is answered like one that does not exist."""
        level = self.level(actor, account)
        if account not in self.connectors or level == "none":
            raise PermissionDenied(
                f"There is no channel account {account!r} you may use. See `channels`."
            )
        if not allowed(level, needed):
            raise PermissionDenied(f"You need the {needed} permission on {account} for this.")

    def is_own(self, user: str) -> bool:
        return self.ghosts.is_own(user)
