"""HTTP endpoints the benchmark runs in its own process: the observer (an appservice that
sees every room event and notes when each benchmark message arrived in Synapse) and the
receiver (where the bridge and the bare appservice deliver staff messages)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.infra.ports import LOOPBACK, free_port

MARKER = re.compile(r"bench-[A-Za-z0-9]+-[0-9]+")
"""Every benchmark message carries one marker, e.g. ``bench-r2mb1-17``."""


def marker_of(text: str) -> str | None:
    found = MARKER.search(text)
    return found.group(0) if found else None


class Arrivals:
    """Futures keyed by marker, resolved with the ``time.perf_counter()`` of arrival."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self.room_of: dict[str, str] = {}
        """Room id of every marked message seen (the observer fills it)."""

    def expect(self, marker: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[marker] = fut
        return fut

    def arrived(self, marker: str, at: float) -> None:
        fut = self._waiting.pop(marker, None)
        if fut is not None and not fut.done():
            fut.set_result(at)

    def forget(self, marker: str) -> None:
        self._waiting.pop(marker, None)


class _Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.app = web.Application(client_max_size=1024 * 1024 * 1024)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Observer(_Server):
    """An appservice whose namespace is every room: Synapse pushes it each event as soon as
    it is persisted, which is when a Matrix client could see it."""

    def __init__(self, hs_token: str) -> None:
        super().__init__()
        self.hs_token = hs_token
        self.arrivals = Arrivals()
        self.watchers: list[Callable[[dict[str, Any], float], None]] = []
        """Called with every event pushed and its arrival time (for what has no marker in
        clear: encrypted messages, see ``bench.encrypted``)."""
        self.app.router.add_put("/_matrix/app/v1/transactions/{txn}", self._transaction)
        self.app.router.add_route("*", "/{tail:.*}", self._other)

    async def _transaction(self, request: web.Request) -> web.Response:
        at = time.perf_counter()
        if request.headers.get("Authorization") != f"Bearer {self.hs_token}":
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        body: dict[str, Any] = await request.json()
        for event in body.get("events", []):
            for watch in self.watchers:
                watch(event, at)
            if event.get("type") != "m.room.message":
                continue
            text = (event.get("content") or {}).get("body")
            marker = marker_of(text) if isinstance(text, str) else None
            if marker:
                self.arrivals.room_of[marker] = event.get("room_id", "")
                self.arrivals.arrived(marker, at)
        return web.json_response({})

    async def _other(self, request: web.Request) -> web.Response:
        return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)


class Receiver(_Server):
    """The remote end of Matrix -> remote: ``/inbox`` for the bridge's webhook connector (it
    answers a remote message id, as an in-house system would), ``/bare`` for the bare
    appservice."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals = Arrivals()
        self.count = 0
        self.app.router.add_post("/inbox", self._inbox)
        self.app.router.add_post("/bare", self._inbox)
        self.app.router.add_get("/file/{size}", self._file)

    @property
    def inbox_url(self) -> str:
        return self.url + "/inbox"

    @property
    def bare_url(self) -> str:
        return self.url + "/bare"

    def file_url(self, size: int) -> str:
        """Where the remote side serves a file of ``size`` bytes (a customer's attachment)."""
        return f"{self.url}/file/{size}"

    async def _file(self, request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = size
        await resp.prepare(request)
        block = bytes(range(256)) * 4096
        sent = 0
        while sent < size:
            part = block[: min(len(block), size - sent)]
            await resp.write(part)
            sent += len(part)
        await resp.write_eof()
        return resp

    async def _inbox(self, request: web.Request) -> web.Response:
        at = time.perf_counter()
        body = await request.read()
        self.count += 1
        marker = marker_of(body.decode("utf-8", "replace"))
        if marker:
            self.arrivals.arrived(marker, at)
        return web.json_response({"id": f"remote-{self.count}"})
