from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any, ClassVar

from attrs import define
from mautrix.util.async_db import Connection, Database, Scheme

from .keys import digest
from .spool import Spool, spool_keys

Record = Any

_COLUMNS = "id, queue_key, kind, payload, created_at, attempts"
_INSERT = (
    "INSERT INTO queue (queue_key, kind, payload, created_at, attempts) "
    "VALUES ($1, $2, $3, $4, 0) RETURNING id"
)
_RECORD_TRANSACTION_PG = (
    # One statement (one round trip, atomic by itself): the events are inserted, in their
    # order, only if the transaction was.
    "WITH txn AS ("
    " INSERT INTO as_txn (txn_id, body_hash, received_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (txn_id, body_hash) DO NOTHING RETURNING 1"
    ") INSERT INTO queue (queue_key, kind, payload, created_at, attempts)"
    " SELECT e.queue_key, e.kind, e.payload, $3, 0"
    " FROM txn, unnest($4::text[], $5::text[], $6::text[]) WITH ORDINALITY"
    " AS e(queue_key, kind, payload, n)"
    " ORDER BY e.n RETURNING id"
)
_RECORD_REMOTE_PG = (
    # One statement, so one round trip and atomic by itself: the item is inserted only if
    # the dedup key was.
    "WITH seen AS ("
    " INSERT INTO remote_dedup (account, dedup_key, received_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (account, dedup_key) DO NOTHING RETURNING 1"
    ") INSERT INTO queue (queue_key, kind, payload, created_at, attempts)"
    " SELECT $4, $6, $5, $3, 0 FROM seen RETURNING id"
)


def now_ms() -> int:
    return int(time.time() * 1000)


@define
class QueueItem:
    """Work the bridge accepted and has not finished: a Matrix event from an appservice
    transaction (``kind='matrix'``), a remote event from a connector (``kind='remote'``) or a
    message the bridge starts (``kind='outbound'``). Items of one ``queue_key`` (a
    conversation, or a room that is none) are processed one at a time, in id order, and
    deleted once done, so a crash at any point leaves the unfinished ones here."""

    db: ClassVar[Database]

    id: int
    queue_key: str
    kind: str
    payload: dict[str, Any]
    created_at: int
    attempts: int

    @classmethod
    def _from_row(cls, row: Record) -> QueueItem:
        data = dict(row)
        data["payload"] = json.loads(data["payload"])
        return cls(**data)

    @classmethod
    async def pending(cls) -> list[QueueItem]:
        rows = await cls.db.fetch(f"SELECT {_COLUMNS} FROM queue ORDER BY id")
        return [cls._from_row(r) for r in rows]

    @classmethod
    async def pending_keys(cls) -> list[tuple[int, str, int]]:
        """``(id, queue_key, created_at)`` of every item, in id order: a backlog is resumed
        without its payloads in memory at once (``get`` loads each when its turn comes)."""
        rows = await cls.db.fetch("SELECT id, queue_key, created_at FROM queue ORDER BY id")
        return [(int(r["id"]), str(r["queue_key"]), int(r["created_at"])) for r in rows]

    @classmethod
    async def get(cls, item_id: int) -> QueueItem | None:
        row = await cls.db.fetchrow(f"SELECT {_COLUMNS} FROM queue WHERE id=$1", item_id)
        return None if row is None else cls._from_row(row)

    @classmethod
    async def pending_for(cls, queue_key: str, after_id: int = 0) -> list[QueueItem]:
        q = f"SELECT {_COLUMNS} FROM queue WHERE queue_key=$1 AND id>$2 ORDER BY id"
        return [cls._from_row(r) for r in await cls.db.fetch(q, queue_key, after_id)]

    @classmethod
    async def count(cls) -> int:
        return int(await cls.db.fetchval("SELECT COUNT(*) FROM queue") or 0)

    @classmethod
    async def record_transaction(
        cls, txn_id: str, items: Iterable[tuple[str, str, dict[str, Any]]]
    ) -> list[QueueItem] | None:
        """Record an appservice transaction and its events atomically. Returns None (and
        stores nothing) when the same transaction (same id, same events) was recorded before.
        """
        ts = now_ms()
        items = list(items)
        body_hash = hashlib.sha256(
            json.dumps([p for _, _, p in items], sort_keys=True).encode()
        ).hexdigest()
        recorded: list[QueueItem] = []
        if items and cls.db.scheme in (Scheme.POSTGRES, Scheme.COCKROACH):
            keys, kinds, payloads = ([it[i] for it in items] for i in range(3))
            rows = await cls.db.fetch(
                _RECORD_TRANSACTION_PG, txn_id, body_hash, ts, keys, kinds,
                [json.dumps(p) for p in payloads],
            )  # fmt: skip
            if not rows:
                return None
            # Ids come from the sequence in the order the rows were inserted: the items' order.
            ids = sorted(row["id"] for row in rows)
            return [
                cls(item_id, key, kind, payload, ts, 0)
                for item_id, (key, kind, payload) in zip(ids, items, strict=True)
            ]
        conn: Connection
        async with cls.db.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO as_txn (txn_id, body_hash, received_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (txn_id, body_hash) DO NOTHING RETURNING txn_id",
                txn_id,
                body_hash,
                ts,
            )
            if inserted is None:
                return None
            for key, kind, payload in items:
                item_id = await conn.fetchval(_INSERT, key, kind, json.dumps(payload), ts)
                recorded.append(cls(item_id, key, kind, payload, ts, 0))
        return recorded

    @classmethod
    async def record_remote(
        cls,
        account: str,
        dedup_key: str,
        queue_key: str,
        payload: dict[str, Any],
        kind: str = "remote",
    ) -> QueueItem | None:
        """Record a remote event (or a bridge-initiated message, ``kind='outbound'``)
        atomically with its dedup key. Returns None (and stores nothing) when the same was
        recorded before."""
        ts = now_ms()
        dedup_key = digest(dedup_key)  # of any length; the index takes a fixed size
        keys = spool_keys(payload)
        if cls.db.scheme in (Scheme.POSTGRES, Scheme.COCKROACH) and not keys:
            args = (account, dedup_key, ts, queue_key, json.dumps(payload), kind)
            new_id = await cls.db.fetchval(_RECORD_REMOTE_PG, *args)
            return None if new_id is None else cls(new_id, queue_key, kind, payload, ts, 0)
        conn: Connection
        async with cls.db.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO remote_dedup (account, dedup_key, received_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (account, dedup_key) DO NOTHING RETURNING dedup_key",
                account,
                dedup_key,
                ts,
            )
            if inserted is None:
                return None
            item_id = await conn.fetchval(_INSERT, queue_key, kind, json.dumps(payload), ts)
            await Spool.claim(conn, keys)
        return cls(item_id, queue_key, kind, payload, ts, 0)

    @classmethod
    async def enqueue(cls, queue_key: str, kind: str, payload: dict[str, Any]) -> QueueItem:
        ts = now_ms()
        item_id = await cls.db.fetchval(_INSERT, queue_key, kind, json.dumps(payload), ts)
        return cls(item_id, queue_key, kind, payload, ts, 0)

    async def set_payload(self, payload: dict[str, Any]) -> None:
        """Replace the payload (what a step of the item's work must remember across a
        crash, e.g. that a bridge-initiated message was sent)."""
        await self.db.execute(
            "UPDATE queue SET payload=$2 WHERE id=$1", self.id, json.dumps(payload)
        )
        self.payload = payload

    async def bump_attempts(self) -> None:
        self.attempts += 1
        await self.db.execute("UPDATE queue SET attempts=$2 WHERE id=$1", self.id, self.attempts)

    async def delete(self) -> None:
        """Forget the finished item, and the spooled payloads its event lists."""
        keys = spool_keys(self.payload) if self.kind == "remote" else []
        if not keys:
            await self.db.execute("DELETE FROM queue WHERE id=$1", self.id)
            return
        conn: Connection
        async with self.db.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM queue WHERE id=$1", self.id)
            await Spool.delete(*keys, conn=conn)
