"""Notices from the bridge bot to staff: why something was not delivered."""

from __future__ import annotations

import html
import logging
from typing import Any

from mautrix.types import EventID, RoomID

from ..logsafe import redact
from .sender import MatrixSender, Refused

log = logging.getLogger("bridge.notices")


class Notices:
    def __init__(self, sender: MatrixSender) -> None:
        self.sender = sender

    async def send(
        self,
        room_id: RoomID | str,
        text: str,
        *,
        reply_to: EventID | str | None = None,
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
            return await self.sender.send(room_id, content, txn=txn)
        except Refused as e:
            log.warning("Could not post a notice in %s: %s", room_id, e)
            return None

    async def failure(
        self,
        room_id: RoomID | str,
        event_id: EventID | str | None,
        reason: str,
        *,
        txn: str | None = None,
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
