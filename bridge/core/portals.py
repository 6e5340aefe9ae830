"""Portal rooms: one Matrix room per remote chat of a channel account."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mautrix.errors import MatrixRequestError
from mautrix.types import RoomID, UserID

from ..config import Config
from ..connector import NetworkConnector
from ..db import Conversation, Portal
from ..db.conversation import BUSINESS_STARTED
from ..events import RemoteChat, RemoteUser
from ..logsafe import pii
from ..seams import ConversationRef
from ..types import AccountID, RemoteChatID
from . import bridgeinfo
from .sender import MatrixSender
from .util import MAX_ID_BYTES, MAX_TOPIC_CHARS, cut_name, escape_localpart, fit_localpart

log = logging.getLogger("bridge.portals")

Fetch = Callable[[str], Awaitable[tuple[bytes, str]]]
"""Downloads a remote media URL: (bytes, mimetype)."""
Namer = Callable[[ConversationRef, str], Awaitable[str]]
"""The room name of a conversation from its remote name (a feature adds its status)."""


class PortalManager:
    def __init__(
        self, config: Config, sender: MatrixSender, connectors: dict[str, NetworkConnector]
    ) -> None:
        self.config = config
        self.sender = sender
        self.connectors = connectors
        self.namer: Namer | None = None

    async def display_name(self, portal: Portal) -> str:
        """The room name of ``portal``: its remote name, as the room namer shows it."""
        base = portal.name or portal.chat
        if self.namer is None:
            return base
        ref = ConversationRef(AccountID(portal.account), RemoteChatID(portal.chat), portal.room_id)
        return cut_name(await self.namer(ref, base))

    def alias_localpart(self, account: str, chat: str) -> str:
        """The portal room's alias; a chat id too long for the homeserver's limit is shortened
        to a prefix and a hash."""
        head = f"{self.config.bot_username}_{escape_localpart(account)}_"
        budget = MAX_ID_BYTES - len(f"#{head}:{self.config.hs_domain}".encode())
        return head + fit_localpart(escape_localpart(chat), budget)

    def alias_regex(self) -> str:
        bot, domain = re.escape(self.config.bot_username), re.escape(self.config.hs_domain)
        return f"^#{bot}_[^:]+:{domain}$"

    def channel_title(self, account: str) -> str:
        connector = self.connectors.get(account)
        return connector.title if connector is not None else account

    async def get_or_create(
        self,
        account: str,
        chat: RemoteChat,
        sender: RemoteUser,
        ghost: UserID,
        fetch: Fetch | None = None,
        *,
        by_business: bool = False,
    ) -> Portal:
        """The portal of ``chat``, creating its room (idempotently, through a room alias
        derived from the portal key) the first time the chat is seen. ``fetch`` downloads
        the chat's avatar. ``by_business``: the business starts the conversation (a
        template), so no later customer message is its first contact."""
        portal = await Portal.get(account, chat.id)
        if portal is not None and portal.room_id:
            await self._update_info(portal, chat, fetch)
            return portal
        name = cut_name(chat.name or sender.displayname or sender.id)
        topic = cut_name(
            chat.topic
            or self.config.topic_template.format(
                channel=self.channel_title(account), account=account, chat=chat.id
            ),
            MAX_TOPIC_CHARS,
        )
        first = BUSINESS_STARTED if by_business else None
        await Conversation.ensure(account, chat.id, _now_ms(), first)
        state, info = self._bridge_info(account, chat.id, name)
        room_id = await self._create_room(account, chat, name, topic, ghost, state)
        if portal is None:
            portal = Portal(
                account, chat.id, room_id, name, topic, chat.is_group, created_at=_now_ms()
            )
            portal.metadata.update(info)
            await portal.insert()
        else:
            portal.room_id, portal.name, portal.topic = room_id, name, topic
            portal.metadata.update(info)
            await portal.save()
        log.info("Created portal %s/%s in %s", account, pii(chat.id), room_id)
        await self._update_info(portal, chat, fetch)
        return portal

    def _bridge_info(
        self, account: str, chat: str, name: str
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The ``m.bridge`` state of a new portal room and the metadata that records it."""
        connector = self.connectors.get(account)
        if connector is None:
            return [], {}
        state, marker = bridgeinfo.initial_state(self.config, connector, chat, name)
        return state, {bridgeinfo.MARKER: marker}

    async def _create_room(
        self,
        account: str,
        chat: RemoteChat,
        name: str,
        topic: str,
        ghost: UserID,
        state: list[dict[str, Any]],
    ) -> RoomID:
        alias_local = self.alias_localpart(account, chat.id)
        alias = f"#{alias_local}:{self.config.hs_domain}"
        channel = self.config.channels.get(account)  # type: ignore[call-overload]
        # The config refuses staff without a permission on the account; checked again here,
        # as everywhere the bridge invites someone into a conversation.
        staff = [UserID(s) for s in (channel.staff if channel else ()) if self.may_see(s, account)]
        # The creator (the bot) has the highest power level implicitly; newer room versions
        # refuse it in the users map.
        power_users = {ghost: 0, **{s: 50 for s in staff}}
        try:
            return await self.sender.create_room(
                alias_local, name, topic, [ghost, *staff], power_users, state=state
            )
        except MatrixRequestError as e:
            if e.errcode != "M_ROOM_IN_USE":
                raise
        # A previous attempt created the room and then stopped (crash, error): finish it.
        existing = await self.sender.resolve_alias(alias)
        log.info("Portal room for %s/%s existed already: %s", account, pii(chat.id), existing)
        await self.invite(existing, ghost)
        for user in staff:
            await self.invite(existing, user, account)
        return existing

    def may_see(self, user: str, account: str) -> bool:
        return self.config.permission_level(user, account) != "none"

    async def invite(self, room_id: str, user: UserID, account: str | None = None) -> bool:
        """Invite ``user`` (a ghost when ``account`` is None) into ``room_id``, unless they may
        not see the conversations of ``account``: then nothing happens and False is returned."""
        if account is not None and not self.may_see(user, account):
            log.warning("Not inviting %s into %s: no permission on %s", user, room_id, account)
            return False
        try:
            await self.sender.invite(room_id, user)
        except MatrixRequestError as e:
            # Already invited or joined: nothing to finish.
            if e.http_status not in (400, 403):
                raise
        return True

    async def _update_info(self, portal: Portal, chat: RemoteChat, fetch: Fetch | None) -> None:
        """Follow a renamed remote chat and its avatar. Rooms linked by staff keep the name and
        avatar staff gave them; a failure here is cosmetic and must not hold up the message."""
        if not portal.room_id:
            return
        room_id = RoomID(portal.room_id)
        linked = bool(portal.metadata.get("linked"))
        changed = False
        name = cut_name(chat.name) if chat.name else None
        if name and name != portal.name:
            if not linked:
                try:
                    portal.name = name
                    await self.sender.set_room_name(room_id, await self.display_name(portal))
                except Exception as e:
                    log.warning("Could not rename %s to %r: %s", room_id, pii(name), e)
            portal.name = name
            changed = True
        avatar = chat.avatar_url
        if avatar and avatar != portal.metadata.get("avatar_url") and fetch is not None:
            if not linked:
                try:
                    data, mimetype = await fetch(avatar)
                    mxc, _ = await self.sender.upload(data, mimetype, "avatar")
                    await self.sender.set_room_avatar(room_id, mxc)
                except Exception as e:
                    log.warning(
                        "Could not set the avatar of %s from %s: %s", room_id, pii(avatar), pii(e)
                    )
            portal.metadata["avatar_url"] = avatar  # a new URL is tried again
            changed = True
        if changed:
            await portal.save()


def _now_ms() -> int:
    return int(time.time() * 1000)
