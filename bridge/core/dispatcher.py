"""Per-conversation ordering: one worker per queue key, items processed strictly in order."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from ..db import QueueItem
from ..tasks import cancel_and_wait

Handler = Callable[[QueueItem], Awaitable[None]]
log = logging.getLogger("bridge.dispatcher")

RETRY_BASE = 0.5
RETRY_MAX = 30.0


class GiveUp(Exception):
    """Raised by a handler for an item that can never succeed; the item is dropped."""


class Dispatcher:
    """Runs ``handler`` for every recorded queue item, one at a time per ``queue_key``.

    An item is deleted from the database only after the handler returned (or gave up), so
    a crash leaves it to be run again at the next start. A handler that raises is retried,
    with backoff, without letting later items of the same key overtake it."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._queues: dict[str, deque[QueueItem]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._known: set[int] = set()
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def load_pending(self) -> int:
        items = await QueueItem.pending()
        for item in items:
            self.submit(item)
        return len(items)

    def submit(self, item: QueueItem) -> None:
        if self._stopping or item.id in self._known:
            return
        self._known.add(item.id)
        self._queues.setdefault(item.queue_key, deque()).append(item)
        if item.queue_key not in self._workers:
            self._idle.clear()
            self._workers[item.queue_key] = asyncio.create_task(
                self._work(item.queue_key), name=f"queue:{item.queue_key}"
            )

    @property
    def busy_keys(self) -> int:
        return len(self._workers)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue and not self._stopping:
                item = queue[0]
                await self._run(item)
                queue.popleft()
                self._known.discard(item.id)
        finally:
            del self._workers[key]
            if not queue:
                self._queues.pop(key, None)
            if not self._workers:
                self._idle.set()

    async def _run(self, item: QueueItem) -> None:
        delay = RETRY_BASE
        while True:
            try:
                await self._handler(item)
            except GiveUp as e:
                log.error("Dropping queue item %d (%s): %s", item.id, item.queue_key, e)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "Queue item %d (%s) failed, retrying in %.1fs", item.id, item.queue_key, delay
                )
                try:
                    await item.bump_attempts()
                except Exception:
                    log.warning("Could not record the failed attempt of item %d", item.id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            while True:
                try:
                    await item.delete()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("Could not delete finished queue item %d, retrying", item.id)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(list(self._workers.values()))
