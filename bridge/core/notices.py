"""Notices from the bridge bot to staff: why something was not delivered."""

from __future__ import annotations

import html
import logging
from typing import Any, cast

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import EventID, EventType, RoomID

from ..logsafe import redact

log = logging.getLogger("bridge.notices")


class Notices:
    def __init__(self, bot: IntentAPI) -> None:
        self.bot = bot

    async def send(
        self,
        room_id: RoomID,
        text: str,
        *,
        reply_to: EventID | None = None,
        html_text: str | None = None,
        txn: str | None = None,
    ) -> EventID | None:
        # No configured secret reaches a room, whatever error text a reason was built from.
        content: dict[str, Any] = {"msgtype": "m.notice", "body": redact(text)}
        if html_text:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = redact(html_text)
        if reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        try:
            return await self.bot.send_message_event(
                room_id, EventType.ROOM_MESSAGE, cast(Any, content), txn_id=txn
            )
        except MatrixRequestError as e:
            if 400 <= e.http_status < 500 and e.http_status != 429:
                log.warning("Could not post a notice in %s: %s", room_id, e)
                return None
            raise

    async def failure(
        self, room_id: RoomID, event_id: EventID | None, reason: str, *, txn: str | None = None
    ) -> EventID | None:
        """Tell the room that the message ``event_id`` was not delivered, and why."""
        reason = redact(reason)  # before escaping: the HTML would hide it
        text = f"⚠️ Not delivered: {reason}"
        return await self.send(
            room_id,
            text,
            reply_to=event_id,
            html_text=f"⚠️ <b>Not delivered:</b> {html.escape(reason)}",
            txn=txn,
        )
