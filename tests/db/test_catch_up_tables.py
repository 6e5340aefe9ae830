"""What the catch-up keeps: every recorded event id (``matrix_seen``), the rooms' activity and
last read (``room_timeline``), and the place in the queue of the events a catch-up found."""

from __future__ import annotations

from mautrix.util.async_db import Database

from bridge.db import QueueItem, RoomTimeline
from tests.db.support import Databases

ROOM = "!r:example.com"
KEY = f"mx:{ROOM}"


def _event(event_id: str, room: str = ROOM) -> tuple[str, str, dict[str, object]]:
    return (f"mx:{room}", "matrix", {"event_id": event_id, "room_id": room, "type": "m.x"})


async def _order() -> list[str]:
    return [str(i.payload.get("event_id", i.kind)) for i in await QueueItem.pending()]


async def test_an_event_pushed_again_in_another_transaction_is_not_queued_again(
    database: Database,
) -> None:
    first = await QueueItem.record_transaction("1", [_event("$a"), _event("$b")])
    assert first is not None and len(first) == 2
    # Another transaction (the homeserver resent after a restart) with one old, one new event.
    again = await QueueItem.record_transaction("2", [_event("$b"), _event("$c")])
    assert again is not None and [i.payload["event_id"] for i in again] == ["$c"]
    assert await _order() == ["$a", "$b", "$c"]
    # Only events already recorded: the transaction is recorded, nothing is queued.
    assert await QueueItem.record_transaction("3", [_event("$a")]) == []
    assert await QueueItem.count() == 3


async def test_an_event_twice_in_one_transaction_is_queued_once(database: Database) -> None:
    items = await QueueItem.record_transaction("1", [_event("$a"), _event("$a"), _event("$b")])
    assert items is not None and [i.payload["event_id"] for i in items] == ["$a", "$b"]


async def test_events_without_an_id_are_always_queued(database: Database) -> None:
    receipt = ("mx:!r:example.com", "matrix", {"type": "m.receipt", "room_id": ROOM})
    first = await QueueItem.record_transaction("1", [receipt])
    second = await QueueItem.record_transaction("2", [receipt, _event("$a")])
    assert first is not None and len(first) == 1
    assert second is not None and len(second) == 2


async def test_found_events_take_the_place_of_the_catch_up_item(databases: Databases) -> None:
    db = await databases.open()
    before = await QueueItem.record_transaction("1", [_event("$before")])
    assert before is not None
    barrier = await QueueItem.enqueue(KEY, "catchup", {"room_id": ROOM})
    pushed = await QueueItem.record_transaction("2", [_event("$after"), _event("$found2")])
    assert pushed is not None
    found = [({"event_id": f"$found{n}", "room_id": ROOM}, 1000 + n, barrier) for n in (1, 2, 3)]
    items = await RoomTimeline.caught_up(barrier, ROOM, found, ["$late"], checked_at=5000)
    # $found2 was pushed meanwhile: it stays where the push put it, and is not queued twice.
    assert [i.payload["event_id"] for i in items] == ["$found1", "$found3"]
    assert [i.created_at for i in items] == [1001, 1003]
    assert all(i.queue_key == KEY and i.kind == "matrix" for i in items)
    assert await _order() == ["$before", "$found1", "$found3", "$after", "$found2"]
    assert await QueueItem.seen(["$late", "$found1", "$nothing"]) == {"$late", "$found1"}
    # After a restart the order is the same: it is in the database, not only in memory.
    await databases.close(db)
    await databases.open()
    keys = [item_id for item_id, _, _ in await QueueItem.pending_keys()]
    loaded = [await QueueItem.get(i) for i in keys]
    assert [i.payload["event_id"] for i in loaded if i] == [
        "$before", "$found1", "$found3", "$after", "$found2",
    ]  # fmt: skip
    timeline = await RoomTimeline.get(ROOM)
    assert timeline is not None and timeline.checked_at == 5000


async def test_room_activity_keeps_the_latest(database: Database) -> None:
    await RoomTimeline.touch([(ROOM, 2000, "$a", 1900), ("!q:example.com", 500, None, None)])
    await RoomTimeline.touch([(ROOM, 1000, None, None)])  # older activity, no event
    room = await RoomTimeline.get(ROOM)
    assert room is not None
    assert (room.first_at, room.active_at, room.event_id, room.event_ts, room.checked_at) == (
        2000, 2000, "$a", 1900, None,
    )  # fmt: skip
    assert [r.room_id for r in await RoomTimeline.active(1000)] == [ROOM]
    assert {r.room_id for r in await RoomTimeline.active(0)} == {ROOM, "!q:example.com"}
    barrier = await QueueItem.enqueue(KEY, "catchup", {"room_id": ROOM})
    await RoomTimeline.caught_up(barrier, ROOM, [], [], checked_at=3000)
    # Checked after its last activity: the periodic look leaves it out until it is active again.
    assert [r.room_id for r in await RoomTimeline.active(0, unchecked=True)] == ["!q:example.com"]
    await RoomTimeline.touch([(ROOM, 3500, None, None)])
    assert {r.room_id for r in await RoomTimeline.active(0, unchecked=True)} == {
        ROOM, "!q:example.com",
    }  # fmt: skip


async def test_recorded_event_ids_are_pruned_by_age(database: Database) -> None:
    await QueueItem.record_transaction("1", [_event("$old")])
    await database.execute("UPDATE matrix_seen SET seen_at=1 WHERE event_id='$old'")
    await QueueItem.record_transaction("2", [_event("$new")])
    await QueueItem.prune_seen(older_than_ms=1000)
    assert await QueueItem.seen(["$old", "$new"]) == {"$new"}


async def test_a_found_event_can_stand_after_a_pushed_one(databases: Databases) -> None:
    db = await databases.open()
    barrier = await QueueItem.enqueue(KEY, "catchup", {"room_id": ROOM})
    pushed = await QueueItem.record_transaction("1", [_event("$p1"), _event("$p2")])
    assert pushed is not None
    found = [
        ({"event_id": "$f0", "room_id": ROOM}, 1, barrier),
        ({"event_id": "$f1", "room_id": ROOM}, 2, pushed[0]),
    ]
    items = await RoomTimeline.caught_up(barrier, ROOM, found, [], checked_at=5)
    assert [i.place for i in items] == [barrier.id, pushed[0].id]
    assert await _order() == ["$f0", "$p1", "$f1", "$p2"]
    await databases.close(db)
    await databases.open()
    assert await _order() == ["$f0", "$p1", "$f1", "$p2"]


async def test_an_event_queued_again_on_purpose_is_queued(database: Database) -> None:
    # An encrypted event waiting for its room key goes back into the queue when it arrives.
    await QueueItem.record_transaction("1", [_event("$enc")])
    again = await QueueItem.record_transaction(
        "retry:$enc", [_event("$enc")], once_per_event=False
    )
    assert again is not None and [i.payload["event_id"] for i in again] == ["$enc"]
    assert await QueueItem.record_transaction("retry:$enc", [_event("$enc")]) is None
