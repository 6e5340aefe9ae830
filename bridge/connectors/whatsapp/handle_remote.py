"""WhatsApp -> Matrix: the webhook (verification, signature, payload) and the mapping of its
messages and statuses to remote events, handed over in timestamp order per conversation."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import itertools
import json
import math
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from aiohttp import web

from ...connector import BridgeHost, PermanentDeliveryError
from ...events import (
    RemoteAttachment,
    RemoteButtonPress,
    RemoteChat,
    RemoteDeliveryFailure,
    RemoteDeliveryReceipt,
    RemoteEvent,
    RemoteMessage,
    RemoteReaction,
    RemoteReactionRemove,
    RemoteReadReceipt,
    RemoteUser,
)
from ...types import MessageID, RemoteChatID, RemoteUserID
from ..http import BodyTooLarge, read_body
from .config import WhatsAppConfig
from .markup import whatsapp_to_matrix

MAX_BODY = 3 * 1024 * 1024
"""Meta's webhook payloads are at most 3 MB."""
SIGNATURE_HEADER = "X-Hub-Signature-256"
MEDIA_PREFIX = "wa-media:"
MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,255}")
"""Meta's media ids are digits; anything else (slashes, ``?``, ``#``, ``..``, other scripts)
would make the Graph API request point elsewhere."""
EXTENSIONS = {"image": "jpg", "audio": "ogg", "video": "mp4", "document": "bin", "sticker": "webp"}


class PayloadError(ValueError):
    """The webhook body is not the documented shape."""


def media_id_of(url: str) -> str:
    """The media id of an attachment URL made by ``parse_payload``; PermanentDeliveryError
    for one Meta never issues (it is not sent on: it would fetch some other node)."""
    media_id = url.removeprefix(MEDIA_PREFIX)
    if not url.startswith(MEDIA_PREFIX) or not _MEDIA_ID.fullmatch(media_id):
        raise PermanentDeliveryError(f"not a WhatsApp media id: {url[:100]!r}")
    return media_id


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{where} must be a list")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{where} must be a non-empty string")
    return value


def _id(value: Any, where: str) -> str:
    """An id that becomes part of a database key (a wamid, a wa_id): of any length and
    script, but without what no database column takes."""
    value = _str(value, where)
    if _UNSTORABLE.search(value):
        raise PayloadError(f"{where} holds NUL or a lone surrogate")
    return value


def parse_payload(body: Any, phone_number_id: str) -> list[RemoteEvent]:
    """The events of a webhook body for our number; PayloadError if it is malformed."""
    body = _obj(body, "body")
    events: list[RemoteEvent] = []
    for e, entry in enumerate(_list(body.get("entry"), "entry")):
        entry = _obj(entry, f"entry[{e}]")
        for c, change in enumerate(_list(entry.get("changes"), f"entry[{e}].changes")):
            where = f"entry[{e}].changes[{c}]"
            change = _obj(change, where)
            if change.get("field") != "messages":
                continue
            value = _obj(change.get("value"), f"{where}.value")
            metadata = value.get("metadata")
            if isinstance(metadata, dict) and metadata.get("phone_number_id") not in (
                None, phone_number_id,
            ):  # fmt: skip
                continue  # another number of the same app
            names = _contact_names(value, where)
            for m, message in enumerate(_list(value.get("messages"), f"{where}.value.messages")):
                events.extend(_message(_obj(message, f"{where}.messages[{m}]"), names))
            for s, status in enumerate(_list(value.get("statuses"), f"{where}.value.statuses")):
                events.extend(_status(_obj(status, f"{where}.statuses[{s}]")))
    return events


def _contact_names(value: dict[str, Any], where: str) -> dict[str, str]:
    names = {}
    for contact in _list(value.get("contacts"), f"{where}.value.contacts"):
        if isinstance(contact, dict) and isinstance(contact.get("wa_id"), str):
            profile = contact.get("profile")
            name = profile.get("name") if isinstance(profile, dict) else None
            if isinstance(name, str) and name:
                # A room name and display name: NUL and lone surrogates no column takes.
                names[contact["wa_id"]] = _UNSTORABLE.sub("\ufffd", name)
    return names


def _timestamp(value: Any) -> float | None:
    try:
        ts = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return ts if math.isfinite(ts) and 0 < ts < 1e11 else None


def _message(msg: dict[str, Any], names: dict[str, str]) -> list[RemoteEvent]:
    sender_id = _id(msg.get("from"), "message.from")
    message_id = MessageID(_id(msg.get("id"), "message.id"))
    name = names.get(sender_id)
    chat = RemoteChat(id=RemoteChatID(sender_id), name=name or f"+{sender_id}")
    sender = RemoteUser(id=RemoteUserID(sender_id), displayname=name or f"+{sender_id}")
    ts = _timestamp(msg.get("timestamp"))
    kind = msg.get("type")
    base: dict[str, Any] = {"chat": chat, "sender": sender, "timestamp": ts}
    if kind == "reaction":
        reaction = _obj(msg.get("reaction"), "message.reaction")
        target = MessageID(_id(reaction.get("message_id"), "reaction.message_id"))
        emoji = reaction.get("emoji")
        if isinstance(emoji, str) and emoji:
            return [RemoteReaction(**base, message_id=target, emoji=emoji)]
        return [RemoteReactionRemove(**base, message_id=target, removal_id=message_id)]
    context = msg.get("context")
    reply_to = context.get("id") if isinstance(context, dict) else None
    press = _press(msg, kind, reply_to)
    if press is not None:
        button_id, title = press
        return [
            RemoteButtonPress(
                **base,
                message_id=MessageID(str(reply_to)),
                button_id=button_id,
                title=title,
                press_id=message_id,
                metadata={"portal": {"last_inbound_at": ts}} if ts else {},
            )
        ]
    text, html_text, attachments, notice = _content(msg, kind)
    return [
        RemoteMessage(
            **base,
            message_id=message_id,
            text=text,
            html=html_text,
            attachments=tuple(attachments),
            reply_to=MessageID(reply_to) if _quotable(reply_to) else None,
            notice=notice,
            metadata=_metadata(msg, text, ts),
        )
    ]


def _press(msg: dict[str, Any], kind: Any, pressed: Any) -> tuple[str, str] | None:
    """The id and title of the reply button a ``button_reply`` pressed, when it names the
    message (``context.id``); None for anything else (a list reply stays a message)."""
    if kind != "interactive" or not _quotable(pressed):
        return None
    inter = _obj(msg.get("interactive"), "message.interactive")
    reply = inter.get("button_reply")
    if inter.get("type") != "button_reply" or not isinstance(reply, dict):
        return None
    button_id = reply.get("id")
    if not _quotable(button_id):
        return None  # shown as the message it also is
    title = reply.get("title")
    return button_id, _UNSTORABLE.sub("\ufffd", title) if isinstance(title, str) else ""


REFERRAL_FIELDS = ("source_id", "source_type", "source_url", "headline", "ctwa_clid")
MAX_REFERRAL_VALUE = 1024
MAX_START = 256
"""Longest text taken as a click-to-chat ``start`` (such links carry a short phrase)."""


def _metadata(msg: dict[str, Any], text: str, ts: float | None) -> dict[str, Any]:
    """The 24-hour customer-service window opens with each message of the customer
    (``portal.last_inbound_at``). For routing a new conversation: its text as the ``start``
    (a click-to-chat link, ``wa.me/<number>?text=...``, fills in the first message) and a
    click-to-WhatsApp ad's ``referral`` as a field (``referral.source_id``...)."""
    metadata: dict[str, Any] = {"portal": {"last_inbound_at": ts}} if ts else {}
    start = text.strip()
    routing: dict[str, Any] = {"start": start} if 0 < len(start) <= MAX_START else {}
    referral = msg.get("referral")
    if isinstance(referral, dict):
        fields = {
            key: value
            for key in REFERRAL_FIELDS
            if isinstance(value := referral.get(key), str) and len(value) <= MAX_REFERRAL_VALUE
        }
        if fields:
            routing["fields"] = {"referral": fields}
    if routing:
        metadata["routing"] = routing
    return metadata


def _quotable(reply_to: Any) -> TypeGuard[str]:
    """Whether a reply's ``context.id`` can be looked up; an id no message can have makes
    the message no reply, not lost."""
    return isinstance(reply_to, str) and bool(reply_to) and not _UNSTORABLE.search(reply_to)


def _content(
    msg: dict[str, Any], kind: Any
) -> tuple[str, str | None, list[RemoteAttachment], bool]:
    if kind == "text":
        body = _obj(msg.get("text"), "message.text").get("body")
        text = body if isinstance(body, str) else ""
        return text, whatsapp_to_matrix(text), [], False
    if kind in MEDIA_KINDS:
        media = _obj(msg.get(kind), f"message.{kind}")
        media_id = _str(media.get("id"), f"{kind}.id")
        mimetype = media.get("mime_type") if isinstance(media.get("mime_type"), str) else None
        ext = (mimetypes.guess_extension((mimetype or "").split(";")[0].strip()) or "").lstrip(
            "."
        ) or EXTENSIONS[kind]
        filename = media.get("filename") if isinstance(media.get("filename"), str) else None
        attachment = RemoteAttachment(
            url=MEDIA_PREFIX + media_id,
            filename=filename or f"{kind}_{media_id[-12:]}.{ext}",
            mimetype=(mimetype or "").split(";")[0].strip() or None,
            extra={
                "kind": kind,
                "sha256": media["sha256"] if isinstance(media.get("sha256"), str) else None,
                "voice": media.get("voice") is True,
            },
        )
        caption = media["caption"] if isinstance(media.get("caption"), str) else ""
        return caption, whatsapp_to_matrix(caption) if caption else None, [attachment], False
    if kind == "location":
        loc = _obj(msg.get("location"), "message.location")
        lat, lon = loc.get("latitude"), loc.get("longitude")
        label = ", ".join(str(p) for p in (loc.get("name"), loc.get("address")) if p)
        text = f"📍 Location: {lat}, {lon}" + (f" ({label})" if label else "")
        link = f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}"
        return text, f'<a href="{html.escape(link)}">{html.escape(text)}</a>', [], False
    if kind == "contacts":
        lines = []
        for contact in _list(msg.get("contacts"), "message.contacts"):
            if not isinstance(contact, dict):
                continue
            name = contact.get("name")
            formatted = name.get("formatted_name") if isinstance(name, dict) else None
            phones = [
                str(p["phone"]) for p in _list(contact.get("phones"), "contact.phones")
                if isinstance(p, dict) and p.get("phone")
            ]  # fmt: skip
            lines.append(f"👤 Contact: {formatted or '?'}, {', '.join(phones)}")
        return "\n".join(lines) or "👤 Contact", None, [], False
    if kind == "interactive":
        inter = _obj(msg.get("interactive"), "message.interactive")
        reply = inter.get("button_reply") or inter.get("list_reply") or {}
        title = reply.get("title", "") if isinstance(reply, dict) else ""
        desc = reply.get("description") if isinstance(reply, dict) else None
        return f"🔘 {title}" + (f" — {desc}" if desc else ""), None, [], False
    if kind == "button":
        button = _obj(msg.get("button"), "message.button")
        return f"🔘 {button.get('text') or button.get('payload') or ''}", None, [], False
    errors = [e for e in _list(msg.get("errors"), "message.errors") if isinstance(e, dict)]
    detail = "; ".join(str(e.get("title") or e.get("message") or e.get("code")) for e in errors)
    what = f"{kind} message" if isinstance(kind, str) and kind else "message"
    text = f"⚠️ The customer sent an {what} that WhatsApp cannot pass on"
    return text + (f" ({detail})" if detail else ""), None, [], True


def _status(status: dict[str, Any]) -> list[RemoteEvent]:
    message_id = MessageID(_id(status.get("id"), "status.id"))
    recipient = _id(status.get("recipient_id"), "status.recipient_id")
    base: dict[str, Any] = {
        "chat": RemoteChat(id=RemoteChatID(recipient)),
        "sender": RemoteUser(id=RemoteUserID(recipient)),
        "timestamp": _timestamp(status.get("timestamp")),
        "message_id": message_id,
    }
    state = status.get("status")
    if state == "read":
        return [RemoteReadReceipt(**base)]
    if state == "delivered":
        return [RemoteDeliveryReceipt(**base)]
    if state == "failed":
        errors = [e for e in _list(status.get("errors"), "status.errors") if isinstance(e, dict)]
        parts = []
        for e in errors:
            data = e.get("error_data")
            details = data.get("details") if isinstance(data, dict) else None
            text = details or e.get("message") or e.get("title") or "unknown error"
            parts.append(f"{text} (WhatsApp error {e.get('code')})")
        return [RemoteDeliveryFailure(**base, reason="; ".join(parts) or "WhatsApp: failed")]
    return []


@dataclass(order=True)
class _Pending:
    timestamp: float
    seq: int
    event: RemoteEvent = field(compare=False)
    done: asyncio.Future[bool] = field(compare=False)


class ReorderBuffer:
    """Meta delivers webhooks at least once and in no particular order. Events of a chat are
    held for ``window`` seconds and handed to the host sorted by their timestamp; the webhook
    is answered once all of its events are recorded."""

    def __init__(self, host: BridgeHost, window: float) -> None:
        self.host = host
        self.window = window
        self._pending: dict[str, list[_Pending]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._seq: Iterator[int] = itertools.count()

    async def add(self, events: list[RemoteEvent]) -> None:
        loop = asyncio.get_running_loop()
        waits = []
        for event in events:
            item = _Pending(event.timestamp or 0.0, next(self._seq), event, loop.create_future())
            self._pending.setdefault(event.chat.id, []).append(item)
            waits.append(item.done)
            if event.chat.id not in self._flushers:
                self._flushers[event.chat.id] = asyncio.create_task(self._flush(event.chat.id))
        await asyncio.gather(*waits)

    async def _flush(self, chat: str) -> None:
        await asyncio.sleep(self.window)
        items = sorted(self._pending.pop(chat, []))
        del self._flushers[chat]
        for index, item in enumerate(items):
            try:
                await self.host.handle_remote_event(item.event)
            except Exception as e:
                # Keep the order: none of the later ones may be recorded before this one.
                for later in items[index:]:
                    later.done.set_exception(e)
                return
            item.done.set_result(True)

    async def close(self) -> None:
        """Stop: webhooks still held are answered with an error, so Meta sends them again."""
        for task in list(self._flushers.values()):
            task.cancel()
        self._flushers.clear()
        for items in self._pending.values():
            for item in items:
                if not item.done.done():
                    item.done.set_exception(RuntimeError("the connector stopped"))
        self._pending.clear()


class Webhook:
    """``GET``: Meta's verification handshake. ``POST``: signed deliveries."""

    def __init__(self, config: WhatsAppConfig, host: BridgeHost) -> None:
        self.config = config
        self.host = host
        self.buffer = ReorderBuffer(host, config.reorder_window)
        self.open = False
        self.last_inbound: dict[str, float] = {}

    async def verify(self, request: web.Request) -> web.Response:
        q = request.query
        token = q.get("hub.verify_token", "").encode("utf-8", "replace")
        if q.get("hub.mode") == "subscribe" and hmac.compare_digest(
            token, self.config.verify_token.encode()
        ):
            return web.Response(text=q.get("hub.challenge", ""))
        self.host.log.warning("Refused a webhook verification with a wrong token")
        return web.json_response({"error": "verification failed"}, status=403)

    async def receive(self, request: web.Request) -> web.Response:
        try:
            body = await read_body(request, MAX_BODY)
        except BodyTooLarge:
            return web.json_response({"error": "body too large"}, status=413)
        if not verify_signature(
            self.config.app_secret, body, request.headers.get(SIGNATURE_HEADER)
        ):
            self.host.log.warning("Refused a webhook with a bad or missing signature")
            return web.json_response({"error": "bad signature"}, status=401)
        if not self.open:
            return web.json_response({"error": "not running"}, status=503)
        try:
            events = parse_payload(json.loads(body), self.config.phone_number_id)
        except (ValueError, RecursionError) as e:
            return web.json_response({"error": f"malformed payload: {e}"[:300]}, status=400)
        for event in events:
            if isinstance(event, RemoteMessage | RemoteButtonPress) and event.timestamp:
                chat = event.chat.id
                self.last_inbound[chat] = max(self.last_inbound.get(chat, 0), event.timestamp)
        try:
            await self.buffer.add(events)
        except Exception:
            self.host.log.exception("Could not record a webhook delivery")
            return web.json_response({"error": "try again later"}, status=503)
        return web.json_response({"status": "ok"})
