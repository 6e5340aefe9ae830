"""Rooms a feature keeps besides the portals (a team's room and space), and what it shows in
the room list: a conversation's name with its status, as the room namer seam decides."""

from __future__ import annotations

from typing import Any

from mautrix.errors import MatrixRequestError
from mautrix.types import UserID

from ...db import Portal
from ...seams import ConversationRef
from ..util import cut_name, escape_localpart, txn_id
from .common import ServiceBase


class RoomServices(ServiceBase):
    async def bot_room(
        self,
        key: str,
        name: str,
        topic: str,
        invite: list[str],
        *,
        space: bool = False,
    ) -> str:
        """The bridge bot's room (or space) for ``key`` (e.g. ``team-support``), created
        once: its alias is derived from ``key``, so a second call (or a run after a crash)
        finds it. Users without any permission on the bridge are not invited."""
        local = f"{self.config.bot_username}_{escape_localpart(key)}"
        users = [UserID(u) for u in invite if self.config.permission_level(u) != "none"]
        try:
            return await self.sender.create_room(
                local, cut_name(name), topic, users, {u: 50 for u in users}, space=space
            )
        except MatrixRequestError as e:
            if e.errcode != "M_ROOM_IN_USE":
                raise
        room_id = await self.sender.resolve_alias(f"#{local}:{self.config.hs_domain}")
        for user in users:
            try:
                await self.sender.invite(room_id, user)
            except MatrixRequestError as e:
                if e.http_status not in (400, 403):  # already in the room
                    raise
        return room_id

    async def join_room(self, alias_or_id: str) -> str:
        """Join a room named by alias or id (it must let the bot in); returns its id."""
        room_id = alias_or_id
        if alias_or_id.startswith("#"):
            room_id = await self.sender.resolve_alias(alias_or_id)
        await self.sender.join(room_id)
        return room_id

    async def set_state(
        self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> None:
        await self.sender.set_state(room_id, event_type, state_key, content)

    async def edit_notice(self, room_id: str, event_id: str, text: str, *, txn: str) -> None:
        """Replace the text of a notice the bot posted (a queue view kept up to date)."""
        new = {"msgtype": "m.notice", "body": text}
        content = {
            **new, "body": f"* {text}", "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        }  # fmt: skip
        await self.sender.send(room_id, content, txn=txn_id("edit-notice", txn))

    async def rename(self, conversation: ConversationRef) -> None:
        """Show the conversation's room under the name the room namer gives it now (after
        its status changed). A room staff linked keeps the name they gave it."""
        portal = await Portal.get(conversation.account, conversation.chat)
        if portal is None or not portal.room_id or portal.metadata.get("linked"):
            return
        name = await self.portals.display_name(portal)
        await self.sender.set_room_name(portal.room_id, name)
