from __future__ import annotations

from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Database

from .keys import digest

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
        q = f"SELECT {_COLUMNS} FROM reaction WHERE account=$1 AND target_key=$2 AND emoji_key=$3"
        target = digest(chat, message_id, sender)
        return cls._from_row(await cls.db.fetchrow(q, account, target, digest(emoji)))

    @classmethod
    async def by_sender(
        cls, account: str, chat: str, message_id: str, sender: str
    ) -> list[Reaction]:
        q = f"SELECT {_COLUMNS} FROM reaction WHERE account=$1 AND target_key=$2"
        rows = await cls.db.fetch(q, account, digest(chat, message_id, sender))
        return [r for r in (cls._from_row(row) for row in rows) if r]

    @classmethod
    async def get_by_event(cls, room_id: str, event_id: str) -> Reaction | None:
        q = f"SELECT {_COLUMNS} FROM reaction WHERE room_id=$1 AND event_id=$2"
        return cls._from_row(await cls.db.fetchrow(q, room_id, event_id))

    async def insert(self) -> None:
        q = (
            f"INSERT INTO reaction ({_COLUMNS}, target_key, emoji_key) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (account, target_key, emoji_key) DO UPDATE "
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
            digest(self.chat, self.message_id, self.sender),
            digest(self.emoji),
        )

    async def delete(self) -> None:
        q = "DELETE FROM reaction WHERE account=$1 AND target_key=$2 AND emoji_key=$3"
        target = digest(self.chat, self.message_id, self.sender)
        await self.db.execute(q, self.account, target, digest(self.emoji))
