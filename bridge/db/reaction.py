from __future__ import annotations

from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Database

Record = Any

_COLUMNS = "account, chat, message_id, sender, emoji, event_id, room_id"


@define
class Reaction:
    """A bridged reaction; ``sender`` is a remote user id or a staff member's Matrix ID."""

    db: ClassVar[Database]

    account: str
    chat: str
    message_id: str
    sender: str
    emoji: str
    event_id: str
    room_id: str

    @classmethod
    def _from_row(cls, row: Record | None) -> Reaction | None:
        return cls(**dict(row)) if row else None

    @classmethod
    async def get(
        cls, account: str, chat: str, message_id: str, sender: str, emoji: str
    ) -> Reaction | None:
        q = (
            f"SELECT {_COLUMNS} FROM reaction WHERE account=$1 AND chat=$2 AND message_id=$3 "
            "AND sender=$4 AND emoji=$5"
        )
        return cls._from_row(await cls.db.fetchrow(q, account, chat, message_id, sender, emoji))

    @classmethod
    async def by_sender(
        cls, account: str, chat: str, message_id: str, sender: str
    ) -> list[Reaction]:
        q = (
            f"SELECT {_COLUMNS} FROM reaction WHERE account=$1 AND chat=$2 AND message_id=$3 "
            "AND sender=$4"
        )
        rows = await cls.db.fetch(q, account, chat, message_id, sender)
        return [r for r in (cls._from_row(row) for row in rows) if r]

    @classmethod
    async def get_by_event(cls, room_id: str, event_id: str) -> Reaction | None:
        q = f"SELECT {_COLUMNS} FROM reaction WHERE room_id=$1 AND event_id=$2"
        return cls._from_row(await cls.db.fetchrow(q, room_id, event_id))

    async def insert(self) -> None:
        q = (
            f"INSERT INTO reaction ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (account, chat, message_id, sender, emoji) DO UPDATE "
            "SET event_id=excluded.event_id, room_id=excluded.room_id"
        )
        await self.db.execute(
            q,
            self.account,
            self.chat,
            self.message_id,
            self.sender,
            self.emoji,
            self.event_id,
            self.room_id,
        )

    async def delete(self) -> None:
        q = (
            "DELETE FROM reaction WHERE account=$1 AND chat=$2 AND message_id=$3 AND sender=$4 "
            "AND emoji=$5"
        )
        await self.db.execute(q, self.account, self.chat, self.message_id, self.sender, self.emoji)
