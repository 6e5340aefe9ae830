"""MAX -> Matrix: one Bot API update (a webhook body, or one of a polled batch) becomes the
remote events the core records.

Every field is checked before it is used: an update that is not a JSON object with a known
``update_type`` and the fields that type needs is ``UnreadableUpdate`` (the webhook answers
400, the poller skips it); an update of a type the bridge does not carry gives no events.

=====================  ================================================================
``message_created``    ``RemoteMessage`` (text, markup as HTML, attachments, reply link)
``message_edited``     ``RemoteEdit`` (the edit's id is the update's timestamp)
``message_removed``    ``RemoteDelete``
``message_callback``   ``RemoteButtonPress`` (the button's ``payload`` is its id)
``bot_started``        a notice ``RemoteMessage``; its deep-link ``payload`` is the
                       conversation's ``start`` for routing and opt-in
``bot_added``,         notices in the group's room (a title change also renames it)
``bot_removed``,
``user_added``,
``user_removed``,
``chat_title_changed``
=====================  ================================================================

The bot's own messages (its sender is the bot) give no events.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from ...events import (
    RemoteAttachment,
    RemoteButtonPress,
    RemoteChat,
    RemoteDelete,
    RemoteEdit,
    RemoteEvent,
    RemoteMessage,
    RemoteUser,
)
from ...types import MessageID, RemoteChatID, RemoteUserID
from .format import markup_to_html

UPDATE_TYPES = [
    "message_created",
    "message_edited",
    "message_removed",
    "message_callback",
    "bot_started",
    "bot_added",
    "bot_removed",
    "user_added",
    "user_removed",
    "chat_title_changed",
]
START_PAYLOAD = re.compile(r"[A-Za-z0-9_=-]{1,128}")
LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8}){0,3}")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MEDIA_TYPES = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/mpeg"}
MEDIA_KINDS = ("image", "video", "audio", "file", "sticker")
SHOWN_KINDS = {"location", "contact", "share"}


class UnreadableUpdate(ValueError):
    """An update no real MAX sends, which the bridge cannot keep: refused as a whole."""


# --------------------------------------------------------------------------- fields


def _dict(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnreadableUpdate(f"{name} is not an object")
    return value


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
        raise UnreadableUpdate(f"{name} is not a whole number")
    return value


def _str(value: Any, name: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or _UNSTORABLE.search(value):
        raise UnreadableUpdate(f"{name} is not text")
    return value


def _text(value: Any) -> str:
    """Optional text: anything else, or text the database cannot store, is dropped."""
    return value if isinstance(value, str) and not _UNSTORABLE.search(value) else ""


def _timestamp(value: Any) -> float | None:
    """MAX stamps in milliseconds since the epoch."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e15:
        return None
    return value / 1000


def user(raw: Any, name: str = "user") -> RemoteUser:
    raw = _dict(raw, name)
    user_id = _int(raw.get("user_id"), f"{name}.user_id")
    display = _text(raw.get("name")).strip()
    if not display:
        parts = (_text(raw.get("first_name")), _text(raw.get("last_name")))
        display = " ".join(part.strip() for part in parts if part.strip())
    if not display and _text(raw.get("username")):
        display = "@" + _text(raw.get("username"))
    return RemoteUser(id=RemoteUserID(str(user_id)), displayname=display or f"MAX user {user_id}")


def _chat(chat_id: Any, *, group: bool, name: str | None = None) -> RemoteChat:
    return RemoteChat(
        id=RemoteChatID(str(_int(chat_id, "chat_id"))), name=name or None, is_group=group
    )


# --------------------------------------------------------------------------- updates


def update_events(update: Any, *, bot_id: int | None) -> list[RemoteEvent]:
    """The events of one update; ``bot_id`` (from ``GET /me``) marks the bot's own messages."""
    update = _dict(update, "update")
    kind = _str(update.get("update_type"), "update_type")
    stamp = _timestamp(update.get("timestamp"))
    if kind in ("message_created", "message_edited"):
        return _message_events(update, kind, stamp, bot_id)
    if kind == "message_removed":
        return [
            RemoteDelete(
                chat=_chat(update.get("chat_id"), group=False),
                sender=RemoteUser(id=RemoteUserID(str(_int(update.get("user_id"), "user_id")))),
                timestamp=stamp,
                message_id=MessageID(_str(update.get("message_id"), "message_id")),
            )
        ]
    if kind == "message_callback":
        return _press_events(update, stamp)
    if kind in ("bot_started", "bot_added", "bot_removed", "user_added", "user_removed"):
        return _member_events(update, kind, stamp)
    if kind == "chat_title_changed":
        title = _text(update.get("title")).strip()
        who = user(update.get("user"))
        return [
            _notice(
                _chat(update.get("chat_id"), group=True, name=title),
                who,
                stamp,
                f"{kind}:{update.get('chat_id')}:{int((stamp or 0) * 1000)}",
                f"{who.displayname} renamed the group to “{title}”",
            )
        ]
    return []


def _message_events(
    update: dict[str, Any], kind: str, stamp: float | None, bot_id: int | None
) -> list[RemoteEvent]:
    message = _dict(update.get("message"), "message")
    body = _dict(message.get("body"), "message.body")
    recipient = _dict(message.get("recipient"), "message.recipient")
    mid = MessageID(_str(body.get("mid"), "message.body.mid"))
    if not mid:
        raise UnreadableUpdate("message.body.mid is empty")
    raw_sender = message.get("sender")
    if raw_sender is None:
        return []  # a channel post: the bridge does not carry channels
    sender = user(raw_sender, "message.sender")
    if bot_id is not None and sender.id == str(bot_id):
        return []
    group = recipient.get("chat_type") not in ("dialog", None)
    chat = _chat(recipient.get("chat_id"), group=group)
    if not group:
        chat = RemoteChat(id=chat.id, name=sender.displayname)
    text = _text(body.get("text"))
    markup = body.get("markup")
    html = markup_to_html(text, markup) if isinstance(markup, list) and text else None
    when = _timestamp(message.get("timestamp")) or stamp
    if kind == "message_edited":
        return [
            RemoteEdit(
                chat=chat,
                sender=sender,
                timestamp=stamp or when,
                message_id=mid,
                text=text,
                html=html,
                edit_id=str(update.get("timestamp")) if stamp is not None else None,
            )
        ]
    attachments, notes = _attachments(body.get("attachments"))
    if notes:
        text = "\n".join([text, *notes]) if text else "\n".join(notes)
        html = None if html is None else html + "<br>" + "<br>".join(notes)
    if not text and not attachments:
        return []
    metadata: dict[str, Any] = {}
    locale = _text(update.get("user_locale")).lower()
    if LANGUAGE.fullmatch(locale):
        metadata["routing"] = {"language": locale}
    return [
        RemoteMessage(
            chat=chat,
            sender=sender,
            timestamp=when,
            metadata=metadata,
            message_id=mid,
            text=text,
            html=html,
            attachments=attachments,
            reply_to=_reply_to(message.get("link")),
        )
    ]


def _reply_to(link: Any) -> MessageID | None:
    if not isinstance(link, dict) or link.get("type") != "reply":
        return None
    linked = link.get("message")
    mid = linked.get("mid") if isinstance(linked, dict) else None
    return MessageID(mid) if isinstance(mid, str) and mid and not _UNSTORABLE.search(mid) else None


def _attachments(raw: Any) -> tuple[tuple[RemoteAttachment, ...], list[str]]:
    """The files of a message, and a line each for what is shown as text (a location, a
    contact, a shared link)."""
    files: list[RemoteAttachment] = []
    notes: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        raw_payload = item.get("payload")
        payload: dict[str, Any] = raw_payload if isinstance(raw_payload, dict) else {}
        if kind in MEDIA_KINDS:
            url = _text(payload.get("url"))
            if not url.startswith(("https://", "http://")):
                continue
            filename = _text(item.get("filename")).replace("/", "_").strip() or None
            mimetype = MEDIA_TYPES.get(str(kind), "image/webp" if kind == "sticker" else None)
            if filename and kind == "file":
                mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            size = item.get("size")
            extension = mimetypes.guess_extension(mimetype or "") or ""
            files.append(
                RemoteAttachment(
                    url=url,
                    filename=filename or f"{kind}{extension}",
                    mimetype=mimetype or "application/octet-stream",
                    size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                    extra={"kind": kind},
                )
            )
        elif kind == "location":
            lat, lon = item.get("latitude"), item.get("longitude")
            if isinstance(lat, int | float) and isinstance(lon, int | float):
                notes.append(f"📍 https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}")
        elif kind == "contact":
            raw_info = payload.get("max_info")
            info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
            name = _text(info.get("name")) or _text(payload.get("vcf_info"))[:200]
            notes.append(f"👤 {name.strip() or 'a contact'}")
        elif kind == "share":
            url = _text(payload.get("url"))
            if url.startswith(("https://", "http://")):
                notes.append(f"🔗 {url}")
    return tuple(files), notes


def _press_events(update: dict[str, Any], stamp: float | None) -> list[RemoteEvent]:
    callback = _dict(update.get("callback"), "callback")
    message = _dict(update.get("message"), "message")
    body = _dict(message.get("body"), "message.body")
    recipient = _dict(message.get("recipient"), "message.recipient")
    payload = _str(callback.get("payload"), "callback.payload", default="")
    group = recipient.get("chat_type") not in ("dialog", None)
    return [
        RemoteButtonPress(
            chat=_chat(recipient.get("chat_id"), group=group),
            sender=user(callback.get("user"), "callback.user"),
            timestamp=_timestamp(callback.get("timestamp")) or stamp,
            message_id=MessageID(_str(body.get("mid"), "message.body.mid")),
            button_id=payload,
            title=_button_title(body.get("attachments"), payload),
            press_id=_str(callback.get("callback_id"), "callback.callback_id"),
        )
    ]


def _button_title(attachments: Any, payload: str) -> str:
    for item in attachments if isinstance(attachments, list) else []:
        keyboard = item.get("payload") if isinstance(item, dict) else None
        rows = keyboard.get("buttons") if isinstance(keyboard, dict) else None
        for row in rows if isinstance(rows, list) else []:
            for button in row if isinstance(row, list) else []:
                if isinstance(button, dict) and button.get("payload") == payload:
                    return _text(button.get("text"))
    return payload


def _member_events(update: dict[str, Any], kind: str, stamp: float | None) -> list[RemoteEvent]:
    who = user(update.get("user"))
    chat_id = _int(update.get("chat_id"), "chat_id")
    if update.get("is_channel") is True:
        return []
    at = int((stamp or 0) * 1000)
    event_id = f"{kind}:{chat_id}:{who.id}:{at}"
    if kind == "bot_started":
        chat = RemoteChat(id=RemoteChatID(str(chat_id)), name=who.displayname)
        payload = _text(update.get("payload"))
        metadata: dict[str, Any] = {}
        routing: dict[str, str] = {}
        if START_PAYLOAD.fullmatch(payload):
            metadata["portal"] = {"start_payload": payload}
            routing["start"] = payload
        locale = _text(update.get("user_locale")).lower()
        if LANGUAGE.fullmatch(locale):
            routing["language"] = locale
        if routing:
            metadata["routing"] = routing
        shown = f" (from “{payload}”)" if routing.get("start") else ""
        text = f"{who.displayname} started the conversation with the bot{shown}"
        return [_notice(chat, who, stamp, event_id, text, metadata)]
    chat = RemoteChat(id=RemoteChatID(str(chat_id)), is_group=True)
    text = {
        "bot_added": f"{who.displayname} added the bot to the group",
        "bot_removed": f"{who.displayname} removed the bot from the group",
        "user_added": f"{who.displayname} joined the group",
        "user_removed": f"{who.displayname} left the group",
    }[kind]
    return [_notice(chat, who, stamp, event_id, text)]


def _notice(
    chat: RemoteChat,
    sender: RemoteUser,
    stamp: float | None,
    event_id: str,
    text: str,
    metadata: dict[str, Any] | None = None,
) -> RemoteMessage:
    return RemoteMessage(
        chat=chat,
        sender=sender,
        timestamp=stamp,
        metadata=metadata or {},
        message_id=MessageID(event_id),
        text=text,
        notice=True,
    )
