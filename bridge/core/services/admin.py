"""Operating the bridge: channel accounts and their state, the homeserver's reach, and the
dead letters (what the bridge gave up on)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ...connector import ConnectorState
from ...db import DeadLetter, Portal
from .common import ServiceBase


@dataclass(frozen=True)
class ChannelInfo:
    account: str
    title: str
    state: ConnectorState
    portals: int


class AdminServices(ServiceBase):
    async def channels(self, actor: str) -> list[ChannelInfo]:
        visible = self.config.visible_accounts(actor)
        return [
            ChannelInfo(account, c.title, c.state, len(await Portal.all(account)))
            for account, c in self.connectors.items()
            if account in visible
        ]

    async def ping(self) -> tuple[int, float]:
        """The homeserver's round trip to the bridge (ms) and how long the request took."""
        started = time.monotonic()
        duration = await self.sender.ping(self.config.as_id)
        return duration, (time.monotonic() - started) * 1000

    async def dead_letters(self, actor: str) -> list[DeadLetter]:
        """The dead letters ``actor`` may see and retry: those of the accounts they are an
        admin of; one of no known account only for an admin of every account."""

        def admin_of(account: str) -> bool:
            return self.config.permission_level(actor, account) == "admin"

        everywhere = all(admin_of(account) for account in self.config.channels)
        visible = []
        for dead in await DeadLetter.all():
            account = await _account_of(dead)
            if everywhere or (account is not None and admin_of(account)):
                visible.append(dead)
        return visible

    async def retry_dead_letters(self, targets: list[DeadLetter]) -> list[int]:
        """Queue ``targets`` again; the ids of those that were."""
        retried = []
        for dead in targets:
            item = await dead.revive()
            if item is not None:
                self.dispatcher.submit(item)
                retried.append(dead.id)
        return retried


async def _account_of(dead: DeadLetter) -> str | None:
    """The channel account a dead letter belongs to, None when that cannot be told."""
    if dead.kind in ("remote", "outbound"):
        account = dead.payload.get("account")
        return account if isinstance(account, str) else None
    portal = await Portal.get_by_room(dead.room_id) if dead.room_id else None
    return portal.account if portal else None
