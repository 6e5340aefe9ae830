"""Pacing: one ``Pacer`` per channel account hands out sending slots at its rate (a token
bucket without a burst: each slot is ``1/rate`` after the previous one, so the rate holds over
any stretch of time); a ``retry_after`` from the channel holds every slot of the account until
it has passed. The connectors' own rate limiters stay underneath."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Pacer:
    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self.sleep = sleep
        self.next = 0.0
        self.held = 0.0

    async def take(self) -> None:
        """Wait for the next slot (and past any hold)."""
        while True:
            now = self.clock()
            slot = max(now, self.next, self.held)
            self.next = slot + self.interval
            if slot > now:
                await self.sleep(slot - now)
            if self.held <= self.clock():
                return

    def hold(self, seconds: float) -> None:
        """Nothing more for ``seconds`` (the channel's ``retry_after``)."""
        self.held = max(self.held, self.clock() + seconds)
