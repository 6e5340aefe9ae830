"""Per-conversation ordering: one worker per queue key, items processed strictly in order."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ..db import DeadLetter, QueueItem, Spool
from ..logsafe import pii
from ..metrics.registry import BridgeMetrics, account_of, direction_of
from ..tasks import cancel_and_wait, until_done

Handler = Callable[[QueueItem], Awaitable[None]]
Announce = Callable[[DeadLetter], Awaitable[None]]
"""Tells the item's room that it was given up (and kept as a dead letter)."""
log = logging.getLogger("bridge.dispatcher")
T = TypeVar("T")

RETRY_BASE = 0.5
RETRY_MAX = 30.0
ERROR_MAX = 2000
"""Characters of an error kept with a dead letter."""


class GiveUp(Exception):
    """Raised by a handler for an item that can never succeed: it becomes a dead letter and
    its room is told."""


@dataclass(frozen=True)
class RetryLimits:
    """An item that keeps failing is given up once it failed ``max_attempts`` times and was
    accepted at least ``max_age`` seconds ago: both, so that an outage of the homeserver or
    the database shorter than ``max_age`` gives nothing up."""

    max_attempts: int = 10
    max_age: float = 900.0

    def exhausted(self, item: QueueItem) -> bool:
        age = time.time() - item.created_at / 1000
        return item.attempts >= self.max_attempts and age >= self.max_age


class Dispatcher:
    """Runs ``handler`` for every recorded queue item, one at a time per ``queue_key``.

    An item is deleted from the database only after the handler returned, or moved to the
    dead letters when it gave up, so a crash leaves it to be run again at the next start. A
    handler that raises is retried, with backoff, without letting later items of the same key
    overtake it, until ``limits`` are reached. ``announce`` tells the room of a dead letter."""

    def __init__(
        self,
        handler: Handler,
        announce: Announce | None = None,
        limits: RetryLimits | None = None,
        *,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self._handler = handler
        self._announce = announce
        self.limits = limits or RetryLimits()
        self._queues: dict[str, deque[QueueItem | int]] = {}
        """Per key, the items to run in order: submitted ones whole, resumed ones by id (their
        payload is loaded when their turn comes, so a large backlog does not fill memory)."""
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._known: dict[int, int] = {}
        """Every item queued, by id: when it was accepted (ms)."""
        self._ages: list[tuple[int, int]] = []
        """A heap of ``(accepted, id)``: the oldest item queued at the top once finished ones
        are popped (``figures``)."""
        self.metrics = metrics
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._announcing: set[asyncio.Task[None]] = set()

    async def load_pending(self) -> int:
        for dead in await DeadLetter.unannounced():
            # Buried before a stop, but the room was not told yet.
            task = asyncio.create_task(self._tell(dead), name=f"dead-letter:{dead.id}")
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)
        swept = await Spool.sweep()
        if swept:
            log.info("Deleted %d spooled payload(s) no queued event claimed", swept)
        pending = await QueueItem.pending_keys()
        for item_id, key, created_at in pending:
            self._add(item_id, key, item_id, created_at)
        return len(pending)

    def submit(self, item: QueueItem) -> None:
        self._add(item.id, item.queue_key, item, item.created_at)

    def submit_after(self, anchor: int, items: list[QueueItem]) -> None:
        """Queue ``items`` (of one key) right after the queued item ``anchor`` of their key
        (the running one, or one behind it): the events a catch-up found take the place they
        have in the room, ahead of what was queued after it."""
        if not items:
            return
        queue = self._queues.get(items[0].queue_key)
        place = None
        if queue is not None and not self._stopping:
            ids = [e.id if isinstance(e, QueueItem) else e for e in queue]
            place = ids.index(anchor) + 1 if anchor in ids else None
        if queue is None or place is None:
            for item in items:
                self.submit(item)
            return
        for item in items:
            if item.id in self._known:
                continue
            self._known[item.id] = item.created_at
            heapq.heappush(self._ages, (item.created_at, item.id))
            queue.insert(place, item)
            place += 1

    def _add(self, item_id: int, key: str, entry: QueueItem | int, created_at: int) -> None:
        if self._stopping or item_id in self._known:
            return
        self._known[item_id] = created_at
        heapq.heappush(self._ages, (created_at, item_id))
        self._queues.setdefault(key, deque()).append(entry)
        if key not in self._workers:
            self._idle.clear()
            self._workers[key] = asyncio.create_task(self._work(key), name=f"queue:{key}")

    @property
    def busy_keys(self) -> int:
        return len(self._workers)

    def figures(self) -> tuple[int, float | None]:
        """Items queued now, and when the oldest was accepted (Unix seconds; None: none)."""
        self._prune()
        return len(self._known), self._ages[0][0] / 1000 if self._ages else None

    def _prune(self) -> None:
        """Pop finished items off the top of the heap of ages; rebuild it when finished ones
        below the top (an old item is stuck) make it much larger than the queue."""
        ages, known = self._ages, self._known
        if len(ages) > 2 * len(known) + 64:
            ages[:] = [(at, item_id) for item_id, at in known.items()]
            heapq.heapify(ages)
        while ages and known.get(ages[0][1]) != ages[0][0]:
            heapq.heappop(ages)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue and not self._stopping:
                entry = queue[0]
                item = entry if isinstance(entry, QueueItem) else await self._load(entry)
                if item is not None:  # None: finished or given up meanwhile
                    await self._run(item)
                queue.popleft()
                self._known.pop(entry.id if isinstance(entry, QueueItem) else entry, None)
                self._prune()
        finally:
            del self._workers[key]
            if not queue:
                self._queues.pop(key, None)
            if not self._workers:
                self._idle.set()

    @staticmethod
    async def _load(item_id: int) -> QueueItem | None:
        return await _until_done(f"load queue item {item_id}", lambda: QueueItem.get(item_id))

    async def _run(self, item: QueueItem) -> None:
        delay = RETRY_BASE
        while True:
            try:
                await self._handler(item)
            except GiveUp as e:
                await self._give_up(item, str(e))
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                try:
                    await item.bump_attempts()
                except Exception:
                    log.warning("Could not record the failed attempt of item %d", item.id)
                if self.limits.exhausted(item):
                    tries = f"{item.attempts} attempt{'s' * (item.attempts != 1)}"
                    await self._give_up(item, f"{_describe(e)} (gave up after {tries})")
                    return
                if self.metrics is not None:
                    self.metrics.retried(account_of(item.queue_key), direction_of(item.kind))
                log.exception(
                    "Queue item %d (%s) failed, retrying in %.1fs",
                    item.id,
                    pii(item.queue_key),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            await _until_done(f"delete finished queue item {item.id}", item.delete)
            return

    async def _give_up(self, item: QueueItem, error: str) -> None:
        error = error[:ERROR_MAX]
        if self.metrics is not None:
            self.metrics.buried(item.queue_key, item.kind)
        log.error("Giving up queue item %d (%s): %s", item.id, pii(item.queue_key), pii(error))
        room_id = item.payload.get("room_id") if item.kind in ("matrix", "catchup") else None
        dead = await _until_done(
            f"keep queue item {item.id} as a dead letter",
            lambda: DeadLetter.bury(item, error, room_id if isinstance(room_id, str) else None),
        )
        await self._tell(dead)

    async def _tell(self, dead: DeadLetter) -> None:
        announce = self._announce
        if announce is not None:
            await _until_done(f"announce dead letter {dead.id}", lambda: announce(dead))
        await _until_done(f"mark dead letter {dead.id} announced", dead.mark_announced)

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait([*self._workers.values(), *self._announcing])


async def _until_done(what: str, action: Callable[[], Awaitable[T]]) -> T:
    """Run ``action`` until it succeeds: what it records must not be lost to a passing outage
    of the database or the homeserver."""
    return await until_done(what, action, log=log, first_delay=RETRY_BASE, max_delay=RETRY_MAX)


def _describe(e: Exception) -> str:
    reason = getattr(e, "reason", None)  # a connector's DeliveryError says it for people
    if isinstance(reason, str) and reason:
        return reason
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
