"""VK -> Matrix: the events of the Callback API and of the Bots Long Poll API (the same objects
in both) mapped to remote events, and the people's names looked up with ``users.get``.

A message is known by ``<peer_id>_<conversation_message_id>``: the one id VK gives every
message in private and group chats alike, and what ``messages.edit``/``messages.delete`` and
replies (``forward``) take for a community."""

from __future__ import annotations

import dataclasses
import json
import math
import mimetypes
import re
import time
from collections import OrderedDict
from typing import Any, TypeGuard

from ...events import (
    RemoteAttachment,
    RemoteButtonPress,
    RemoteChat,
    RemoteEdit,
    RemoteEvent,
    RemoteMessage,
    RemoteTyping,
    RemoteUser,
)
from ...types import MessageID, RemoteChatID, RemoteUserID
from .format import plain_mentions, vk_to_matrix

CHAT_OFFSET = 2_000_000_000
"""A group chat's ``peer_id`` is this plus the chat's number."""
MAX_PEER = 2**53
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_REF = 256
BRIDGED = (
    "message_new",
    "message_edit",
    "message_event",
    "message_typing_state",
    "message_allow",
    "message_deny",
)


class PayloadError(ValueError):
    """The event is not the documented shape."""


def message_id(peer_id: int, cmid: int) -> MessageID:
    return MessageID(f"{peer_id}_{cmid}")


def split_message_id(value: str) -> tuple[int, int]:
    """``peer_id`` and ``conversation_message_id`` of an id made by ``message_id``."""
    peer, _, cmid = value.partition("_")
    try:
        return int(peer), int(cmid)
    except ValueError:
        raise ValueError(f"not a VK message id: {value[:60]!r}") from None


def is_group(peer_id: int) -> bool:
    return peer_id > CHAT_OFFSET


def _int(value: Any, where: str, *, positive: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= MAX_PEER:
        raise PayloadError(f"{where} must be a whole number")
    if positive and value <= 0:
        raise PayloadError(f"{where} must be positive")
    return value


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object")
    return value


def _text(value: Any) -> str:
    return _UNSTORABLE.sub("\ufffd", value) if isinstance(value, str) else ""


def _timestamp(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return float(value) if 0 < value < 1e11 else None


def parse_event(event: Any, group_id: int) -> list[RemoteEvent]:
    """The remote events of one Callback API / Long Poll event of our community ([] for
    types the bridge does not carry); PayloadError if it is malformed."""
    event = _obj(event, "event")
    kind = event.get("type")
    if kind not in BRIDGED:
        return []
    if event.get("group_id") not in (None, group_id):
        raise PayloadError("the event is for another community")
    obj = _obj(event.get("object"), "object")
    if kind == "message_new":
        return [_message(_obj(obj.get("message"), "object.message"))]
    if kind == "message_edit":
        return [_edit(obj)]
    if kind == "message_typing_state":
        return _typing(obj)
    if kind == "message_event":
        return _press(obj)
    return [_permission(obj, kind == "message_allow", event.get("event_id"))]


def _base(msg: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
    peer_id = _int(msg.get("peer_id"), "message.peer_id")
    from_id = _int(msg.get("from_id"), "message.from_id", positive=False)
    cmid = _int(msg.get("conversation_message_id"), "message.conversation_message_id")
    group = is_group(peer_id)
    chat = RemoteChat(
        id=RemoteChatID(str(peer_id)),
        name=f"VK chat {peer_id - CHAT_OFFSET}" if group else None,
        is_group=group,
    )
    sender = RemoteUser(id=RemoteUserID(str(from_id)))
    base = {"chat": chat, "sender": sender, "timestamp": _timestamp(msg.get("date"))}
    return peer_id, cmid, base


def _message(msg: dict[str, Any]) -> RemoteMessage:
    peer_id, cmid, base = _base(msg)
    text = _text(msg.get("text"))
    lines = [text] if text else []
    attachments: list[RemoteAttachment] = []
    raw = msg.get("attachments")
    for item in raw if isinstance(raw, list) else []:
        attachment, line = _attachment(item)
        if attachment is not None:
            attachments.append(attachment)
        if line:
            lines.append(line)
    reply = msg.get("reply_message")
    reply_to = None
    if isinstance(reply, dict):
        rcmid, rpeer = reply.get("conversation_message_id"), reply.get("peer_id", peer_id)
        if _whole(rcmid) and _whole(rpeer) and 0 < rcmid < MAX_PEER and rpeer == peer_id:
            reply_to = message_id(peer_id, rcmid)
    if isinstance(msg.get("fwd_messages"), list) and msg["fwd_messages"]:
        lines.append(f"↪️ {len(msg['fwd_messages'])} forwarded message(s)")
    text = "\n".join(lines)
    return RemoteMessage(
        **base,
        message_id=message_id(peer_id, cmid),
        text=plain_mentions(text),
        html=vk_to_matrix(text),
        attachments=tuple(attachments),
        reply_to=reply_to,
        metadata=_metadata(msg, text),
    )


def _metadata(msg: dict[str, Any], text: str) -> dict[str, Any]:
    """A ``vk.me/<community>?ref=...`` link's ``ref`` starts a conversation's routing; else
    its first words, as on the other channels."""
    ref = msg.get("ref")
    start = ref if isinstance(ref, str) and 0 < len(ref) <= MAX_REF else text.strip()
    routing: dict[str, Any] = {"start": _text(start)} if 0 < len(start) <= MAX_REF else {}
    source = msg.get("ref_source")
    if isinstance(source, str) and 0 < len(source) <= MAX_REF:
        routing["fields"] = {"ref_source": _text(source)}
    return {"routing": routing} if routing else {}


def _largest(sizes: Any) -> str | None:
    best, area = None, -1
    for size in sizes if isinstance(sizes, list) else []:
        if not isinstance(size, dict) or not isinstance(size.get("url"), str):
            continue
        w, h = size.get("width"), size.get("height")
        value = w * h if isinstance(w, int) and isinstance(h, int) else 0
        if value > area:
            best, area = size["url"], value
    return best


def _attachment(item: Any) -> tuple[RemoteAttachment | None, str]:
    """A downloadable file and/or a line of text for one attachment of a message."""
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        return None, ""
    kind = item["type"]
    body = item.get(kind)
    if not isinstance(body, dict):
        return None, f"📎 {kind}"
    ident = _text(f"{body.get('owner_id')}_{body.get('id')}")[:64]
    if kind == "photo":
        url = _largest(body.get("sizes"))
        name = f"photo_{ident}.jpg"
        return (RemoteAttachment(_text(url), name, "image/jpeg") if url else None), ""
    if kind == "doc" and isinstance(body.get("url"), str):
        title = _text(body.get("title")) or f"doc_{ident}"
        ext = body.get("ext")
        if isinstance(ext, str) and ext and not title.lower().endswith("." + ext.lower()):
            title = _text(f"{title}.{ext}")
        size = body.get("size") if _whole(body.get("size")) else None
        size = size if size is not None and 0 <= size < MAX_PEER else None
        mime = mimetypes.guess_type(title)[0]
        return RemoteAttachment(_text(body["url"]), title, mime, size), ""
    if kind == "audio_message":
        url = body.get("link_ogg") or body.get("link_mp3")
        if isinstance(url, str):
            mime = "audio/ogg" if url == body.get("link_ogg") else "audio/mpeg"
            ext = "ogg" if mime == "audio/ogg" else "mp3"
            return RemoteAttachment(_text(url), f"voice_{ident}.{ext}", mime), ""
    if kind == "sticker":
        url = _largest(body.get("images"))
        if url:
            name = _text(f"sticker_{body.get('sticker_id')}")[:64]
            return RemoteAttachment(_text(url), f"{name}.png", "image/png"), ""
    if kind == "video":
        return None, f"🎬 https://vk.com/video{ident}"
    if kind == "link" and isinstance(body.get("url"), str):
        return None, f"🔗 {_text(body['url'])}"
    return None, f"📎 {kind}"


def _edit(msg: dict[str, Any]) -> RemoteEdit:
    peer_id, cmid, base = _base(msg)
    text = _text(msg.get("text"))
    stamp = msg.get("update_time")
    return RemoteEdit(
        **base,
        message_id=message_id(peer_id, cmid),
        text=plain_mentions(text),
        html=vk_to_matrix(text),
        edit_id=str(stamp) if isinstance(stamp, int) and not isinstance(stamp, bool) else None,
    )


def _press(obj: dict[str, Any]) -> list[RemoteEvent]:
    """A callback button pressed (``message_event``): its payload holds the button's id and
    title (``handle_matrix.keyboard``); a payload of some other keyboard is not a press."""
    peer_id = _int(obj.get("peer_id"), "object.peer_id")
    user_id = _int(obj.get("user_id"), "object.user_id")
    cmid = _int(obj.get("conversation_message_id"), "object.conversation_message_id")
    event_id = obj.get("event_id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 128:
        raise PayloadError("object.event_id must be a string")
    payload = obj.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError):
            payload = None
    button = payload.get("b") if isinstance(payload, dict) else None
    title = payload.get("t") if isinstance(payload, dict) else None
    if not isinstance(button, str) or not button or _UNSTORABLE.search(button):
        return []
    return [
        RemoteButtonPress(
            chat=RemoteChat(id=RemoteChatID(str(peer_id)), is_group=is_group(peer_id)),
            sender=RemoteUser(id=RemoteUserID(str(user_id))),
            message_id=message_id(peer_id, cmid),
            button_id=button,
            title=_text(title),
            press_id=_text(event_id),
            metadata={"vk_event": {"event_id": _text(event_id), "user_id": user_id}},
        )
    ]


def _typing(obj: dict[str, Any]) -> list[RemoteEvent]:
    if obj.get("state") != "typing":
        return []
    from_id = _int(obj.get("from_id"), "object.from_id")
    chat = RemoteChat(id=RemoteChatID(str(from_id)))
    sender = RemoteUser(id=RemoteUserID(str(from_id)))
    # VK's typing events carry no time; the time of arrival tells two of them apart.
    return [RemoteTyping(chat=chat, sender=sender, timestamp=time.time())]


def _permission(obj: dict[str, Any], allowed: bool, event_id: Any) -> RemoteMessage:
    """``message_allow``/``message_deny``: the customer let the community write to them, or
    took that back; staff see it as a notice in the conversation."""
    user_id = _int(obj.get("user_id"), "object.user_id")
    text = (
        "✅ The customer allows the community's messages"
        if allowed
        else "⛔ The customer no longer allows the community's messages: replies fail until"
        " they write again"
    )
    ident = event_id if isinstance(event_id, str) and event_id else "?"
    return RemoteMessage(
        chat=RemoteChat(id=RemoteChatID(str(user_id))),
        sender=RemoteUser(id=RemoteUserID(str(user_id))),
        message_id=MessageID(f"{user_id}_{'allow' if allowed else 'deny'}_{_text(ident)[:64]}"),
        text=text,
        notice=True,
    )


class Names:
    """People's names from ``users.get``, remembered (the most recent thousand)."""

    LIMIT = 1000

    def __init__(self, lookup: Any) -> None:
        self._lookup = lookup
        self._names: OrderedDict[int, str] = OrderedDict()

    async def fill(self, events: list[RemoteEvent]) -> list[RemoteEvent]:
        """``events`` with their senders' names (and a private chat's name): VK's, or
        "VK user <id>" for someone VK does not show. When the lookup fails the names stay
        unset, so a passing error does not rename a known customer."""
        wanted = {
            int(e.sender.id)
            for e in events
            if e.sender.displayname is None and e.sender.id.isdigit()
        } - set(self._names)
        if wanted:
            try:
                users = await self._lookup(sorted(wanted))
            except Exception:  # names are a nicety: the event goes on without them
                return events
            for user in users if isinstance(users, list) else []:
                if isinstance(user, dict) and _whole(user.get("id")):
                    first, last = _text(user.get("first_name")), _text(user.get("last_name"))
                    self._names[user["id"]] = f"{first} {last}".strip()
            while len(self._names) > self.LIMIT:
                self._names.popitem(last=False)
        return [self._named(e) for e in events]

    def _named(self, event: RemoteEvent) -> RemoteEvent:
        ident = event.sender.id
        name = self._names.get(int(ident)) if ident.isdigit() else None
        name = name or f"VK user {ident}"
        sender = dataclasses.replace(event.sender, displayname=event.sender.displayname or name)
        chat = event.chat
        if chat.name is None and not chat.is_group:
            chat = dataclasses.replace(chat, name=name)
        return dataclasses.replace(event, sender=sender, chat=chat)
