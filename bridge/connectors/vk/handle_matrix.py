"""Matrix -> VK: text, replies, media (photos and documents through VK's upload servers),
edits and deletions, with ``messages.send``'s ``random_id`` derived from the Matrix event.

``random_id`` is VK's idempotency key: VK drops a second message with the same ``random_id``
from the community to the same peer. Each part of a message gets a ``random_id`` hashed from
the Matrix event id and the part, so a retry of the same event (after a lost answer, after a
crash and restart) can never show the customer a message twice."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ...connector import Capabilities, PermanentDeliveryError
from ...events import Button, MatrixEdit, MatrixMessage, MatrixRedaction, SentMessage
from ...media import FileTooLarge, open_staff_file
from ...types import MessageID
from ..parts import PartSender
from .capabilities import DOC_LIMIT, PHOTO_LIMIT
from .client import VKClient, VKError
from .format import split_text
from .handle_remote import message_id, split_message_id

PHOTO_TYPES = ("image/jpeg", "image/png", "image/gif")


def random_id(key: str) -> int:
    """A positive 31-bit ``random_id`` for ``key`` (never 0: 0 turns VK's check off)."""
    value = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") & 0x7FFFFFFF
    return value or 1


class VKSender:
    """Sends what staff do in Matrix to VK with the community's token."""

    def __init__(self, client: VKClient, capabilities: Capabilities) -> None:
        assert capabilities.max_text_length is not None, "VK limits the text length"
        self.text_limit = capabilities.max_text_length
        self.client = client
        self.parts = PartSender()

    async def _send(self, peer: int, key: str, **params: Any) -> SentMessage:
        answer = await self.client.call(
            "messages.send", peer_ids=peer, random_id=random_id(key), **params
        )
        item = answer[0] if isinstance(answer, list) and answer else None
        cmid = item.get("conversation_message_id") if isinstance(item, dict) else None
        if isinstance(item, dict) and isinstance(item.get("error"), dict):
            error = item["error"]
            code = error.get("code", error.get("error_code"))
            reason = error.get("description") or error.get("error_msg") or ""
            raise self.client.delivery_error(VKError(int(code or -1), str(reason)))
        if not isinstance(cmid, int) or isinstance(cmid, bool) or cmid <= 0:
            raise PermanentDeliveryError("VK accepted the message but returned no message id")
        return SentMessage(message_id=message_id(peer, cmid), timestamp=time.time())

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        if msg.media is not None:
            return await self.send_media(msg)
        peer = _peer(msg.portal.chat)
        chunks = split_text(msg.text, self.text_limit)
        if not chunks:
            raise PermanentDeliveryError("the message is empty")
        reply = _forward(peer, msg)

        def part(index: int, chunk: str) -> Callable[[], Awaitable[SentMessage]]:
            extra = {"forward": reply} if index == 0 and reply else {}
            if msg.buttons and index == len(chunks) - 1:
                extra["keyboard"] = keyboard(msg.buttons)
            key = f"{msg.event_id}:text:{index}"
            return lambda: self._send(peer, key, message=chunk, **extra)

        sent = await self.parts.send(
            f"{msg.event_id}:text", [part(i, c) for i, c in enumerate(chunks)]
        )
        # With buttons, the message a press names (the part that has them) stands for it.
        return sent[-1] if msg.buttons else sent[0]

    async def send_media(self, msg: MatrixMessage) -> SentMessage:
        media = msg.media
        if media is None:
            return await self.send_message(msg)
        peer = _peer(msg.portal.chat)
        photo = msg.msgtype == "m.image" and media.mimetype in PHOTO_TYPES
        limit = PHOTO_LIMIT if photo else DOC_LIMIT
        if media.size and media.size > limit:
            raise PermanentDeliveryError(_too_big(media.filename, media.size, limit))
        try:
            file = await open_staff_file(media, limit)
        except FileTooLarge as e:
            raise PermanentDeliveryError(
                _too_big(media.filename, e.size or limit + 1, limit)
            ) from e
        with file:
            if photo:
                attachment = await self._upload_photo(peer, file, media.filename, media.mimetype)
            else:
                attachment = await self._upload_doc(peer, file, media.filename, media.mimetype)
        caption = msg.text if msg.text and msg.text != media.filename else msg.prefix.strip()
        caption = f"{msg.prefix}{media.filename}" if not caption else caption
        chunks = split_text(caption, self.text_limit) or [""]
        reply = _forward(peer, msg)
        parts: list[Callable[[], Awaitable[SentMessage]]] = []
        for index, chunk in enumerate(chunks):
            params: dict[str, Any] = {"message": chunk}
            if index == len(chunks) - 1:
                params["attachment"] = attachment
            if index == 0 and reply:
                params["forward"] = reply
            parts.append(self._part(peer, f"{msg.event_id}:media:{index}", params))
        return (await self.parts.send(f"{msg.event_id}:media", parts))[-1]

    def _part(
        self, peer: int, key: str, params: dict[str, Any]
    ) -> Callable[[], Awaitable[SentMessage]]:
        return lambda: self._send(peer, key, **params)

    async def _upload_photo(self, peer: int, file: Any, name: str, mime: str) -> str:
        server = await self.client.call("photos.getMessagesUploadServer", peer_id=peer)
        uploaded = await self.client.upload(_url(server), "photo", file, name, mime)
        saved = await self.client.call(
            "photos.saveMessagesPhoto",
            photo=uploaded.get("photo"),
            server=uploaded.get("server"),
            hash=uploaded.get("hash"),
        )
        item = saved[0] if isinstance(saved, list) and saved else None
        if not isinstance(item, dict):
            raise PermanentDeliveryError("VK saved the photo but returned no photo")
        key = f"_{item['access_key']}" if isinstance(item.get("access_key"), str) else ""
        return f"photo{item.get('owner_id')}_{item.get('id')}{key}"

    async def _upload_doc(self, peer: int, file: Any, name: str, mime: str) -> str:
        server = await self.client.call("docs.getMessagesUploadServer", type="doc", peer_id=peer)
        uploaded = await self.client.upload(_url(server), "file", file, name, mime)
        saved = await self.client.call("docs.save", file=uploaded.get("file"), title=name)
        doc = saved.get("doc") if isinstance(saved, dict) else None
        if not isinstance(doc, dict):
            raise PermanentDeliveryError("VK saved the document but returned no document")
        return f"doc{doc.get('owner_id')}_{doc.get('id')}"

    async def edit(self, edit: MatrixEdit) -> None:
        peer, cmid = _target(edit.target.message_id)
        text = edit.text
        if len(text) > self.text_limit:
            raise PermanentDeliveryError(f"VK takes at most {self.text_limit} characters")
        await self.client.call(
            "messages.edit",
            peer_id=peer,
            conversation_message_id=cmid,
            message=text,
            keep_forward_messages=1,
            keep_snippets=1,
        )

    async def delete(self, redaction: MatrixRedaction) -> None:
        peer, cmid = _target(redaction.target.message_id)
        await self.client.call("messages.delete", peer_id=peer, cmids=cmid, delete_for_all=1)


def keyboard(buttons: Sequence[Button]) -> str:
    """An inline keyboard of callback buttons, one a row; each button's payload carries its
    id and title, which come back in the ``message_event`` of a press."""
    rows = [
        [{"action": {"type": "callback", "label": b.title, "payload": button_payload(b)}}]
        for b in buttons
    ]
    return json.dumps({"inline": True, "buttons": rows}, ensure_ascii=False)


def button_payload(button: Button) -> str:
    return json.dumps({"b": button.id, "t": button.title}, ensure_ascii=False)


def _peer(chat: str) -> int:
    try:
        return int(chat)
    except ValueError:
        raise PermanentDeliveryError(f"not a VK conversation: {chat[:60]!r}") from None


def _target(value: MessageID) -> tuple[int, int]:
    try:
        return split_message_id(value)
    except ValueError as e:
        raise PermanentDeliveryError(str(e)) from e


def _forward(peer: int, msg: MatrixMessage) -> str | None:
    """The ``forward`` parameter that makes a message a reply to ``msg.reply_to``."""
    if msg.reply_to is None:
        return None
    try:
        rpeer, cmid = split_message_id(msg.reply_to.message_id)
    except ValueError:
        return None
    if rpeer != peer:
        return None
    return json.dumps({"peer_id": peer, "conversation_message_ids": [cmid], "is_reply": True})


def _url(server: Any) -> str:
    url = server.get("upload_url") if isinstance(server, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise PermanentDeliveryError("VK gave no upload address")
    return url


def _too_big(name: str, size: int, limit: int) -> str:
    mb = 1024 * 1024
    return f"{name} is {size / mb:.1f} MB; VK takes files of this kind up to {limit / mb:g} MB"
