from __future__ import annotations

import json
from typing import Any, ClassVar

from attrs import define, field
from mautrix.util.async_db import Database

from .keys import digest

Record = Any

_COLUMNS = (
    "account, chat, message_id, part, event_id, room_id, sender, sender_mxid, timestamp, metadata"
)
LOOKUP_BATCH = 500
"""Event ids asked for in one query (SQLite takes at most 32,766 parameters)."""


MEDIA_TYPES = ("m.file", "m.image", "m.video", "m.audio", "m.sticker")


def media_metadata(msgtype: object) -> dict[str, str]:
    """A mapping's metadata for a file (``{"media": "m.image"}``), so what is held can be
    counted without the rooms (``privacy report``); empty for text."""
    return {"media": msgtype} if isinstance(msgtype, str) and msgtype in MEDIA_TYPES else {}


@define
class Message:
    """One part of a bridged message: remote message id (and part) <-> Matrix event id.
    ``sender`` is the remote author, or None for a message staff sent from Matrix."""

    db: ClassVar[Database]

    account: str
    chat: str
    message_id: str
    part: int
    event_id: str
    room_id: str
    sender: str | None
    sender_mxid: str
    timestamp: int
    metadata: dict[str, Any] = field(factory=dict)

    @classmethod
    def _from_row(cls, row: Record | None) -> Message | None:
        if row is None:
            return None
        data = dict(row)
        data["metadata"] = json.loads(data["metadata"])
        return cls(**data)

    @classmethod
    async def get_parts(cls, account: str, chat: str, message_id: str) -> list[Message]:
        q = (
            f"SELECT {_COLUMNS} FROM message WHERE account=$1 AND chat_key=$2 "
            "AND message_key=$3 ORDER BY part"
        )
        rows = await cls.db.fetch(q, account, digest(chat), digest(message_id))
        return [m for m in (cls._from_row(r) for r in rows) if m]

    @classmethod
    async def get_by_event(cls, room_id: str, event_id: str) -> Message | None:
        q = f"SELECT {_COLUMNS} FROM message WHERE room_id=$1 AND event_id=$2"
        return cls._from_row(await cls.db.fetchrow(q, room_id, event_id))

    @classmethod
    async def crossed(cls, room_id: str, event_ids: list[str]) -> dict[str, str | None]:
        """Which of ``event_ids`` (of ``room_id``) crossed the bridge: event id -> its remote
        author, None for one that went to the remote side (from staff or the bridge). Events
        with no mapping are not in the answer."""
        found: dict[str, str | None] = {}
        for i in range(0, len(event_ids), LOOKUP_BATCH):
            batch = event_ids[i : i + LOOKUP_BATCH]
            marks = ", ".join(f"${n + 2}" for n in range(len(batch)))
            q = f"SELECT event_id, sender FROM message WHERE room_id=$1 AND event_id IN ({marks})"
            for row in await cls.db.fetch(q, room_id, *batch):
                found[row["event_id"]] = row["sender"]
        return found

    @classmethod
    async def last_in_chat(cls, account: str, chat: str, remote: bool) -> Message | None:
        cond = "sender IS NOT NULL" if remote else "sender IS NULL"
        q = (
            f"SELECT {_COLUMNS} FROM message WHERE account=$1 AND chat_key=$2 AND {cond} "
            "ORDER BY timestamp DESC LIMIT 1"
        )
        return cls._from_row(await cls.db.fetchrow(q, account, digest(chat)))

    @classmethod
    async def chat_of(cls, account: str, message_ids: list[str]) -> str | None:
        """The chat of the newest message among ``message_ids`` in ``account``."""
        ids = [m for m in message_ids if m][-50:]
        if not ids:
            return None
        marks = ", ".join(f"${i + 2}" for i in range(len(ids)))
        q = (
            f"SELECT chat FROM message WHERE account=$1 AND message_key IN ({marks}) "
            "ORDER BY timestamp DESC LIMIT 1"
        )
        chat = await cls.db.fetchval(q, account, *(digest(m) for m in ids))
        return str(chat) if chat is not None else None

    async def insert(self) -> None:
        q = (
            f"INSERT INTO message ({_COLUMNS}, chat_key, message_key) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
            "ON CONFLICT (account, chat_key, message_key, part) DO NOTHING"
        )
        await self.db.execute(
            q,
            self.account,
            self.chat,
            self.message_id,
            self.part,
            self.event_id,
            self.room_id,
            self.sender,
            self.sender_mxid,
            self.timestamp,
            json.dumps(self.metadata),
            digest(self.chat),
            digest(self.message_id),
        )

    async def delete(self) -> None:
        q = "DELETE FROM message WHERE account=$1 AND chat_key=$2 AND message_key=$3 AND part=$4"
        await self.db.execute(
            q, self.account, digest(self.chat), digest(self.message_id), self.part
        )

    @classmethod
    async def delete_all(cls, account: str, chat: str, message_id: str) -> None:
        q = "DELETE FROM message WHERE account=$1 AND chat_key=$2 AND message_key=$3"
        await cls.db.execute(q, account, digest(chat), digest(message_id))
