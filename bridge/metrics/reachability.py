"""Whether the homeserver answers: one small object the sender and the pings report to
(``ok``, ``failed``), read by the metrics and the status endpoint, and awaited by whatever
must act when the homeserver comes back (``wait_ok``, ``watch``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

Watcher = Callable[[bool], None]


class Reachability:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.reachable: bool | None = None
        """None until the homeserver first answered or failed."""
        self.last_ok: float | None = None
        """When it last answered (Unix seconds)."""
        self._back = asyncio.Event()
        self._watchers: list[Watcher] = []

    def ok(self) -> None:
        """The homeserver answered (any answer: a refusal is an answer)."""
        self.last_ok = self.clock()
        if self.reachable is not True:
            self._set(True)

    def failed(self) -> None:
        """A request got no answer (connection refused, timeout, a 5xx of a proxy)."""
        if self.reachable is not False:
            self._set(False)

    def _set(self, reachable: bool) -> None:
        self.reachable = reachable
        if reachable:
            self._back.set()
        else:
            self._back.clear()
        for watcher in list(self._watchers):
            watcher(reachable)

    async def wait_ok(self) -> None:
        """Return once the homeserver is reachable (at once when it is)."""
        await self._back.wait()

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher(reachable)`` at every transition; returns what stops it."""
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher)
