"""Matrix -> WhatsApp: text in WhatsApp's markup (with reply buttons: an interactive
"button" message), media through /media, replies, reactions, read receipts; free-form messages
only inside the 24-hour customer-service window."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from ...connector import BridgeHost, Capabilities, PermanentDeliveryError
from ...events import (
    Button,
    MatrixMedia,
    MatrixMessage,
    MatrixReaction,
    MatrixReactionRemove,
    MatrixReadReceipt,
    SentMessage,
)
from ...media import FileTooLarge, MediaFile, open_staff_file
from ...types import MessageID, RemoteChatID
from ..parts import PartSender
from .capabilities import (
    BUTTON_BODY_LIMIT,
    CAPTION_LIMIT,
    UPLOAD_LIMITS,
    WHATSAPP_CAPABILITIES,
    WINDOW,
)
from .client import GraphClient
from .format import matrix_to_whatsapp
from .split import split_text

WINDOW_CLOSED = (
    "the customer has not written in the last 24 hours, so WhatsApp only accepts a template."
    " `!bridge template` lists the approved ones; `!bridge template <name> <parameters…>`"
    " sends one"
)
STICKER_TYPES = ("image/webp",)
IMAGE_TYPES = ("image/jpeg", "image/png")


class WhatsAppSender:
    """Sends what staff do in Matrix to WhatsApp through the Cloud API."""

    def __init__(
        self,
        client: GraphClient,
        host: BridgeHost,
        last_inbound: dict[str, float],
        capabilities: Capabilities,
    ) -> None:
        assert capabilities.max_text_length is not None, "WhatsApp limits the text length"
        self.text_limit = capabilities.max_text_length
        self.client = client
        self.host = host
        self.last_inbound = last_inbound
        self.parts = PartSender()

    async def check_window(self, chat: RemoteChatID) -> None:
        seen = self.last_inbound.get(chat, 0.0)
        if time.time() - seen <= WINDOW:
            return
        meta = await self.host.portal_metadata(chat)
        last = meta.get("last_inbound_at")
        if isinstance(last, int | float):
            self.last_inbound[chat] = max(seen, float(last))
        if time.time() - self.last_inbound.get(chat, 0.0) > WINDOW:
            raise PermanentDeliveryError(WINDOW_CLOSED)

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        if msg.media is not None:
            return await self.send_media(msg)
        await self.check_window(msg.portal.chat)
        text = matrix_to_whatsapp(msg.text, msg.html)
        chunks = [c for c in split_text(text, self.text_limit) if c.strip()]
        if not chunks:
            raise PermanentDeliveryError("the message is empty")
        if msg.buttons and len(chunks[-1]) > BUTTON_BODY_LIMIT:
            # The buttons go under the last part, whose text WhatsApp keeps shorter.
            chunks[-1:] = [c for c in split_text(chunks[-1], BUTTON_BODY_LIMIT) if c.strip()]

        def part(index: int, chunk: str) -> Callable[[], Awaitable[dict[str, Any]]]:
            body: dict[str, Any] = {"type": "text", "text": {"body": chunk, "preview_url": False}}
            if msg.buttons and index == len(chunks) - 1:
                body = {"type": "interactive", "interactive": _interactive(chunk, msg.buttons)}
            if index == 0 and msg.reply_to:
                body["context"] = {"message_id": msg.reply_to.message_id}
            return lambda: self.client.send(msg.portal.chat, body)

        sent = await self.parts.send(
            f"{msg.event_id}:text", [part(i, c) for i, c in enumerate(chunks)]
        )
        # With buttons, the message a press names (the part that has them) stands for it.
        return _sent(sent[-1] if msg.buttons else sent[0])

    async def _upload(self, media: MatrixMedia, limit: int, kind: str) -> dict[str, Any]:
        """Upload a staff member's file to the Graph API, streamed from its spool."""
        with await _open(media, limit, kind) as file:
            form = aiohttp.FormData()
            form.add_field("messaging_product", "whatsapp")
            form.add_field("type", media.mimetype)
            form.add_field(
                "file", file.fileobj(), filename=media.filename, content_type=media.mimetype
            )
            return await self.client.request(
                "POST", f"{self.client.config.phone_number_id}/media", data=form
            )

    async def send_media(self, msg: MatrixMessage) -> SentMessage:
        media = msg.media
        if media is None:
            return await self.send_message(msg)
        await self.check_window(msg.portal.chat)
        kind = _kind(msg.msgtype, media.mimetype)
        limit = UPLOAD_LIMITS[kind]
        if media.size and media.size > limit:
            raise PermanentDeliveryError(_too_big(media.filename, media.size, limit, kind))
        uploaded = await self._upload(media, limit, kind)
        media_id = uploaded.get("id")
        if not isinstance(media_id, str):
            raise PermanentDeliveryError("WhatsApp gave no media id for the upload")
        obj: dict[str, Any] = {"id": media_id}
        # Without a caption the file would arrive without the sender's name: the prefix is it.
        caption = matrix_to_whatsapp(msg.text, msg.html) if msg.text else msg.prefix.strip()
        long_caption = len(caption) > CAPTION_LIMIT
        if long_caption:
            caption = ""  # too long for a caption: the text goes first as its own message
        if caption and kind in ("image", "video", "document"):
            obj["caption"] = caption
        if kind == "document":
            obj["filename"] = media.filename
        body: dict[str, Any] = {"type": kind, kind: obj}
        if msg.reply_to:
            body["context"] = {"message_id": msg.reply_to.message_id}
        parts: list[Callable[[], Awaitable[Any]]] = [
            lambda: self.client.send(msg.portal.chat, body)
        ]
        if long_caption:
            parts.insert(0, lambda: self.send_message(_text_only(msg)))
        return _sent((await self.parts.send(f"{msg.event_id}:media", parts))[-1])

    async def react(self, reaction: MatrixReaction) -> None:
        await self._reaction(reaction.portal.chat, reaction.target.message_id, reaction.emoji)

    async def unreact(self, removal: MatrixReactionRemove) -> None:
        await self._reaction(removal.portal.chat, removal.target.message_id, "")

    async def _reaction(self, chat: RemoteChatID, message_id: str, emoji: str) -> None:
        await self.check_window(chat)
        body = {"type": "reaction", "reaction": {"message_id": message_id, "emoji": emoji}}
        await self.client.send(chat, body)

    async def read(self, receipt: MatrixReadReceipt) -> None:
        if receipt.target.sender is None:
            return  # our own message: nothing to mark
        body = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": receipt.target.message_id,
        }
        path = f"{self.client.config.phone_number_id}/messages"
        await self.client.request("POST", path, json=body)


def _interactive(text: str, buttons: Sequence[Button]) -> dict[str, Any]:
    """An interactive message with reply buttons (1 to 3, titles up to 20 characters, ids up
    to 256; the core checked them against the capabilities)."""
    if len(buttons) > WHATSAPP_CAPABILITIES.max_buttons:
        raise PermanentDeliveryError("WhatsApp shows at most 3 reply buttons")
    return {
        "type": "button",
        "body": {"text": text},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in buttons
            ]
        },
    }


def _kind(msgtype: str, mimetype: str) -> str:
    if msgtype == "m.image" and mimetype in IMAGE_TYPES:
        return "image"
    if msgtype == "m.image" and mimetype in STICKER_TYPES:
        return "sticker"
    if msgtype == "m.audio":
        return "audio"
    if msgtype == "m.video":
        return "video"
    return "document"


async def _open(media: MatrixMedia, limit: int, kind: str) -> MediaFile:
    try:
        return await open_staff_file(media, limit)
    except FileTooLarge as e:
        size = e.size or limit + 1
        raise PermanentDeliveryError(_too_big(media.filename, size, limit, kind)) from e


def _too_big(name: str, size: int, limit: int, kind: str) -> str:
    mb = 1024 * 1024
    shown = f"{size / mb:.1f} MB" if size >= mb else f"{size // 1024} KB"
    cap = f"{limit / mb:g} MB" if limit >= mb else f"{limit // 1024} KB"
    return f"{name} is {shown}; WhatsApp takes {kind} files up to {cap}"


def _sent(answer: dict[str, Any]) -> SentMessage:
    messages = answer.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        wamid = messages[0].get("id")
        if isinstance(wamid, str) and wamid:
            return SentMessage(message_id=MessageID(wamid), timestamp=time.time())
    raise PermanentDeliveryError("WhatsApp accepted the message but returned no message id")


def _text_only(msg: MatrixMessage) -> MatrixMessage:
    return dataclasses.replace(msg, media=None)
