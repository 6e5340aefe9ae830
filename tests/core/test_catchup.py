"""The catch-up: which rooms are read back when, how far, what is queued and where, what is
told late. On SQLite and PostgreSQL, with a timeline served by a fake homeserver (the real
one is in tests/fault/test_homeserver.py and tests/fault/test_catch_up.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mautrix.util.async_db import Database

from bridge.catchup_config import CatchUpConfig
from bridge.core import catchup as catchup_module
from bridge.core.catchup import KIND, CatchUp
from bridge.core.dispatcher import Dispatcher
from bridge.core.sender import Refused
from bridge.db import QueueItem, RoomTimeline
from bridge.metrics.registry import BridgeMetrics

ROOM = "!portal:example.com"
QUIET = "!quiet:example.com"
STAFF = "@staff:example.com"
GHOST = "@bridge_customer:example.com"
NOW = 1_000_000_000_000
TIMEOUT = 10.0


class Homeserver:
    """A room timeline served newest first in pages, as ``/messages?dir=b`` does."""

    def __init__(self, metrics: BridgeMetrics) -> None:
        self.reach = metrics.reachability
        """Told of every request, as by the bridge's sender."""
        self.rooms: dict[str, list[dict[str, Any]]] = {}
        self.reads: list[tuple[str, str | None]] = []
        self.down = False
        self.probes = 0
        self.refuse: set[str] = set()

    def post(
        self, room: str, event_id: str, sender: str = STAFF, ts: int = NOW, **extra: Any
    ) -> None:
        event = {
            "event_id": event_id, "room_id": room, "sender": sender, "type": "m.room.message",
            "origin_server_ts": ts, "content": {"msgtype": "m.text", "body": event_id},
            **extra,
        }  # fmt: skip
        self.rooms.setdefault(room, []).append(event)

    async def timeline(
        self, room_id: str, start: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        self.reads.append((room_id, start))
        if self.down:
            self.reach.failed()
            raise ConnectionError("down")
        self.reach.ok()
        if room_id in self.refuse:
            raise Refused(_Forbidden())  # type: ignore[arg-type]
        newest_first = self.rooms.get(room_id, [])[::-1]
        offset = int(start or 0)
        page = newest_first[offset : offset + limit]
        more = offset + limit < len(newest_first)
        return page, str(offset + limit) if more else None

    async def versions(self) -> None:
        self.probes += 1
        if self.down:
            self.reach.failed()
            raise ConnectionError("down")
        self.reach.ok()


class _Forbidden(Exception):
    errcode = "M_FORBIDDEN"
    message = "not in the room"


class Notices:
    def __init__(self) -> None:
        self.told: list[tuple[str, str | None, str]] = []

    async def failure(self, room_id: str, event_id: str | None, reason: str, **_: Any) -> None:
        self.told.append((room_id, event_id, reason))


class Setup:
    def __init__(self, config: CatchUpConfig, deadline: float | None = 600.0) -> None:
        self.metrics = BridgeMetrics()
        self.hs = Homeserver(self.metrics)
        self.notices = Notices()
        self.handled: list[str] = []
        self.dispatcher = Dispatcher(self._handle)
        self.clock = NOW / 1000

        async def deadline_of(room_id: str) -> float | None:
            return deadline

        async def queue_key(event: dict[str, Any]) -> str:
            return f"mx:{event['room_id']}"

        self.catchup = CatchUp(
            config, self.hs, self.dispatcher, self.notices,  # type: ignore[arg-type]
            is_own=lambda user: user.startswith("@bridge"), queue_key=queue_key,
            deadline=deadline_of, metrics=self.metrics, clock=lambda: self.clock,
        )  # fmt: skip
        self.metrics.reachability.watch(self.catchup.watch)

    async def _handle(self, item: QueueItem) -> None:
        if item.kind == KIND:
            await self.catchup.handle(item)
        else:
            self.handled.append(str(item.payload.get("event_id")))

    async def idle(self) -> None:
        await asyncio.wait_for(self.dispatcher.wait_idle(), TIMEOUT)


@pytest.fixture
async def setup(database: object) -> AsyncIterator[Setup]:
    s = Setup(CatchUpConfig(active_window=3600, page_size=3, max_pages=3))
    try:
        yield s
    finally:
        await s.dispatcher.stop()


def _planned(s: Setup, trigger: str) -> float | None:
    return s.metrics.registry.get_sample_value("bridge_catch_up_rooms_total", {"trigger": trigger})


async def _active(*rooms: str, at: int = NOW - 3_000_000) -> None:
    await RoomTimeline.touch((room, at, None, None) for room in rooms)


async def _push(txn: str, *event_ids: str, room: str = ROOM) -> list[QueueItem]:
    items = [(f"mx:{room}", "matrix", {"event_id": e, "room_id": room}) for e in event_ids]
    recorded = await QueueItem.record_transaction(txn, items)
    assert recorded is not None
    return recorded


async def test_found_events_go_out_before_what_was_pushed_after_the_outage(setup: Setup) -> None:
    s = setup
    for n in range(3):
        s.hs.post(ROOM, f"$before{n}", ts=NOW - 10_000 + n)
    for item in await _push("1", "$before0", "$before1", "$before2"):
        s.dispatcher.submit(item)
    await s.idle()
    s.handled.clear()
    await _active(ROOM)
    s.hs.post(ROOM, "$customer", sender=GHOST)  # the bridge's own: never queued
    s.hs.post(ROOM, "$lost1")
    s.hs.post(ROOM, "$lost2")
    s.hs.post(ROOM, "$after")
    s.hs.down = True
    s.metrics.reachability.failed()  # a request failed: catch-ups queued at once
    await s.catchup.before_record("2")
    for item in await _push("2", "$after"):
        s.dispatcher.submit(item)
    await asyncio.sleep(0.05)
    assert s.handled == []  # the room waits for its catch-up, which waits for the homeserver
    s.hs.down = False
    await s.idle()
    assert s.handled == ["$lost1", "$lost2", "$after"]
    assert s.catchup.found == 2
    assert await QueueItem.count() == 0
    # Pushed late after all (the homeserver resent it): recorded before, so not queued again.
    assert await _push("3", "$lost1") == []


async def test_a_homeserver_numbering_its_transactions_anew_queues_catch_ups_first(
    setup: Setup,
) -> None:
    s = setup
    await _active(ROOM)
    await s.catchup.before_record("41")
    await s.catchup.before_record("42")
    assert await QueueItem.payloads(KIND) == []
    s.hs.post(ROOM, "$lost")
    s.hs.post(ROOM, "$after")
    await s.catchup.before_record("1")  # restarted: the catch-up is queued before "1" is
    assert _planned(s, "restart") == 1
    for item in await _push("1", "$after"):
        s.dispatcher.submit(item)
    await s.idle()
    assert s.handled == ["$lost", "$after"]


async def test_only_rooms_active_within_the_window_are_read(setup: Setup) -> None:
    s = setup
    await _active(ROOM)
    await _active(QUIET, at=NOW - 3_601_000)
    s.hs.post(QUIET, "$old-but-lost")
    assert await s.catchup.plan("outage") == 1
    await s.idle()
    assert {room for room, _ in s.hs.reads} == {ROOM}
    # A room that has one queued already gets no second one.
    s.hs.down = True
    s.metrics.reachability.ok()
    s.metrics.reachability.failed()  # plans in the background
    await s.catchup.before_record("5")  # waits for that planning
    assert len(await QueueItem.payloads(KIND)) == 1
    assert await s.catchup.plan("outage") == 0
    s.hs.down = False
    await s.idle()


async def test_the_periodic_look_reads_only_rooms_active_since_their_last_read(
    setup: Setup,
) -> None:
    s = setup
    await _active(ROOM, QUIET)
    assert await s.catchup.plan("start") == 2
    await s.idle()
    s.clock += 60
    assert await s.catchup.plan("periodic", unchecked=True) == 0
    s.catchup.sent(ROOM)  # the bridge posted a customer message there
    assert await s.catchup.plan("periodic", unchecked=True) == 1
    await s.idle()


async def test_reading_back_stops_at_the_last_read_and_at_the_page_limit(setup: Setup) -> None:
    s = setup
    await _active(ROOM)
    for n in range(4):
        s.hs.post(ROOM, f"$old{n}", ts=NOW - 600_000 + n)
    await s.catchup.plan("start")
    await s.idle()
    assert s.handled == [f"$old{n}" for n in range(4)]
    s.handled.clear()
    s.hs.reads.clear()
    # Later: two new events; the read stops at the last read (minus a minute of slack)
    s.clock += 3600
    s.hs.post(ROOM, "$new0", ts=NOW + 3_500_000)
    s.hs.post(ROOM, "$new1", ts=NOW + 3_500_001)
    await _active(ROOM, at=NOW + 3_500_001)
    await s.catchup.plan("outage")
    await s.idle()
    assert s.handled == ["$new0", "$new1"]
    assert len(s.hs.reads) == 1  # $new1, $new0, then $old3: older than the last read, stop
    # A long backlog: max_pages pages (3 x 3 events), the newest ones.
    s.handled.clear()
    s.clock += 60
    for n in range(12):
        s.hs.post(ROOM, f"$burst{n}", ts=NOW + 3_600_000 + n)
    await _active(ROOM, at=NOW + 3_600_100)
    await s.catchup.plan("outage")
    await s.idle()
    assert s.handled == [f"$burst{n}" for n in range(3, 12)]


async def test_a_message_found_past_its_deadline_is_not_sent_and_the_room_is_told(
    setup: Setup,
) -> None:
    s = setup
    await _active(ROOM)
    s.hs.post(ROOM, "$stale", ts=NOW - 700_000)  # deadline 600 s
    s.hs.post(ROOM, "$stale-reaction", ts=NOW - 700_000, type="m.reaction")
    s.hs.post(ROOM, "$fresh", ts=NOW - 5_000)
    await s.catchup.plan("outage")
    await s.idle()
    assert s.handled == ["$stale-reaction", "$fresh"]
    assert [(room, event) for room, event, _ in s.notices.told] == [(ROOM, "$stale")]
    assert "past the channel's delivery deadline" in s.notices.told[0][2]
    assert "11 minutes" in s.notices.told[0][2]
    # Told once: a late push of it is not queued either.
    assert await _push("9", "$stale") == []


async def test_found_events_keep_when_they_were_sent(setup: Setup) -> None:
    s = setup
    seen: list[int] = []
    await _active(ROOM)
    s.hs.post(ROOM, "$a", ts=NOW - 30_000)
    s.hs.post(ROOM, "$future", ts=NOW + 999_999)

    async def handle(item: QueueItem) -> None:
        if item.kind == KIND:
            await s.catchup.handle(item)
        else:
            seen.append(item.created_at)

    s.dispatcher._handler = handle
    await s.catchup.plan("outage")
    await s.idle()
    # The delivery deadline counts from when staff sent it; a clock ahead counts as now.
    assert seen == [NOW - 30_000, NOW]


async def test_a_room_the_bot_cannot_read_has_nothing_to_catch_up(setup: Setup) -> None:
    s = setup
    await _active(ROOM)
    s.hs.refuse.add(ROOM)
    s.hs.post(ROOM, "$x")
    await s.catchup.plan("outage")
    await s.idle()
    assert s.handled == [] and await QueueItem.count() == 0


async def test_activity_is_written_in_batches(setup: Setup) -> None:
    s = setup
    items = await _push("1", "$a", "$b")
    for item in items:
        item.payload["origin_server_ts"] = NOW - 5
    s.catchup.recorded(items)
    s.catchup.sent(QUIET)
    assert await RoomTimeline.get(ROOM) is None
    await s.catchup.flush()
    room = await RoomTimeline.get(ROOM)
    assert room is not None and (room.active_at, room.event_id, room.event_ts) == (
        NOW, "$b", NOW - 5,
    )  # fmt: skip
    assert room.first_at == NOW
    assert await RoomTimeline.get(QUIET) is not None


async def test_while_the_homeserver_is_down_one_probe_a_second_serves_every_room(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catchup_module, "PROBE_INTERVAL", 0.05)
    s = setup
    rooms = [f"!r{n}:example.com" for n in range(20)]
    await _active(*rooms)
    s.hs.down = True
    s.metrics.reachability.failed()
    await s.catchup.plan("outage")
    await asyncio.sleep(0.5)
    assert s.hs.reads == []
    assert s.hs.probes <= 12  # about one per PROBE_INTERVAL, not one per room
    s.hs.down = False
    await s.idle()
    assert {room for room, _ in s.hs.reads} == set(rooms)


async def test_a_found_event_goes_after_the_pushed_ones_it_followed_in_the_room(
    setup: Setup,
) -> None:
    # Killed twice: $lost1 in the first restart; $pushed2 and $pushed3 came through and wait
    # behind the catch-up; $lost4 in the second restart. The room's order holds.
    s = setup
    await _active(ROOM)
    s.hs.down = True
    s.metrics.reachability.failed()
    await s.catchup.before_record("7")
    for event_id in ("$lost1", "$pushed2", "$pushed3", "$lost4", "$pushed5"):
        s.hs.post(ROOM, event_id)
    for item in await _push("7", "$pushed2", "$pushed3"):
        s.dispatcher.submit(item)
    for item in await _push("8", "$pushed5"):
        s.dispatcher.submit(item)
    s.hs.down = False
    await s.idle()
    assert s.handled == ["$lost1", "$pushed2", "$pushed3", "$lost4", "$pushed5"]


async def test_events_from_before_the_bridge_recorded_event_ids_are_not_looked_at(
    setup: Setup, database: Database
) -> None:
    # Upgraded from a version without matrix_seen: what it handled has no record, and a
    # read-back must not take it for lost.
    s = setup
    await database.execute("UPDATE catch_up_since SET since=$1", NOW - 50_000)
    await _active(ROOM)
    s.hs.post(ROOM, "$before-upgrade", ts=NOW - 100_000)
    s.hs.post(ROOM, "$lost", ts=NOW - 1_000)
    await s.catchup.start()  # a catch-up of every active room at start
    await s.idle()
    assert s.handled == ["$lost"]
    assert _planned(s, "start") == 1


async def test_an_outage_during_a_periodic_look_still_reads_every_active_room(
    setup: Setup,
) -> None:
    s = setup
    await _active(ROOM, QUIET)
    await s.catchup.plan("start")
    await s.idle()
    s.clock += 60
    s.catchup.sent(ROOM)
    s.catchup.trigger("periodic", unchecked=True)  # ROOM only
    s.catchup.trigger("outage")  # both, once the periodic planning is through
    s.catchup.trigger("periodic", unchecked=True)  # covered by what is under way
    await s.catchup.before_record("1")
    assert _planned(s, "periodic") == 1
    await s.idle()
    # The quiet room too: read at the start and after the outage.
    assert [room for room, _ in s.hs.reads].count(QUIET) == 2


async def test_a_transaction_resent_is_no_restart(setup: Setup) -> None:
    s = setup
    await _active(ROOM)
    for txn in ("5", "6", "6", "7"):
        await s.catchup.before_record(txn)
    assert _planned(s, "restart") == 0
    await s.catchup.before_record("3")
    assert _planned(s, "restart") == 1
    await s.idle()


async def test_what_a_room_held_before_the_bridge_was_in_it_is_not_looked_at(
    setup: Setup,
) -> None:
    # Staff made a room and wrote there before inviting the bot: never the bridge's to handle.
    s = setup
    s.hs.post(ROOM, "$before-the-bot", ts=NOW - 60_000)
    await _active(ROOM, at=NOW - 30_000)  # the bot's invitation: the first the bridge saw
    s.hs.post(ROOM, "$lost", ts=NOW - 1_000)
    await s.catchup.plan("outage")
    await s.idle()
    assert s.handled == ["$lost"]


async def test_a_catch_up_given_up_tells_its_room(database: object) -> None:
    from bridge.core import deadletters
    from bridge.core.dispatcher import RetryLimits

    s = Setup(CatchUpConfig())

    async def announce(dead: Any) -> None:
        await deadletters.announce(s.notices, str, dead)  # type: ignore[arg-type]

    s.dispatcher = Dispatcher(s._handle, announce, RetryLimits(max_attempts=1, max_age=0))
    s.catchup.dispatcher = s.dispatcher
    try:
        await _active(ROOM)
        # Every read fails, though the homeserver counts as reachable (a 5xx of a proxy in
        # front of it that its probe does not meet): the item fails until it is given up.
        s.hs.down = True
        s.hs.reach = type("Mute", (), {"ok": lambda self: None, "failed": lambda self: None})()
        await s.catchup.plan("outage")
        await s.idle()
        announced = s.notices.told
        assert [(room, event) for room, event, _ in announced] == [(ROOM, None)]
        assert "could not read this room back" in announced[0][2]
        assert "deadletters retry" in announced[0][2]
        # Given up, it blocks no later catch-up of the room.
        s.hs.down = False
        assert await s.catchup.plan("outage") == 1
        await s.idle()
        assert len(s.notices.told) == 1
    finally:
        await s.dispatcher.stop()


async def test_a_room_id_no_room_has_is_not_remembered(setup: Setup) -> None:
    # A hostile transaction's room id of kilobytes: no room has it, no index takes it, and it
    # must not keep the activity of the real rooms from being written.
    s = setup
    huge = "!" + "x" * 5000 + ":example.com"
    items = await _push("1", "$a", room=huge) + await _push("2", "$b")
    s.catchup.recorded(items)
    await s.catchup.flush()
    assert await RoomTimeline.get(ROOM) is not None
    assert [r.room_id for r in await RoomTimeline.active(0)] == [ROOM]
