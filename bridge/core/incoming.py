"""Incoming Matrix events, read once into typed objects at the edge.

The appservice listener stores events as the homeserver sent them (cleaned of what no
database takes); ``read_event`` turns one into a frozen dataclass, checking every field's
type on the way, so the handlers behind it never walk raw dicts. Hostile events have any type
anywhere: a field of the wrong type is read as absent, and an event without the ids the
bridge needs to act (room, sender, event id with the right sigils) is read as None."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeGuard

MEDIA_TYPES = ("m.image", "m.file", "m.audio", "m.video")
TEXT_TYPES = ("m.text", "m.notice", "m.emote")
HTML_FORMAT = "org.matrix.custom.html"


@dataclass(frozen=True)
class MatrixIn:
    """What every event the bridge acts on has."""

    room_id: str


@dataclass(frozen=True)
class RoomEvent(MatrixIn):
    sender: str
    event_id: str
    timestamp: float | None
    """Seconds since the epoch (``origin_server_ts``), None when it is no sensible number."""


@dataclass(frozen=True)
class Media:
    url: str | None
    """None: not a plain ``url`` (an encrypted ``file``, or nothing)."""
    filename: str
    mimetype: str | None
    size: int | None
    file: dict[str, Any] | None = None
    """An encrypted file's ``EncryptedFile`` (its ``url``, key, iv and hash), as sent."""


@dataclass(frozen=True)
class StaffMessage(RoomEvent):
    msgtype: str
    body: str
    html: str | None
    reply_to: str | None
    """The event id this message replies to."""
    media: Media | None
    caption: bool
    """A media message whose body is a caption rather than its file name."""


@dataclass(frozen=True)
class StaffEdit(RoomEvent):
    target: str
    body: str
    html: str | None


@dataclass(frozen=True)
class StaffReaction(RoomEvent):
    target: str
    key: str


@dataclass(frozen=True)
class StaffRedaction(RoomEvent):
    redacts: str


@dataclass(frozen=True)
class MemberChange(RoomEvent):
    target: str
    membership: str
    is_direct: bool


@dataclass(frozen=True)
class StateChange(RoomEvent):
    """Any other state event: kept for the state store."""

    raw: dict[str, Any]


@dataclass(frozen=True)
class Receipts(MatrixIn):
    reads: tuple[tuple[str, str], ...]
    """``(event id, user)`` for every read receipt."""


@dataclass(frozen=True)
class Typing(MatrixIn):
    users: tuple[str, ...]


@dataclass(frozen=True)
class Unhandled(RoomEvent):
    """An event of a type the bridge does not act on (but whose sender may still matter)."""

    type: str


def is_id(value: Any, sigil: str) -> TypeGuard[str]:
    """Whether ``value`` is a Matrix identifier with ``sigil`` (``!room``, ``@user``,
    ``$event``): anything else in an event's id fields is nothing the bridge can act on."""
    return isinstance(value, str) and len(value) > 1 and value.startswith(sigil)


def obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def seconds(timestamp_ms: Any) -> float | None:
    """A Matrix millisecond timestamp in seconds, None when it is no sensible number."""
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int | float):
        return None
    try:
        value = timestamp_ms / 1000
    except OverflowError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _html(content: dict[str, Any]) -> str | None:
    formatted = content.get("formatted_body")
    if content.get("format") == HTML_FORMAT and isinstance(formatted, str):
        return formatted
    return None


def read_event(evt: dict[str, Any]) -> MatrixIn | None:
    """The typed form of a stored event, None when the bridge cannot act on it."""
    etype, room_id, content = evt.get("type"), evt.get("room_id"), evt.get("content", {})
    if not isinstance(etype, str) or not isinstance(content, dict) or not is_id(room_id, "!"):
        return None
    if etype == "m.receipt":
        return Receipts(room_id, tuple(_reads(content)))
    if etype == "m.typing":
        users = content.get("user_ids")
        listed = users if isinstance(users, list) else []
        return Typing(room_id, tuple(u for u in listed if isinstance(u, str)))
    sender, event_id = evt.get("sender"), evt.get("event_id")
    if not (is_id(sender, "@") and is_id(event_id, "$")):
        return None
    base = (room_id, sender, event_id, seconds(evt.get("origin_server_ts")))
    if "state_key" in evt:
        target = evt.get("state_key")
        if etype == "m.room.member" and isinstance(target, str):
            membership = _str(content.get("membership")) or ""
            return MemberChange(*base, target, membership, bool(content.get("is_direct")))
        return StateChange(*base, evt)
    if etype == "m.room.message":
        return _message(base, content)
    if etype == "m.reaction":
        relates = obj(content.get("m.relates_to"))
        key, target = relates.get("key"), relates.get("event_id")
        if isinstance(key, str) and isinstance(target, str):
            return StaffReaction(*base, target, key)
    elif etype == "m.room.redaction":
        redacts = evt.get("redacts") or content.get("redacts")
        if isinstance(redacts, str):
            return StaffRedaction(*base, redacts)
    return Unhandled(*base, etype)


def _message(base: tuple[str, str, str, float | None], content: dict[str, Any]) -> MatrixIn:
    relates = obj(content.get("m.relates_to"))
    if relates.get("rel_type") == "m.replace":
        target = relates.get("event_id")
        if not isinstance(target, str):
            return Unhandled(*base, "m.room.message")
        new = obj(content.get("m.new_content"))
        return StaffEdit(*base, target, _str(new.get("body")) or "", _html(new))
    body = _str(content.get("body")) or ""
    msgtype = _str(content.get("msgtype")) or "m.text"
    reply_to = _str(obj(relates.get("m.in_reply_to")).get("event_id"))
    media = None
    caption = False
    if msgtype in MEDIA_TYPES:
        info = obj(content.get("info"))
        filename = _str(content.get("filename"))
        names = (filename, body, "file")
        size = info.get("size")
        media = Media(
            url=_str(content.get("url")),
            filename=next(n for n in names if n),
            mimetype=_str(info.get("mimetype")) or None,
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            file=obj(content.get("file")) or None,
        )
        caption = bool(filename) and body != filename
    return StaffMessage(*base, msgtype, body, _html(content), reply_to, media, caption)


def _reads(content: dict[str, Any]) -> list[tuple[str, str]]:
    reads: list[tuple[str, str]] = []
    for event_id, receipts in content.items():
        readers = obj(receipts).get("m.read")
        if isinstance(readers, dict):
            reads.extend((event_id, user) for user in readers if isinstance(user, str))
    return reads
