from __future__ import annotations

import json
from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Connection, Database

from .queue import QueueItem, now_ms

Record = Any

_COLUMNS = (
    "id, queue_key, kind, payload, created_at, attempts, error, failed_at, room_id, announced"
)


@define
class DeadLetter:
    """A queue item the bridge gave up on: kept with its error until an admin retries it
    (``deadletters retry``), never deleted silently. ``announced`` is set once the room was
    told; an item buried but not announced (a crash in between) is announced at the next start.
    """

    db: ClassVar[Database]

    id: int
    queue_key: str
    kind: str
    payload: dict[str, Any]
    created_at: int
    attempts: int
    error: str
    failed_at: int
    room_id: str | None
    announced: bool

    @classmethod
    def _from_row(cls, row: Record) -> DeadLetter:
        data = dict(row)
        data["payload"] = json.loads(data["payload"])
        data["announced"] = bool(data["announced"])
        return cls(**data)

    @classmethod
    async def bury(cls, item: QueueItem, error: str, room_id: str | None = None) -> DeadLetter:
        """Move ``item`` from the queue into the dead letters, in one transaction."""
        failed_at = now_ms()
        conn: Connection
        async with cls.db.acquire() as conn, conn.transaction():
            dead_id = await conn.fetchval(
                "INSERT INTO dead_letter (queue_key, kind, payload, created_at, attempts, error,"
                " failed_at, room_id, announced) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false)"
                " RETURNING id",
                item.queue_key, item.kind, json.dumps(item.payload), item.created_at,
                item.attempts, error, failed_at, room_id,
            )  # fmt: skip
            await conn.execute("DELETE FROM queue WHERE id=$1", item.id)
        return cls(
            dead_id, item.queue_key, item.kind, item.payload, item.created_at, item.attempts,
            error, failed_at, room_id, False,
        )  # fmt: skip

    @classmethod
    async def get(cls, dead_id: int) -> DeadLetter | None:
        row = await cls.db.fetchrow(f"SELECT {_COLUMNS} FROM dead_letter WHERE id=$1", dead_id)
        return cls._from_row(row) if row else None

    @classmethod
    async def all(cls, limit: int | None = None) -> list[DeadLetter]:
        q = f"SELECT {_COLUMNS} FROM dead_letter ORDER BY id"
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        return [cls._from_row(r) for r in await cls.db.fetch(q)]

    @classmethod
    async def unannounced(cls) -> list[DeadLetter]:
        q = f"SELECT {_COLUMNS} FROM dead_letter WHERE announced=false ORDER BY id"
        return [cls._from_row(r) for r in await cls.db.fetch(q)]

    @classmethod
    async def count(cls) -> int:
        return int(await cls.db.fetchval("SELECT COUNT(*) FROM dead_letter") or 0)

    async def mark_announced(self) -> None:
        self.announced = True
        await self.db.execute("UPDATE dead_letter SET announced=true WHERE id=$1", self.id)

    async def revive(self) -> QueueItem | None:
        """Put the item back at the end of its queue (as new: no attempts, accepted now) and
        forget the dead letter, in one transaction. None if another retry took it first."""
        ts = now_ms()
        conn: Connection
        async with self.db.acquire() as conn, conn.transaction():
            gone = await conn.fetchval("DELETE FROM dead_letter WHERE id=$1 RETURNING id", self.id)
            if gone is None:
                return None
            item_id = await conn.fetchval(
                "INSERT INTO queue (queue_key, kind, payload, created_at, attempts) "
                "VALUES ($1, $2, $3, $4, 0) RETURNING id",
                self.queue_key, self.kind, json.dumps(self.payload), ts,
            )  # fmt: skip
        return QueueItem(item_id, self.queue_key, self.kind, self.payload, ts, 0)
