"""``crypto_waiting``: encrypted events waiting for their room key (``core/crypto``)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Database

from .queue import now_ms

_COLUMNS = "event_id, room_id, session_id, payload, notice_id, created_at"


@define
class WaitingEvent:
    db: ClassVar[Database]

    event_id: str
    room_id: str
    session_id: str
    payload: dict[str, Any]
    notice_id: str | None = None
    created_at: int = 0

    @classmethod
    def _from_row(cls, row: Any) -> WaitingEvent:
        data = dict(row)
        data["payload"] = json.loads(data["payload"])
        return cls(**data)

    @classmethod
    async def get(cls, event_id: str) -> WaitingEvent | None:
        q = f"SELECT {_COLUMNS} FROM crypto_waiting WHERE event_id=$1"
        row = await cls.db.fetchrow(q, event_id)
        return cls._from_row(row) if row else None

    @classmethod
    async def all_ids(cls) -> set[str]:
        return {
            str(r["event_id"]) for r in await cls.db.fetch("SELECT event_id FROM crypto_waiting")
        }

    @classmethod
    async def for_session(cls, room_id: str, session_id: str) -> list[WaitingEvent]:
        q = f"SELECT {_COLUMNS} FROM crypto_waiting WHERE session_id=$1 AND room_id=$2"
        return [cls._from_row(r) for r in await cls.db.fetch(q, session_id, room_id)]

    async def insert(self) -> None:
        self.created_at = self.created_at or now_ms()
        await self.db.execute(
            "INSERT INTO crypto_waiting (event_id, room_id, session_id, payload, notice_id,"
            " created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
            self.event_id, self.room_id, self.session_id, json.dumps(self.payload),
            self.notice_id, self.created_at,
        )  # fmt: skip

    async def set_notice(self, notice_id: str) -> None:
        self.notice_id = notice_id
        await self.db.execute(
            "UPDATE crypto_waiting SET notice_id=$1 WHERE event_id=$2", notice_id, self.event_id
        )

    async def delete(self) -> None:
        await self.db.execute("DELETE FROM crypto_waiting WHERE event_id=$1", self.event_id)
