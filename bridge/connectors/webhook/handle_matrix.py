"""Outbound: staff actions from Matrix as JSON payloads POSTed to the receiver.

Every payload has ``type``, ``id`` (the Matrix event id, also sent as ``Idempotency-Key``),
``chat_id`` and ``sender``; messages add text, html, reply and timestamp, the other types name
their ``target`` (the remote message id). A message the bridge started may carry reply
buttons, ``buttons: [{"id": ..., "title": ...}]`` (left out when there are none): the receiver
shows them, and reports a press as an inbound ``button`` event (``handle_remote``).
"""

from __future__ import annotations

import time
from typing import Any

from ...connector import PermanentDeliveryError
from ...events import (
    MatrixEdit,
    MatrixMessage,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixRedaction,
    MessageRef,
    SentMessage,
)
from ...media import FileTooLarge, open_staff_file
from ...types import MessageID, PortalKey
from .client import NOT_CONFIGURED, WebhookClient
from .config import WebhookConfig
from .protocol import FILE_DATA, Body


def _sender(mxid: str, name: str | None = None) -> dict[str, Any]:
    return {"mxid": mxid, "name": name if name is not None else mxid}


def _base(kind: str, event_id: str, portal: PortalKey, sender: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "id": event_id, "chat_id": portal.chat, "sender": sender}


def message_payload(msg: MatrixMessage) -> dict[str, Any]:
    payload = _base("message", msg.event_id, msg.portal, _sender(msg.sender, msg.sender_name))
    payload.update(
        text=msg.text,
        html=msg.html,
        reply_to=msg.reply_to.message_id if msg.reply_to else None,
        timestamp=msg.timestamp if msg.timestamp is not None else time.time(),
    )
    if msg.buttons:
        payload["buttons"] = [{"id": b.id, "title": b.title} for b in msg.buttons]
    return payload


def _target_payload(
    kind: str, event: MatrixEdit | MatrixRedaction | MatrixReaction | MatrixReactionRemove
) -> dict[str, Any]:
    payload = _base(kind, event.event_id, event.portal, _sender(event.sender))
    payload["target"] = _target(event.target)
    return payload


def _target(ref: MessageRef) -> str:
    return ref.message_id


class WebhookSender:
    """Sends what staff do in Matrix to the webhook receiver."""

    def __init__(self, config: WebhookConfig, client: WebhookClient) -> None:
        self.config = config
        self.client = client

    def _require_outbound(self) -> None:
        if not self.config.outbound_enabled:
            raise PermanentDeliveryError(NOT_CONFIGURED)

    async def _send(self, payload: dict[str, Any] | Body, event_id: str) -> SentMessage:
        remote_id = await self.client.post(payload, event_id)
        return SentMessage(message_id=MessageID(remote_id or event_id))

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        if msg.media is not None:
            return await self.send_media(msg)
        self._require_outbound()
        return await self._send(message_payload(msg), msg.event_id)

    async def send_media(self, msg: MatrixMessage) -> SentMessage:
        self._require_outbound()
        payload = message_payload(msg)
        media = msg.media
        if media is None:
            return await self._send(payload, msg.event_id)
        limit = self.config.max_file_size
        if media.size is not None and media.size > limit:
            raise PermanentDeliveryError(_too_large(media.filename, media.size, limit))
        try:
            file = await open_staff_file(media, limit)
        except FileTooLarge as e:
            raise PermanentDeliveryError(_too_large(media.filename, e.size, limit)) from e
        with file:
            payload["attachment"] = {
                "filename": media.filename,
                "mimetype": media.mimetype,
                "size": file.size,
                "data_base64": FILE_DATA,  # streamed in as base64 when the body is sent
            }
            return await self._send(Body(payload, file), msg.event_id)

    async def edit(self, edit: MatrixEdit) -> None:
        self._require_outbound()
        payload = _target_payload("edit", edit)
        payload.update(text=edit.text, html=edit.html)
        await self.client.post(payload, edit.event_id)

    async def redact(self, redaction: MatrixRedaction) -> None:
        self._require_outbound()
        await self.client.post(_target_payload("delete", redaction), redaction.event_id)

    async def react(self, reaction: MatrixReaction) -> None:
        self._require_outbound()
        payload = _target_payload("reaction", reaction)
        payload["emoji"] = reaction.emoji
        await self.client.post(payload, reaction.event_id)

    async def unreact(self, removal: MatrixReactionRemove) -> None:
        self._require_outbound()
        payload = _target_payload("reaction_remove", removal)
        payload["emoji"] = removal.emoji
        await self.client.post(payload, removal.event_id)


def _too_large(filename: str, size: int | None, limit: int) -> str:
    actual = f"{size} bytes" if size is not None else f"over {limit} bytes"
    return (
        f"{filename!r} is too large for this channel ({actual}; "
        f"at most {limit} bytes are accepted)"
    )
