"""Routes each recorded Matrix event, read into its typed form, to what handles it: staff
events of portal rooms, commands, invitations of the bot, memberships of people who may not
see a conversation, receipts and typing."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from mautrix.errors import MNotFound
from mautrix.types import Membership, StateEvent

from ..config import Config
from ..db import Portal, QueueItem
from ..seams import MediaRef, RoomMessage, Seams
from .ghosts import GhostManager
from .incoming import (
    MemberChange,
    Receipts,
    RoomEvent,
    StaffEdit,
    StaffMessage,
    StaffReaction,
    StaffRedaction,
    StateChange,
    Typing,
    read_event,
)
from .notices import Notices
from .sender import MatrixSender
from .staff import StaffHandler

if TYPE_CHECKING:
    from mautrix.appservice.state_store import ASStateStore

    from .encrypted import CryptoFlow

log = logging.getLogger("bridge.routing")

RunCommand = Callable[[StaffMessage, Portal | None, str], Awaitable[None]]
"""Runs a command (its text without prefix) sent in a room."""


class MatrixRouter:
    def __init__(
        self,
        config: Config,
        sender: MatrixSender,
        ghosts: GhostManager,
        notices: Notices,
        staff: StaffHandler,
        state_store: ASStateStore,
        run_command: RunCommand,
        seams: Seams | None = None,
    ) -> None:
        self.config = config
        self.sender = sender
        self.ghosts = ghosts
        self.notices = notices
        self.staff = staff
        self.state_store = state_store
        self.run_command = run_command
        self.seams = seams
        self.crypto: CryptoFlow | None = None
        """Set when encryption is allowed: crypto events, decryption, ``require``."""

    def is_own(self, user: str) -> bool:
        return self.ghosts.is_own(user)

    def is_echo(self, evt: dict[str, Any]) -> bool:
        """An event of the bot or a ghost that is no state: the bridge's own messages coming
        back, which ``route`` ignores, so they are not even queued."""
        sender = evt.get("sender")
        return "state_key" not in evt and isinstance(sender, str) and self.is_own(sender)

    def may_act(self, user: str, portal: Portal) -> bool:
        """Whether ``user`` may see and act in the conversations of ``portal``'s account."""
        return not self.is_own(user) and (
            self.config.permission_level(user, portal.account) != "none"
        )

    async def route(self, item: QueueItem) -> None:
        payload = item.payload
        if self.crypto is not None:
            decrypted = await self.crypto.handle(item.payload)
            if decrypted is None:
                return  # a crypto event, or one the room was told about
            payload = decrypted
        elif _is_encrypted(payload) and not self.is_own(str(payload.get("sender"))):
            await self.notices.failure(
                str(payload["room_id"]), str(payload.get("event_id")),
                "this bridge cannot read encrypted messages: encryption is not allowed in its"
                " config (an admin can allow it: encryption.allow)",
            )  # fmt: skip
            return
        evt = read_event(payload)
        if evt is None:
            return  # nothing the bridge can act on (nor answer in)
        if isinstance(evt, Receipts):
            portal = await Portal.get_by_room(evt.room_id)
            if portal is not None:
                for event_id, user in evt.reads:
                    if self.may_act(user, portal):
                        await self.staff.receipt(portal, evt.room_id, event_id, user)
            return
        if isinstance(evt, Typing):
            portal = await Portal.get_by_room(evt.room_id)
            if portal is not None:
                for user in evt.users:
                    if self.may_act(user, portal):
                        await self.staff.typing(portal, user, True)
            return
        assert isinstance(evt, RoomEvent)
        if isinstance(evt, MemberChange | StateChange):
            await self._state_event(payload)
        if self.is_own(evt.sender):
            return
        if isinstance(evt, MemberChange):
            await self._member(evt)
            return
        if not isinstance(evt, StaffMessage | StaffEdit | StaffReaction | StaffRedaction):
            return
        portal = await Portal.get_by_room(evt.room_id)
        if isinstance(evt, StaffMessage):
            prefix = self.config.command_prefix
            body = evt.body
            is_command = body == prefix or body.startswith(prefix + " ")
            if portal is None or is_command:
                # Commands check the account they concern themselves.
                if self.config.permission_level(evt.sender) == "none":
                    return
                if is_command:
                    await self.run_command(evt, portal, body[len(prefix) :].strip())
                elif self.seams is not None and await self.seams.room_message(_room_message(evt)):
                    return  # a feature's room (a broadcast room): its message
                elif await self._is_management_room(evt.room_id):
                    await self.run_command(evt, portal, body.strip())
                return
        if portal is None:
            return
        if not self.may_act(evt.sender, portal):
            # Redactions and reactions too: what is not bridged leaves a notice.
            await self.notices.failure(
                evt.room_id, evt.event_id,
                f"you are not allowed to use the bridge for {portal.account}",
            )  # fmt: skip
            return
        if isinstance(evt, StaffMessage):
            await self.staff.message(item, portal, evt)
        elif isinstance(evt, StaffEdit):
            await self.staff.edit(item, portal, evt)
        elif isinstance(evt, StaffReaction):
            await self.staff.reaction(item, portal, evt)
        else:
            await self.staff.redaction(item, portal, evt)

    async def _state_event(self, raw: dict[str, Any]) -> None:
        try:
            await self.state_store.update_state(StateEvent.deserialize(cast(Any, raw)))
        except Exception as e:
            log.debug("Ignoring unreadable state event %s: %s", raw.get("event_id"), e)

    async def _member(self, evt: MemberChange) -> None:
        if evt.membership in ("invite", "join"):
            portal = await Portal.get_by_room(evt.room_id)
            if portal is not None and not self.is_own(evt.target):
                if not self.may_act(evt.target, portal):
                    await self._refuse_member(portal, evt.target)
                return
        if evt.target != self.config.bot_mxid or evt.membership != "invite":
            return
        if self.config.permission_level(evt.sender) == "none":
            log.info("Ignoring invite to %s from %s (no permission)", evt.room_id, evt.sender)
            return
        await self.sender.join(evt.room_id)
        if evt.is_direct:
            await self.notices.send(
                evt.room_id, "Hello! I am the bridge bot. Send `help` to see what I can do."
            )

    async def _refuse_member(self, portal: Portal, user: str) -> None:
        """Take back an invite (or membership) of a user who may not see the conversations of
        the portal's account: a portal room's history is the customer's conversation."""
        room_id = portal.room_id or ""
        reason = f"no permission for the conversations of {portal.account}"
        try:
            await self.sender.kick(room_id, user, reason)
        except Exception as e:
            if not await self._still_member(room_id, user):
                # Removed already: this was a later event of theirs (an invite and the join
                # that followed it, handled once the bridge was back).
                log.info("%s has already left %s", user, room_id)
                return
            log.warning("Could not remove %s from %s: %s", user, room_id, e)
            await self.notices.send(
                room_id, f"⚠️ {user} has {reason} but could not be removed from this room: {e}"
            )
            return
        await self.notices.send(room_id, f"ℹ️ {user} was removed: {reason}.")

    async def _still_member(self, room_id: str, user: str) -> bool:
        """Whether ``user`` is invited to or in ``room_id`` now, by the homeserver (when it
        cannot say: yes)."""
        try:
            member = await self.sender.member_info(room_id, user, fresh=True)
        except MNotFound:
            return False
        except Exception:
            return True
        return member is not None and member.membership in (
            Membership.JOIN, Membership.INVITE, Membership.KNOCK
        )  # fmt: skip

    async def _is_management_room(self, room_id: str) -> bool:
        try:
            members = await self.sender.joined_members(room_id)
        except Exception:
            return False
        return len(members) == 2


def _is_encrypted(payload: dict[str, Any]) -> bool:
    return (
        payload.get("type") == "m.room.encrypted"
        and "state_key" not in payload
        and isinstance(payload.get("room_id"), str)
        and isinstance(payload.get("sender"), str)
    )


def _room_message(evt: StaffMessage) -> RoomMessage:
    media = None
    m = evt.media
    url = None if m is None else m.url or (m.file or {}).get("url")
    if m is not None and isinstance(url, str) and url:
        media = MediaRef(url, m.filename, m.mimetype or "application/octet-stream", m.size,
                         evt.msgtype, None if m.url else m.file)  # fmt: skip
    body = evt.body if media is None or evt.caption else ""
    return RoomMessage(
        evt.room_id, evt.event_id, evt.sender, evt.msgtype, body, evt.html, media, evt.reply_to
    )
