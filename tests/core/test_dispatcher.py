"""The dispatcher: strict order per queue key, concurrency across keys, retries, durability."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bridge.core import dispatcher as dispatcher_module
from bridge.core.dispatcher import Dispatcher, GiveUp, RetryLimits
from bridge.db import DeadLetter, QueueItem
from tests.db.support import Databases

Handler = Callable[[QueueItem], Awaitable[None]]
TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher_module, "RETRY_BASE", 0.01)
    monkeypatch.setattr(dispatcher_module, "RETRY_MAX", 0.05)


class Running:
    """Dispatchers made in a test, stopped at its end."""

    def __init__(self) -> None:
        self.dispatchers: list[Dispatcher] = []

    def new(self, handler: Handler, **kwargs: Any) -> Dispatcher:
        d = Dispatcher(handler, **kwargs)
        self.dispatchers.append(d)
        return d


@pytest.fixture
async def running(database: object) -> AsyncIterator[Running]:
    r = Running()
    try:
        yield r
    finally:
        for d in r.dispatchers:
            await d.stop()


async def enqueue(key: str, n: int) -> list[QueueItem]:
    return [await QueueItem.enqueue(key, "remote", {"n": i}) for i in range(n)]


async def idle(d: Dispatcher) -> None:
    await asyncio.wait_for(d.wait_idle(), TIMEOUT)


async def wait_until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``condition`` (database state has no event to wait on) for up to TIMEOUT."""
    for _ in range(int(TIMEOUT / 0.01)):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def pending_ids() -> list[int]:
    return [i.id for i in await QueueItem.pending()]


async def test_one_key_is_processed_strictly_in_order(running: Running) -> None:
    handled: list[int] = []
    in_flight: dict[str, int] = defaultdict(int)
    overlaps: list[str] = []

    async def handler(item: QueueItem) -> None:
        in_flight[item.queue_key] += 1
        if in_flight[item.queue_key] > 1:
            overlaps.append(item.queue_key)
        await asyncio.sleep(random.uniform(0, 0.005))
        handled.append(item.id)
        in_flight[item.queue_key] -= 1

    d = running.new(handler)
    items = await enqueue("k", 30)
    for item in items:
        d.submit(item)
    await idle(d)
    assert handled == [i.id for i in items]
    assert overlaps == []
    assert await QueueItem.count() == 0


async def test_items_submitted_while_busy_keep_their_order(running: Running) -> None:
    handled: list[int] = []
    gate = asyncio.Event()

    async def handler(item: QueueItem) -> None:
        await gate.wait()
        handled.append(item.id)

    d = running.new(handler)
    items = await enqueue("k", 5)
    d.submit(items[0])
    await asyncio.sleep(0.01)
    for item in items[1:]:
        d.submit(item)
    gate.set()
    await idle(d)
    assert handled == [i.id for i in items]


async def test_different_keys_run_concurrently(running: Running) -> None:
    b_done = asyncio.Event()
    handled: list[str] = []

    async def handler(item: QueueItem) -> None:
        if item.queue_key == "a":
            # Finishes only once key b made progress: deadlocks if keys ran one after another.
            await asyncio.wait_for(b_done.wait(), TIMEOUT)
        else:
            b_done.set()
        handled.append(item.queue_key)

    d = running.new(handler)
    (a,) = await enqueue("a", 1)
    (b,) = await enqueue("b", 1)
    d.submit(a)
    d.submit(b)
    await idle(d)
    assert handled == ["b", "a"]


async def test_many_keys_in_flight_at_once(running: Running) -> None:
    started: set[str] = set()
    all_started = asyncio.Event()

    async def handler(item: QueueItem) -> None:
        started.add(item.queue_key)
        if len(started) == 5:
            all_started.set()
        await asyncio.wait_for(all_started.wait(), TIMEOUT)

    d = running.new(handler)
    for key in "abcde":
        for item in await enqueue(key, 2):
            d.submit(item)
    await idle(d)
    assert started == set("abcde")
    assert await QueueItem.count() == 0


async def test_failing_item_is_retried_and_later_items_wait(running: Running) -> None:
    calls: list[tuple[int, int]] = []
    items = await enqueue("k", 3)
    other = (await enqueue("other", 1))[0]
    seen_attempts: list[int] = []

    async def handler(item: QueueItem) -> None:
        calls.append((item.id, item.attempts))
        if item.id == items[0].id:
            stored = {i.id: i.attempts for i in await QueueItem.pending()}
            seen_attempts.append(stored[item.id])
            if len(seen_attempts) < 4:
                raise RuntimeError("temporary failure")

    d = running.new(handler)
    for item in [*items, other]:
        d.submit(item)
    await idle(d)
    first = items[0].id
    assert [c for c in calls if c[0] != other.id] == [
        (first, 0), (first, 1), (first, 2), (first, 3), (items[1].id, 0), (items[2].id, 0),
    ]  # fmt: skip
    assert seen_attempts == [0, 1, 2, 3]  # each failure was recorded in the database
    assert (other.id, 0) in calls
    assert await QueueItem.count() == 0


async def test_other_keys_are_not_held_up_by_a_failing_key(running: Running) -> None:
    other_done = asyncio.Event()
    failures = 0

    async def handler(item: QueueItem) -> None:
        nonlocal failures
        if item.queue_key == "bad" and not other_done.is_set():
            failures += 1
            raise RuntimeError("down")
        if item.queue_key == "good":
            other_done.set()

    d = running.new(handler)
    (bad,) = await enqueue("bad", 1)
    (good,) = await enqueue("good", 1)
    d.submit(bad)
    await asyncio.sleep(0.03)
    d.submit(good)
    await idle(d)
    assert failures >= 1
    assert await QueueItem.count() == 0


async def test_items_are_deleted_only_after_success(running: Running) -> None:
    items = await enqueue("k", 3)
    snapshots: list[list[int]] = []
    fail_once = {items[1].id}

    async def handler(item: QueueItem) -> None:
        snapshots.append(await pending_ids())
        if item.id in fail_once:
            fail_once.discard(item.id)
            raise RuntimeError("once")

    d = running.new(handler)
    for item in items:
        d.submit(item)
    await idle(d)
    ids = [i.id for i in items]
    assert snapshots == [ids, ids[1:], ids[1:], ids[2:]]
    assert await QueueItem.count() == 0


async def test_give_up_drops_the_item_and_moves_on(running: Running) -> None:
    items = await enqueue("k", 3)
    calls: list[int] = []

    async def handler(item: QueueItem) -> None:
        calls.append(item.id)
        if item.id == items[0].id:
            raise GiveUp("can never work")

    d = running.new(handler)
    for item in items:
        d.submit(item)
    await idle(d)
    assert calls == [i.id for i in items]  # tried once, not retried
    assert await QueueItem.count() == 0
    (dead,) = await DeadLetter.all()  # kept, with its error, not dropped
    assert (dead.queue_key, dead.payload, dead.error) == ("k", {"n": 0}, "can never work")
    assert dead.announced


async def test_a_failing_item_gives_up_at_the_cap_and_the_room_is_told(
    running: Running,
) -> None:
    items = await enqueue("k", 3)
    calls: list[int] = []
    told: list[DeadLetter] = []

    async def handler(item: QueueItem) -> None:
        calls.append(item.id)
        if item.id == items[0].id:
            raise RuntimeError("poison")

    async def announce(dead: DeadLetter) -> None:
        told.append(dead)

    d = running.new(handler, announce=announce, limits=RetryLimits(max_attempts=3, max_age=0))
    for item in items:
        d.submit(item)
    await idle(d)
    assert calls == [items[0].id] * 3 + [items[1].id, items[2].id]
    assert await QueueItem.count() == 0
    (dead,) = await DeadLetter.all()
    assert told == [dead] and dead.announced
    assert dead.attempts == 3 and "RuntimeError: poison" in dead.error
    assert "gave up after 3 attempts" in dead.error


async def test_the_cap_waits_for_the_age_too(running: Running) -> None:
    (item,) = await enqueue("k", 1)
    calls: list[int] = []

    async def handler(item: QueueItem) -> None:
        calls.append(item.id)
        if len(calls) < 6:
            raise RuntimeError("outage")

    d = running.new(handler, limits=RetryLimits(max_attempts=2, max_age=3600))
    d.submit(item)
    await idle(d)
    assert len(calls) == 6  # young: retried past max_attempts until it worked
    assert await DeadLetter.count() == 0


async def test_a_revived_dead_letter_runs_again(running: Running) -> None:
    (item,) = await enqueue("k", 1)
    fail = True

    async def handler(item: QueueItem) -> None:
        if fail:
            raise GiveUp("broken for now")

    d = running.new(handler)
    d.submit(item)
    await idle(d)
    (dead,) = await DeadLetter.all()
    fail = False
    revived = await dead.revive()
    assert revived is not None and revived.payload == item.payload
    assert await dead.revive() is None  # a second retry finds nothing
    assert await pending_ids() == [revived.id]
    d.submit(revived)
    await idle(d)
    assert await QueueItem.count() == 0 and await DeadLetter.count() == 0


async def test_a_dead_letter_buried_but_not_announced_is_announced_at_start(
    running: Running,
) -> None:
    (item,) = await enqueue("k", 1)
    dead = await DeadLetter.bury(item, "crashed before the notice")
    told: list[int] = []

    async def announce(dead: DeadLetter) -> None:
        told.append(dead.id)

    async def handler(item: QueueItem) -> None:
        pass

    d = running.new(handler, announce=announce)
    assert await d.load_pending() == 0

    async def announced() -> bool:
        found = await DeadLetter.get(dead.id)
        return found is not None and found.announced

    await wait_until(announced)
    assert told == [dead.id]


async def test_submitting_an_item_twice_runs_it_once(running: Running) -> None:
    calls: list[int] = []
    gate = asyncio.Event()

    async def handler(item: QueueItem) -> None:
        await gate.wait()
        calls.append(item.id)

    d = running.new(handler)
    items = await enqueue("k", 2)
    for item in [items[0], items[1], items[0], items[1]]:
        d.submit(item)
    gate.set()
    await idle(d)
    assert calls == [items[0].id, items[1].id]


async def test_stop_leaves_unfinished_items_and_load_pending_resumes_them(
    running: Running, databases: Databases
) -> None:
    items = await enqueue("k", 3)
    (other,) = await enqueue("other", 1)
    blocked = asyncio.Event()
    first_run: list[int] = []

    async def stuck(item: QueueItem) -> None:
        if item.id == items[1].id:
            blocked.set()
            await asyncio.sleep(3600)  # the process dies while this one is in flight
        first_run.append(item.id)

    d1 = running.new(stuck)
    assert await d1.load_pending() == 4
    await asyncio.wait_for(blocked.wait(), TIMEOUT)

    # let the other key finish (handled and deleted) before the "crash"
    async def other_key_done() -> bool:
        return len(first_run) == 2 and await QueueItem.count() == 2

    await wait_until(other_key_done)
    await d1.stop()
    d1.submit(items[2])  # ignored once stopping
    assert first_run == [items[0].id, other.id] or first_run == [other.id, items[0].id]
    assert await pending_ids() == [items[1].id, items[2].id]

    # "Restart": a new database connection and a new dispatcher.
    await databases.close_all()
    await databases.open()
    second_run: list[int] = []

    async def handler(item: QueueItem) -> None:
        second_run.append(item.id)

    d2 = running.new(handler)
    assert await d2.load_pending() == 2
    await idle(d2)
    assert second_run == [items[1].id, items[2].id]
    assert await QueueItem.count() == 0


async def test_wait_idle_returns_at_once_when_nothing_runs(running: Running) -> None:
    d = running.new(lambda item: asyncio.sleep(0))
    await asyncio.wait_for(d.wait_idle(), 1)
    assert d.busy_keys == 0


async def test_resumed_items_load_their_payload_when_their_turn_comes(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog is resumed by id: at start only the first item of each key is read whole,
    the others when they are run (in order, with their payloads)."""
    items = {key: [await QueueItem.enqueue(key, "remote", {"key": key, "n": n, "blob": "x" * 1000})
                   for n in range(10)] for key in ("a", "b", "c")}  # fmt: skip
    loaded: list[int] = []
    from_row = QueueItem._from_row.__func__  # type: ignore[attr-defined]

    def counted(cls: type[QueueItem], row: Any) -> QueueItem:
        item = from_row(cls, row)
        loaded.append(item.id)
        return item

    monkeypatch.setattr(QueueItem, "_from_row", classmethod(counted))
    gate = asyncio.Event()
    started: list[str] = []
    handled: list[tuple[str, int]] = []

    async def handler(item: QueueItem) -> None:
        started.append(item.queue_key)
        await gate.wait()
        handled.append((item.payload["key"], item.payload["n"]))

    d = running.new(handler)
    assert await d.load_pending() == 30

    async def all_keys_started() -> bool:
        return len(started) == 3

    await wait_until(all_keys_started)
    assert sorted(loaded) == sorted(items[key][0].id for key in items)
    gate.set()
    await idle(d)
    for key in items:
        assert [n for k, n in handled if k == key] == list(range(10))
    assert sorted(loaded) == sorted(i.id for key in items for i in items[key])


async def test_a_resumed_item_gone_before_its_turn_is_skipped(running: Running) -> None:
    first, second, third = await enqueue("k", 3)
    gate = asyncio.Event()
    handled: list[int] = []

    async def handler(item: QueueItem) -> None:
        if item.id == first.id:
            await gate.wait()
        handled.append(item.id)

    d = running.new(handler)
    assert await d.load_pending() == 3
    await second.delete()  # e.g. given up and kept as a dead letter by an admin meanwhile
    gate.set()
    await idle(d)
    assert handled == [first.id, third.id]
