"""The durable queues: appservice transactions, remote deliveries and pending work."""

from __future__ import annotations

import json

import pytest
from mautrix.util.async_db import Database

from bridge.db import ASTransaction, QueueItem, RemoteDedup
from bridge.db.keys import digest
from tests.db.support import Databases

MIB = 1024 * 1024


def _events(
    n: int, room: str = "!r:example.com", first: int = 0
) -> list[tuple[str, str, dict[str, object]]]:
    return [
        (f"mx:{room}", "matrix", {"event_id": f"$e{i}{room}", "room_id": room})
        for i in range(first, first + n)
    ]


async def _stored() -> list[tuple[int, str, str, dict[str, object]]]:
    return [(i.id, i.queue_key, i.kind, i.payload) for i in await QueueItem.pending()]


async def test_record_transaction_returns_items_with_increasing_ids(database: Database) -> None:
    items = await QueueItem.record_transaction("txn1", _events(5))
    assert items is not None and len(items) == 5
    ids = [i.id for i in items]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [i.payload["event_id"] for i in items] == [f"$e{n}!r:example.com" for n in range(5)]
    assert all(i.kind == "matrix" and i.attempts == 0 for i in items)
    assert await _stored() == [(i.id, i.queue_key, i.kind, i.payload) for i in items]
    assert await ASTransaction.seen("txn1")
    assert not await ASTransaction.seen("txn2")

    later = await QueueItem.record_transaction("txn2", _events(2, first=5))
    assert later is not None and min(i.id for i in later) > max(ids)


async def test_record_transaction_twice_stores_nothing_the_second_time(
    database: Database,
) -> None:
    first = await QueueItem.record_transaction("txn1", _events(3))
    assert first is not None
    before = await _stored()
    assert await QueueItem.record_transaction("txn1", _events(3)) is None
    assert await _stored() == before
    assert await QueueItem.count() == 3


async def test_a_reused_txn_id_with_other_events_is_a_new_transaction(database: Database) -> None:
    # Synapse on SQLite restarts its transaction ids after a restart: id and content count.
    first = await QueueItem.record_transaction("1", _events(2, room="!a:example.com"))
    second = await QueueItem.record_transaction("1", _events(2, room="!b:example.com"))
    assert first is not None and second is not None
    assert await QueueItem.count() == 4
    assert await QueueItem.record_transaction("1", _events(2, room="!b:example.com")) is None
    assert await QueueItem.count() == 4


async def test_record_transaction_without_events_is_still_remembered(database: Database) -> None:
    assert await QueueItem.record_transaction("empty", []) == []
    assert await ASTransaction.seen("empty")
    assert await QueueItem.record_transaction("empty", []) is None
    assert await QueueItem.count() == 0


async def test_as_txn_prune(database: Database) -> None:
    await QueueItem.record_transaction("old", [])
    await database.execute("UPDATE as_txn SET received_at=1 WHERE txn_id='old'")
    await QueueItem.record_transaction("new", [])
    await ASTransaction.prune(older_than_ms=1000)
    assert not await ASTransaction.seen("old")
    assert await ASTransaction.seen("new")


async def test_record_transaction_is_atomic(database: Database) -> None:
    # The third insert fails inside the database transaction (no driver stores an object()).
    bad: list[tuple[str, str, dict[str, object]]] = [
        *_events(2), (object(), "matrix", {"event_id": "$bad"}),  # type: ignore[list-item]
    ]  # fmt: skip
    with pytest.raises(Exception):  # noqa: B017 - sqlite3 and asyncpg raise different types
        await QueueItem.record_transaction("txn1", bad)
    assert await QueueItem.count() == 0
    assert not await ASTransaction.seen("txn1")
    # The homeserver retries the same transaction: it must be accepted now.
    retried = await QueueItem.record_transaction("txn1", _events(2))
    assert retried is not None and len(retried) == 2
    assert await QueueItem.count() == 2


async def test_record_transaction_survives_a_restart(databases: Databases) -> None:
    db = await databases.open()
    items = await QueueItem.record_transaction("txn1", _events(3))
    assert items is not None
    await databases.close(db)

    await databases.open()
    assert await QueueItem.record_transaction("txn1", _events(3)) is None
    assert await _stored() == [(i.id, i.queue_key, i.kind, i.payload) for i in items]
    more = await QueueItem.record_transaction("txn2", _events(1, first=3))
    assert more is not None and more[0].id > max(i.id for i in items)


async def test_record_remote_deduplicates_per_account(database: Database) -> None:
    item = await QueueItem.record_remote("acc", "delivery-1", "rm:acc/chat", {"text": "hi"})
    assert item is not None
    assert (item.queue_key, item.kind, item.payload) == ("rm:acc/chat", "remote", {"text": "hi"})
    assert await QueueItem.record_remote("acc", "delivery-1", "rm:acc/chat", {"x": 1}) is None
    assert await RemoteDedup.seen("acc", "delivery-1")
    assert not await RemoteDedup.seen("other", "delivery-1")
    other = await QueueItem.record_remote("other", "delivery-1", "rm:other/chat", {"text": "yo"})
    assert other is not None and other.id > item.id
    assert await _stored() == [
        (item.id, "rm:acc/chat", "remote", {"text": "hi"}),
        (other.id, "rm:other/chat", "remote", {"text": "yo"}),
    ]


async def test_remote_dedup_prune(database: Database) -> None:
    await QueueItem.record_remote("acc", "old", "k", {})
    q = "UPDATE remote_dedup SET received_at=1 WHERE dedup_key=$1"
    await database.execute(q, digest("old"))
    await QueueItem.record_remote("acc", "new", "k", {})
    await RemoteDedup.prune(older_than_ms=1000)
    assert not await RemoteDedup.seen("acc", "old")
    assert await RemoteDedup.seen("acc", "new")


async def test_pending_is_in_id_order_and_pending_for_filters(database: Database) -> None:
    a1 = await QueueItem.enqueue("a", "remote", {"n": 1})
    b1 = await QueueItem.enqueue("b", "remote", {"n": 2})
    a2 = await QueueItem.enqueue("a", "matrix", {"n": 3})
    a3 = await QueueItem.enqueue("a", "remote", {"n": 4})
    assert [i.id for i in await QueueItem.pending()] == [a1.id, b1.id, a2.id, a3.id]
    assert [i.payload["n"] for i in await QueueItem.pending()] == [1, 2, 3, 4]
    assert [i.id for i in await QueueItem.pending_for("a")] == [a1.id, a2.id, a3.id]
    assert [i.id for i in await QueueItem.pending_for("a", after_id=a2.id)] == [a3.id]
    assert [i.id for i in await QueueItem.pending_for("b")] == [b1.id]
    assert await QueueItem.pending_for("c") == []


async def test_bump_attempts_is_persisted(database: Database) -> None:
    item = await QueueItem.enqueue("k", "remote", {})
    other = await QueueItem.enqueue("k", "remote", {})
    await item.bump_attempts()
    await item.bump_attempts()
    assert item.attempts == 2
    stored = {i.id: i.attempts for i in await QueueItem.pending()}
    assert stored == {item.id: 2, other.id: 0}


async def test_delete_removes_only_that_item(database: Database) -> None:
    items = [await QueueItem.enqueue("k", "remote", {"n": n}) for n in range(3)]
    await items[1].delete()
    assert [i.id for i in await QueueItem.pending()] == [items[0].id, items[2].id]
    assert await QueueItem.count() == 2


async def test_ids_keep_increasing_after_deleting_the_newest(database: Database) -> None:
    first = await QueueItem.enqueue("k", "remote", {})
    second = await QueueItem.enqueue("k", "remote", {})
    await second.delete()
    third = await QueueItem.enqueue("k", "remote", {})
    assert third.id > first.id
    assert [i.id for i in await QueueItem.pending_for("k")] == [first.id, third.id]


UNICODE = {
    "text": "Grüße 👋🏽 — 日本語テキスト, עִבְרִית, emoji ZWJ 👩‍👩‍👧‍👦, math 𝔘𝔫𝔦",
    "nul": "before\x00after",
    "quote": "'\"\\ $1 %s {}",
    "ключ 🔑": ["vålue", {"ñ": "ü"}],
}


async def test_unicode_payloads_round_trip(database: Database) -> None:
    txn = await QueueItem.record_transaction("txn-ü", [("mx:!ü:example.com", "matrix", UNICODE)])
    remote = await QueueItem.record_remote("acc", "dédup-🔑", "rm:acc/ü", UNICODE)
    assert txn is not None and remote is not None
    stored = await QueueItem.pending()
    assert [i.payload for i in stored] == [UNICODE, UNICODE]
    assert [i.queue_key for i in stored] == ["mx:!ü:example.com", "rm:acc/ü"]
    assert await RemoteDedup.seen("acc", "dédup-🔑")
    assert await ASTransaction.seen("txn-ü")


async def test_large_payload_round_trips(database: Database) -> None:
    chunk = "0123456789abcdefé🙂"
    payload = {"body": (chunk * (MIB // len(chunk) + 1))[: MIB - 10], "n": list(range(1000))}
    assert len(json.dumps(payload)) > MIB
    item = await QueueItem.record_remote("acc", "big", "rm:acc/chat", payload)
    assert item is not None
    (stored,) = await QueueItem.pending()
    assert stored.payload == payload
    items = await QueueItem.record_transaction("big-txn", [("k", "matrix", payload)])
    assert items is not None
    assert [i.payload == payload for i in await QueueItem.pending()] == [True, True]


async def test_pending_keys_and_get(database: Database) -> None:
    a1 = await QueueItem.enqueue("a", "remote", {"n": 1})
    b1 = await QueueItem.enqueue("b", "matrix", {"n": 2})
    assert await QueueItem.pending_keys() == [
        (a1.id, "a", a1.created_at),
        (b1.id, "b", b1.created_at),
    ]
    got = await QueueItem.get(b1.id)
    assert got is not None
    assert (got.id, got.queue_key, got.kind, got.payload) == (b1.id, "b", "matrix", {"n": 2})
    await b1.delete()
    assert await QueueItem.get(b1.id) is None
