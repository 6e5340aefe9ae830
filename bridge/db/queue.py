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

_COLUMNS = "id, queue_key, kind, payload, created_at, attempts, position"
_INSERT = (
    "INSERT INTO queue (queue_key, kind, payload, created_at, attempts) "
    "VALUES ($1, $2, $3, $4, 0) RETURNING id"
)
_RECORD_TRANSACTION_PG = (
    # One statement (one round trip, atomic by itself): the events are inserted, in their
    # order, only if the transaction was, and each event only if its id was never recorded
    # (pushed before in another transaction, or read back from the room by a catch-up).
    "WITH txn AS ("
    " INSERT INTO as_txn (txn_id, body_hash, received_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (txn_id, body_hash) DO NOTHING RETURNING 1"
    "), e AS ("
    " SELECT * FROM unnest($4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY"
    " AS e(queue_key, kind, payload, event_id, n)"
    "), seen AS ("
    " INSERT INTO matrix_seen (event_id, seen_at)"
    " SELECT e.event_id, $3 FROM txn, e WHERE e.event_id IS NOT NULL"
    " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    "), kept AS ("
    " SELECT e.* FROM txn, e"
    " WHERE e.event_id IS NULL OR e.event_id IN (SELECT event_id FROM seen)"
    "), ins AS ("
    " INSERT INTO queue (queue_key, kind, payload, created_at, attempts)"
    " SELECT queue_key, kind, payload, $3, 0 FROM kept ORDER BY n RETURNING id"
    ") SELECT (SELECT count(*) FROM txn) AS recorded,"
    " (SELECT array_agg(id ORDER BY id) FROM ins) AS ids,"
    " (SELECT array_agg(n ORDER BY n) FROM kept) AS ns"
)
_SEEN = (
    "INSERT INTO matrix_seen (event_id, seen_at) VALUES ($1, $2) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
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


_ORDER = "COALESCE(position, id), id"
"""The order of queue items: by id, except that the events a catch-up found stand where the
catch-up item stood (``position``)."""
MAX_EVENT_ID = 255


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
    position: int | None = None
    """Where the item stands in its key's order when that is not its id (an event a catch-up
    found stands after the item it followed in the room)."""

    @property
    def place(self) -> int:
        return self.id if self.position is None else self.position

    @classmethod
    def _from_row(cls, row: Record) -> QueueItem:
        data = dict(row)
        data["payload"] = json.loads(data["payload"])
        return cls(**data)

    @classmethod
    async def pending(cls) -> list[QueueItem]:
        rows = await cls.db.fetch(f"SELECT {_COLUMNS} FROM queue ORDER BY {_ORDER}")
        return [cls._from_row(r) for r in rows]

    @classmethod
    async def pending_keys(cls) -> list[tuple[int, str, int]]:
        """``(id, queue_key, created_at)`` of every item, in id order: a backlog is resumed
        without its payloads in memory at once (``get`` loads each when its turn comes)."""
        q = f"SELECT id, queue_key, created_at FROM queue ORDER BY {_ORDER}"
        rows = await cls.db.fetch(q)
        return [(int(r["id"]), str(r["queue_key"]), int(r["created_at"])) for r in rows]

    @classmethod
    async def get(cls, item_id: int) -> QueueItem | None:
        row = await cls.db.fetchrow(f"SELECT {_COLUMNS} FROM queue WHERE id=$1", item_id)
        return None if row is None else cls._from_row(row)

    @classmethod
    async def pending_for(cls, queue_key: str, after_id: int = 0) -> list[QueueItem]:
        q = f"SELECT {_COLUMNS} FROM queue WHERE queue_key=$1 AND id>$2 ORDER BY {_ORDER}"
        return [cls._from_row(r) for r in await cls.db.fetch(q, queue_key, after_id)]

    @classmethod
    async def count(cls) -> int:
        return int(await cls.db.fetchval("SELECT COUNT(*) FROM queue") or 0)

    @classmethod
    async def record_transaction(
        cls,
        txn_id: str,
        items: Iterable[tuple[str, str, dict[str, Any]]],
        *,
        once_per_event: bool = True,
    ) -> list[QueueItem] | None:
        """Record an appservice transaction and its events atomically. Returns None (and
        stores nothing) when the same transaction (same id, same events) was recorded before.
        An event whose id was recorded before is left out, unless ``once_per_event`` is off
        (an event queued again on purpose: its room key arrived)."""
        ts = now_ms()
        items = _first_of_each_event(items) if once_per_event else list(items)
        dedup_id = event_id_of if once_per_event else _no_id
        body_hash = hashlib.sha256(
            json.dumps([p for _, _, p in items], sort_keys=True).encode()
        ).hexdigest()
        recorded: list[QueueItem] = []
        if items and cls.db.scheme in (Scheme.POSTGRES, Scheme.COCKROACH):
            keys, kinds, payloads = ([it[i] for it in items] for i in range(3))
            row = await cls.db.fetchrow(
                _RECORD_TRANSACTION_PG, txn_id, body_hash, ts, keys, kinds,
                [json.dumps(p) for p in payloads], [dedup_id(it[2]) for it in items],
            )  # fmt: skip
            if row is None or not row["recorded"]:
                return None
            # Ids come from the sequence in the order the rows were inserted: the items' order.
            ids, kept = row["ids"] or [], row["ns"] or []
            return [
                cls(item_id, items[n - 1][0], items[n - 1][1], items[n - 1][2], ts, 0)
                for item_id, n in zip(sorted(ids), kept, strict=True)
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
                event_id = dedup_id(payload)
                if event_id is not None and await conn.fetchval(_SEEN, event_id, ts) is None:
                    continue  # recorded before: pushed already, or read back by a catch-up
                item_id = await conn.fetchval(_INSERT, key, kind, json.dumps(payload), ts)
                recorded.append(cls(item_id, key, kind, payload, ts, 0))
        return recorded

    @classmethod
    async def insert_found(
        cls,
        conn: Connection,
        barrier: QueueItem,
        events: Iterable[tuple[dict[str, Any], int, QueueItem]],
        told: Iterable[str],
        seen_at: int,
    ) -> list[QueueItem]:
        """Within ``conn``'s transaction: queue the ``(event, accepted at, after)`` a catch-up
        found, in their order, each right after the item ``after`` (the catch-up item
        ``barrier``, or an event it followed in the room that is still queued), ahead of what
        was queued after that (also after a restart); skip events recorded before; record the
        ids of ``told`` (events found too late, not queued) as seen; delete ``barrier``."""
        for told_id in told:
            await conn.execute(_SEEN, told_id, seen_at)
        found: list[QueueItem] = []
        for payload, created_at, after in events:
            event_id = event_id_of(payload)
            if event_id is None or await conn.fetchval(_SEEN, event_id, seen_at) is None:
                continue
            item_id = await conn.fetchval(
                "INSERT INTO queue (queue_key, kind, payload, created_at, attempts, position) "
                "VALUES ($1, 'matrix', $2, $3, 0, $4) RETURNING id",
                barrier.queue_key, json.dumps(payload), created_at, after.place,
            )  # fmt: skip
            found.append(
                cls(item_id, barrier.queue_key, "matrix", payload, created_at, 0, after.place)
            )
        await conn.execute("DELETE FROM queue WHERE id=$1", barrier.id)
        return found

    @classmethod
    async def payloads(cls, kind: str) -> list[dict[str, Any]]:
        """The payloads of the queued items of ``kind``."""
        rows = await cls.db.fetch("SELECT payload FROM queue WHERE kind=$1", kind)
        return [json.loads(r["payload"]) for r in rows]

    @classmethod
    async def seen(cls, event_ids: list[str]) -> set[str]:
        """Which of ``event_ids`` the bridge recorded before."""
        if not event_ids:
            return set()
        if cls.db.scheme in (Scheme.POSTGRES, Scheme.COCKROACH):
            q = "SELECT event_id FROM matrix_seen WHERE event_id = ANY($1::text[])"
            return {r["event_id"] for r in await cls.db.fetch(q, event_ids)}
        marks = ",".join(f"${i}" for i in range(1, len(event_ids) + 1))
        q = f"SELECT event_id FROM matrix_seen WHERE event_id IN ({marks})"
        return {r["event_id"] for r in await cls.db.fetch(q, *event_ids)}

    @classmethod
    async def prune_seen(cls, older_than_ms: int) -> None:
        await cls.db.execute("DELETE FROM matrix_seen WHERE seen_at < $1", older_than_ms)

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


def event_id_of(payload: dict[str, Any]) -> str | None:
    """The id of the room event ``payload`` is (None: an ephemeral or to-device one)."""
    event_id = payload.get("event_id")
    if isinstance(event_id, str) and event_id and len(event_id.encode()) <= MAX_EVENT_ID:
        return event_id
    return None


def _no_id(payload: dict[str, Any]) -> None:
    return None


def _first_of_each_event(
    items: Iterable[tuple[str, str, dict[str, Any]]],
) -> list[tuple[str, str, dict[str, Any]]]:
    """``items`` without the repeats of an event id within them."""
    kept, ids = [], set()
    for item in items:
        event_id = event_id_of(item[2])
        if event_id is not None:
            if event_id in ids:
                continue
            ids.add(event_id)
        kept.append(item)
    return kept
