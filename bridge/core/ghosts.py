"""Ghost users: the Matrix users that stand for remote people."""

from __future__ import annotations

import logging
import re

from mautrix.appservice import AppServiceAPI, IntentAPI
from mautrix.types import UserID

from ..config import Config
from ..db import Ghost
from ..events import RemoteUser
from .util import escape_localpart, template_regex

log = logging.getLogger("bridge.ghosts")


class GhostManager:
    def __init__(self, config: Config, api: AppServiceAPI) -> None:
        self.config = config
        self.api = api

    def mxid(self, account: str, remote_user: str) -> UserID:
        localpart = self.config.ghost_username_template.format(
            account=escape_localpart(account), user=escape_localpart(remote_user)
        )
        return UserID(f"@{localpart}:{self.config.hs_domain}")

    def user_regex(self) -> str:
        """The registration namespace regex covering every ghost of this bridge."""
        local = template_regex(self.config.ghost_username_template, account="", user="")
        return f"@{local}:{re.escape(self.config.hs_domain)}"

    def is_ghost(self, mxid: str) -> bool:
        return re.fullmatch(self.user_regex(), mxid) is not None

    def intent(self, mxid: UserID) -> IntentAPI:
        return self.api.intent(mxid)

    def displayname(self, user: RemoteUser, channel_title: str) -> str:
        return self.config.ghost_displayname_template.format(
            name=user.displayname or user.id, channel=channel_title
        )

    async def ensure(self, account: str, user: RemoteUser, channel_title: str) -> IntentAPI:
        """Register the ghost for ``user`` if needed and keep its display name current."""
        ghost = await Ghost.get(account, user.id)
        mxid = UserID(ghost.mxid) if ghost else self.mxid(account, user.id)
        intent = self.intent(mxid)
        name = self.displayname(user, channel_title)
        if ghost is None:
            await intent.ensure_registered()
            await intent.set_displayname(name)
            ghost = Ghost(account, user.id, mxid, name, user.avatar_url)
            await ghost.insert()
        elif ghost.displayname != name and (user.displayname or not ghost.displayname):
            await intent.set_displayname(name)
            ghost.displayname = name
            await ghost.save()
        return intent
