"""Ghost users: the Matrix users that stand for remote people."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from mautrix.types import UserID

from ..config import Config
from ..db import Ghost
from ..events import RemoteUser
from ..logsafe import pii
from .sender import MatrixSender
from .util import (
    MAX_ID_BYTES,
    MAX_NAME_CHARS,
    cut_name,
    escape_localpart,
    fit_localpart,
    template_regex,
)

log = logging.getLogger("bridge.ghosts")


class GhostManager:
    def __init__(self, config: Config, sender: MatrixSender) -> None:
        self.config = config
        self.sender = sender
        self._ghost_re = re.compile(self.user_regex())

    def mxid(self, account: str, remote_user: str) -> UserID:
        """The user ID of a new ghost (existing ghosts keep the one stored with them): a
        remote id too long for the homeserver's limit is shortened to a prefix and a hash."""
        template = self.config.ghost_username_template
        account_part = escape_localpart(account)
        rest = len(f"@:{self.config.hs_domain}".encode()) + len(
            template.format(account=account_part, user="")
        )
        user_part = fit_localpart(escape_localpart(remote_user), MAX_ID_BYTES - rest)
        localpart = template.format(account=account_part, user=user_part)
        return UserID(f"@{localpart}:{self.config.hs_domain}")

    def user_regex(self) -> str:
        """The registration namespace regex covering every ghost of this bridge."""
        local = template_regex(self.config.ghost_username_template, account="", user="")
        return f"@{local}:{re.escape(self.config.hs_domain)}"

    def is_ghost(self, mxid: str) -> bool:
        return self._ghost_re.fullmatch(mxid) is not None

    def is_own(self, mxid: str) -> bool:
        """The bridge's own users: the bot and every ghost."""
        return mxid == self.config.bot_mxid or self.is_ghost(mxid)

    def displayname(self, user: RemoteUser, channel_title: str) -> str:
        """The ghost's display name, at most ``MAX_NAME_CHARS`` long (the remote name is cut,
        the channel kept)."""
        template = self.config.ghost_displayname_template
        name = user.displayname or user.id
        full = template.format(name=name, channel=channel_title)
        if len(full) > MAX_NAME_CHARS:
            room = len(name) - (len(full) - MAX_NAME_CHARS)
            full = template.format(name=cut_name(name, max(room, 1)), channel=channel_title)
        return cut_name(full)

    async def ensure(
        self,
        account: str,
        user: RemoteUser,
        channel_title: str,
        fetch: Callable[[str], Awaitable[tuple[bytes, str]]] | None = None,
    ) -> UserID:
        """Register the ghost for ``user`` if needed and keep its display name and avatar
        current. ``fetch`` downloads a remote avatar URL (the connector's downloader).
        Returns the ghost's user ID."""
        ghost = await Ghost.get(account, user.id)
        mxid = UserID(ghost.mxid) if ghost else self.mxid(account, user.id)
        name = self.displayname(user, channel_title)
        if ghost is None:
            await self.sender.ensure_registered(mxid)
            await self.sender.set_displayname(name, as_user=mxid)
            ghost = Ghost(account, user.id, mxid, name)
            await ghost.insert()
        elif ghost.displayname != name and (user.displayname or not ghost.displayname):
            await self.sender.set_displayname(name, as_user=mxid)
            ghost.displayname = name
            await ghost.save()
        if user.avatar_url and user.avatar_url != ghost.avatar_url and fetch is not None:
            await self._set_avatar(ghost, mxid, user.avatar_url, fetch)
        return mxid

    async def _set_avatar(
        self,
        ghost: Ghost,
        mxid: UserID,
        url: str,
        fetch: Callable[[str], Awaitable[tuple[bytes, str]]],
    ) -> None:
        """Best effort: a missing avatar must not hold up the message that came with it."""
        try:
            data, mimetype = await fetch(url)
            mxc, _ = await self.sender.upload(data, mimetype, "avatar", as_user=mxid)
            await self.sender.set_avatar(mxc, as_user=mxid)
        except Exception as e:
            log.warning(
                "Could not set the avatar of %s from %s: %s", pii(ghost.mxid), pii(url), pii(e)
            )
        ghost.avatar_url = url  # not retried for every message; a new URL is tried again
        await ghost.save()
