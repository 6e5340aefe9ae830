"""Matrix -> MAX: text (``format: html``, reply buttons as an inline keyboard), replies by
``link``, media uploaded through ``/uploads``, edits and deletions of the bot's messages.

A text longer than MAX takes goes out in parts (plain text); a retry after a failure in the
middle sends only the parts not yet sent (``PartSender``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from ...connector import Capabilities, PermanentDeliveryError, TemporaryDeliveryError
from ...events import (
    Button,
    MatrixEdit,
    MatrixMedia,
    MatrixMessage,
    MatrixRedaction,
    SentMessage,
)
from ...media import FileTooLarge, MediaFile, open_staff_file
from ...types import MessageID
from ..parts import PartSender
from .capabilities import UPLOAD_LIMIT
from .client import NOT_READY_REASON, MaxClient
from .format import matrix_to_max, split_text

UPLOAD_TYPES = {"m.image": "image", "m.video": "video", "m.audio": "audio"}
NOT_READY_DELAY = 1.0
"""Seconds to wait before sending again a file MAX is still processing (more each time)."""
NOT_READY_TRIES = 5


class MaxSender:
    """Sends what staff do in Matrix to MAX through the Bot API."""

    def __init__(self, client: MaxClient, capabilities: Capabilities) -> None:
        assert capabilities.max_text_length is not None, "MAX limits the text length"
        self.text_limit = capabilities.max_text_length
        self.client = client
        self.parts = PartSender()

    def _bodies(self, msg: MatrixMessage) -> list[dict[str, Any]]:
        """The message bodies of a text: one with its HTML, or plain parts when too long."""
        plain, html = matrix_to_max(msg.text, msg.html)
        if len(plain) <= self.text_limit and plain.strip():
            if html is not None:
                return [{"text": html, "format": "html"}]
            return [{"text": plain}]
        return [{"text": part} for part in split_text(plain, self.text_limit)]

    async def _post(self, chat: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.send(
            chat, "POST", "/messages", params={"chat_id": chat}, json=body
        )

    async def _post_when_ready(self, chat: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send a message with an uploaded file, waiting while MAX answers that it is still
        processing the file (``attachment.not.ready``), as the documentation advises; the
        upload is not repeated."""
        for attempt in range(1, NOT_READY_TRIES + 1):
            try:
                return await self._post(chat, body)
            except TemporaryDeliveryError as e:
                if not e.reason.startswith(NOT_READY_REASON) or attempt == NOT_READY_TRIES:
                    raise
            await asyncio.sleep(NOT_READY_DELAY * attempt)
        raise AssertionError("unreachable")

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        if msg.media is not None:
            return await self.send_media(msg)
        bodies = self._bodies(msg)
        if not bodies:
            raise PermanentDeliveryError("the message is empty")
        if msg.reply_to:
            bodies[0]["link"] = {"type": "reply", "mid": msg.reply_to.message_id}
        if msg.buttons:
            bodies[-1]["attachments"] = [_keyboard(msg.buttons)]
        chat = msg.portal.chat
        sent = await self.parts.send(
            f"{msg.event_id}:text",
            [lambda body=body: self._post(chat, body) for body in bodies],  # type: ignore[misc]
        )
        # With buttons, the part that has them stands for the message: presses name it.
        return _sent(sent[-1] if msg.buttons else sent[0])

    async def send_media(self, msg: MatrixMessage) -> SentMessage:
        media = msg.media
        if media is None:
            return await self.send_message(msg)
        kind = UPLOAD_TYPES.get(msg.msgtype, "file")
        if media.size and media.size > UPLOAD_LIMIT:
            raise PermanentDeliveryError(_too_big(media.filename, media.size))
        chat = msg.portal.chat

        async def upload_and_send() -> dict[str, Any]:
            with await _open(media) as file:
                token = await self.client.upload(kind, file, media.filename, media.mimetype)
            # Without a caption the file would arrive without the sender's name: the prefix.
            plain, html = matrix_to_max(msg.text, msg.html) if msg.text else (msg.prefix, None)
            body: dict[str, Any] = {"attachments": [{"type": kind, "payload": {"token": token}}]}
            if plain.strip() and len(plain) <= self.text_limit:
                body.update({"text": html, "format": "html"} if html else {"text": plain.strip()})
            if msg.reply_to:
                body["link"] = {"type": "reply", "mid": msg.reply_to.message_id}
            return await self._post_when_ready(chat, body)

        parts = [upload_and_send]
        if msg.text and len(matrix_to_max(msg.text, msg.html)[0]) > self.text_limit:
            text_only = dataclasses.replace(msg, media=None)

            async def text_first() -> dict[str, Any]:
                sent = await self.send_message(text_only)
                return {"message": {"body": {"mid": sent.message_id}}}

            parts.insert(0, text_first)
        sent = await self.parts.send(f"{msg.event_id}:media", parts)
        return _sent(sent[-1])

    async def edit(self, edit: MatrixEdit) -> None:
        plain, html = matrix_to_max(edit.text, edit.html)
        body = {"text": html, "format": "html"} if html else {"text": plain}
        await self.client.send(
            edit.portal.chat,
            "PUT",
            "/messages",
            params={"message_id": edit.target.message_id},
            json=body,
        )

    async def action(self, chat: str, action: str) -> None:
        """A chat action: ``typing_on`` (the bot is typing) or ``mark_seen`` (read)."""
        await self.client.request("POST", f"/chats/{chat}/actions", json={"action": action})

    async def delete(self, redaction: MatrixRedaction) -> None:
        await self.client.send(
            redaction.portal.chat,
            "DELETE",
            "/messages",
            params={"message_id": redaction.target.message_id},
        )


def _keyboard(buttons: tuple[Button, ...]) -> dict[str, Any]:
    """Reply buttons as an inline keyboard, one button a row; a press comes back as a
    ``message_callback`` with the button's payload."""
    rows = [[{"type": "callback", "text": b.title, "payload": b.id}] for b in buttons]
    return {"type": "inline_keyboard", "payload": {"buttons": rows}}


async def _open(media: MatrixMedia) -> MediaFile:
    try:
        return await open_staff_file(media, UPLOAD_LIMIT)
    except FileTooLarge as e:
        raise PermanentDeliveryError(_too_big(media.filename, e.size or UPLOAD_LIMIT + 1)) from e


def _too_big(name: str, size: int) -> str:
    return f"{name} is {size / 1024 / 1024:.1f} MB; MAX takes files up to 4 GB"


def _sent(answer: dict[str, Any]) -> SentMessage:
    message = answer.get("message")
    body = message.get("body") if isinstance(message, dict) else None
    mid = body.get("mid") if isinstance(body, dict) else None
    if isinstance(mid, str) and mid:
        return SentMessage(message_id=MessageID(mid), timestamp=time.time())
    raise PermanentDeliveryError("MAX accepted the message but returned no message id")
