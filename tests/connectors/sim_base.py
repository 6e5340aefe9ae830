"""What the platform simulators (``telegram/simulator``, ``whatsapp/simulator``) share: a clock
that tests can move, waiting until the simulator has seen something, and serving the
simulator's routes on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Generic, Self, TypeVar

import aiohttp
from aiohttp import web

from tests.infra.ports import LOOPBACK

__all__ = ["LOOPBACK", "SimClock", "SimulatorBase"]

T = TypeVar("T")
SentT = TypeVar("SentT")
DeliveryT = TypeVar("DeliveryT")


class SimClock:
    """The simulator's "now": wall time plus ``offset`` seconds. Message dates, the windows of
    the platform (Telegram's 48-hour delete rule, WhatsApp's 24-hour service window), media URL
    expiry and the rate limits all read it, so ``advance`` ages everything at once."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._frozen: float | None = None

    def now(self) -> float:
        return (time.time() if self._frozen is None else self._frozen) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def freeze(self) -> None:
        """Stop time (until ``unfreeze``) so rate-limit tests do not depend on test speed;
        ``advance`` still moves it."""
        self._frozen = time.time()

    def unfreeze(self) -> None:
        if self._frozen is not None:
            self.offset -= time.time() - self._frozen
            self._frozen = None


class SimulatorBase(Generic[SentT, DeliveryT]):
    """The lifecycle and the waiting of a simulator. A simulator builds its routes in
    ``_app``, calls ``_notify`` whenever something a test may wait for has changed, and
    extends ``start``/``stop`` with its own background work. It records what the bot sent in
    ``sent`` and its webhook deliveries in ``webhook_deliveries`` (of its own record types)."""

    sent: list[SentT]
    webhook_deliveries: list[DeliveryT]

    def __init__(self) -> None:
        self.clock = SimClock()
        self.port = 0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        """For the simulator's own requests (webhooks)."""

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # -- lifecycle --------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        """The simulator's routes."""
        raise NotImplementedError

    async def start(self) -> None:
        """Serve ``_app`` on a free loopback port (``port``, ``base_url``)."""
        self._runner = web.AppRunner(
            self._app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- waiting ----------------------------------------------------------------------------------

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_change(self, seconds: float | None) -> None:
        event = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> T:
        """Wait until ``predicate()`` returns something truthy (re-checked on every change in the
        simulator) and return it; TimeoutError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"simulator: condition not met within {timeout} s")
            await self._wait_change(remaining)

    @staticmethod
    def _first(records: list[T], predicate: Callable[[T], bool] | None) -> T | None:
        return next((r for r in records if predicate is None or predicate(r)), None)

    async def wait_for_sent(
        self,
        predicate: Callable[[SentT], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SentT:
        return await self.wait_for(lambda: self._first(self.sent, predicate), timeout)

    async def wait_for_webhook_delivery(
        self,
        predicate: Callable[[DeliveryT], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> DeliveryT:
        return await self.wait_for(
            lambda: self._first(self.webhook_deliveries, predicate), timeout
        )
