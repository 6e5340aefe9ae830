"""A room's history for features (a transcript), and files the bot posts into a room.

History is read backwards from the newest event in pages of ``PAGE`` events, never more than
the caller's cap in all: a room of years stays a bounded amount of work. What the homeserver
returns is checked field by field; an event that does not read as a message is skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ...seams import History, HistoryEntry
from ..sender import MatrixSender, Refused
from ..util import txn_id
from .common import ServiceBase

PAGE = 100
"""Events asked for per ``/messages`` request."""
HISTORY_LIMIT = 5000
"""The most events ``history`` looks at unless its caller asks for fewer."""
FILE_TYPES = ("m.file", "m.image", "m.video", "m.audio")


class Pages:
    """A room's timeline read backwards from the newest event: ``async for chunk, state``
    gives each page (at most ``PAGE`` events) until ``limit`` events were looked at or the
    room's start was reached; then ``complete`` tells which."""

    def __init__(self, sender: MatrixSender, room_id: str, limit: int) -> None:
        self.sender, self.room_id, self.limit = sender, room_id, max(0, limit)
        self.complete = False

    async def __aiter__(self) -> AsyncIterator[tuple[list[Any], list[Any]]]:
        start: str | None = None
        seen = 0
        while seen < self.limit:
            chunk, state, end = await self.sender.messages(
                self.room_id, start, min(PAGE, self.limit - seen)
            )
            seen += len(chunk)
            yield chunk, state
            if end is None:
                self.complete = True
                return
            start = end


class HistoryServices(ServiceBase):
    async def history(self, room_id: str, *, limit: int = HISTORY_LIMIT) -> History:
        limit = max(0, min(limit, HISTORY_LIMIT))
        names: dict[str, str] = {}
        newest_first: list[HistoryEntry] = []
        pages = Pages(self.sender, room_id, limit)
        async for chunk, state in pages:
            for member in state:
                _learn_name(names, member)
            for event in chunk:
                entry = _entry(event, names)
                if entry is not None:
                    newest_first.append(entry)
        return History(newest_first[::-1], pages.complete)

    async def post_file(
        self, room_id: str, data: bytes, filename: str, mimetype: str, *, txn: str
    ) -> str | None:
        where, size = await self.sender.upload_to_room(room_id, data, mimetype, filename)
        content: dict[str, Any] = {
            "msgtype": "m.file", "body": filename, "filename": filename, **where,
            "info": {"mimetype": mimetype, "size": size},
        }  # fmt: skip
        try:
            return await self.sender.send(room_id, content, txn=txn_id("file", txn))
        except Refused:
            return None


def _learn_name(names: dict[str, str], member: Any) -> None:
    if not isinstance(member, dict) or member.get("type") != "m.room.member":
        return
    user, content = member.get("state_key"), member.get("content")
    if isinstance(user, str) and isinstance(content, dict):
        name = content.get("displayname")
        if isinstance(name, str) and name.strip():
            names.setdefault(user, name)


def _entry(event: Any, names: dict[str, str]) -> HistoryEntry | None:
    if not isinstance(event, dict) or event.get("type") != "m.room.message":
        return None
    content, sender, event_id = event.get("content"), event.get("sender"), event.get("event_id")
    if not (isinstance(content, dict) and isinstance(sender, str) and isinstance(event_id, str)):
        return None
    relation = content.get("m.relates_to")
    replaces = None
    if isinstance(relation, dict) and relation.get("rel_type") == "m.replace":
        target, new = relation.get("event_id"), content.get("m.new_content")
        if not isinstance(target, str) or not isinstance(new, dict):
            return None
        replaces, content = target, new
    body, msgtype = content.get("body"), content.get("msgtype")
    if not isinstance(body, str) or not isinstance(msgtype, str):
        return None  # redacted, or not a message anyone could read
    filename = None
    if msgtype in FILE_TYPES:
        name = content.get("filename")
        filename = name if isinstance(name, str) and name else body
    stamp = event.get("origin_server_ts")
    return HistoryEntry(
        event_id=event_id,
        sender=sender,
        sender_name=names.get(sender) or sender.split(":", 1)[0].lstrip("@"),
        timestamp=stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else 0,
        msgtype=msgtype,
        body=body,
        filename=filename,
        replaces=replaces,
    )
