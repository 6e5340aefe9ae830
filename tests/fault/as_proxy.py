"""A pass-through HTTP proxy between Synapse and the bridge's appservice listener: it records
every transaction push (when, which id, the answer) and can deliver each transaction twice,
as a homeserver does that missed the first answer."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tests.infra.ports import LOOPBACK, free_port

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Push:
    at: float
    """``time.monotonic()`` when the answer was passed back to the homeserver."""
    txn_id: str
    status: int
    """What the homeserver was answered (502: the bridge was unreachable)."""
    repeat: bool = False
    """A second delivery made by the proxy itself; its answer went nowhere."""


class AppServiceProxy:
    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = f"http://{LOOPBACK}:{target_port}"
        self.duplicate = False
        """Deliver every transaction twice (the second after the first was answered)."""
        self.unreachable = False
        """Answer transaction pushes 502, as for a bridge that is down, until the bridge
        answers a ping (it is up again then) or this is set back."""
        self.swallow = False
        """Answer transaction pushes 200 without passing them on, as if the homeserver lost
        their events before pushing them (it does so when killed at the wrong moment)."""
        self.swallowed: list[dict[str, Any]] = []
        """The events of the transactions swallowed."""
        self.pushes: list[Push] = []
        self.pings: list[float] = []
        self.recorded: list[tuple[str, bytes, dict[str, str]]] = []
        """Every transaction the bridge accepted: (path, body, headers), for replays."""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def stop(self) -> None:
        if self._session:
            await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    def pushed_events(self) -> list[dict[str, Any]]:
        """The events of every accepted transaction, in the order pushed."""
        events: list[dict[str, Any]] = []
        for _, body, _ in self.recorded:
            events += json.loads(body).get("events", [])
        return events

    async def replay(self, since: int = 0) -> list[int]:
        """Deliver the accepted transactions from number ``since`` on once more, as a
        homeserver does that lost track of what it sent; returns the bridge's answers."""
        return [
            (await self._put("PUT", path, body, headers))[0]
            for path, body, headers in self.recorded[since:]
        ]

    async def _send(self, request: web.Request, body: bytes) -> tuple[int, bytes, str]:
        return await self._put(request.method, request.path_qs, body, dict(request.headers))

    async def _put(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, str]:
        assert self._session is not None
        headers = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
        try:
            async with self._session.request(
                method, self.target + path, data=body, headers=headers
            ) as resp:
                return resp.status, await resp.read(), resp.content_type
        except (TimeoutError, aiohttp.ClientError):
            return 502, b'{"errcode":"M_UNKNOWN","error":"bridge unreachable"}', "application/json"

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.path
        if self.swallow and path.startswith("/_matrix/app/v1/transactions/"):
            self.swallowed += json.loads(body).get("events", [])
            return web.json_response({})
        if self.unreachable and path.startswith("/_matrix/app/v1/transactions/"):
            self.pushes.append(Push(time.monotonic(), path.rsplit("/", 1)[1], 502))
            return web.json_response({"errcode": "M_UNKNOWN"}, status=502)
        status, data, ctype = await self._send(request, body)
        if path.startswith("/_matrix/app/v1/transactions/"):
            txn_id = path.rsplit("/", 1)[1]
            self.pushes.append(Push(time.monotonic(), txn_id, status))
            if status == 200:
                self.recorded.append((request.path_qs, body, dict(request.headers)))
            if self.duplicate and status == 200:
                again, _, _ = await self._send(request, body)
                self.pushes.append(Push(time.monotonic(), txn_id, again, repeat=True))
        elif path == "/_matrix/app/v1/ping" and status == 200:
            self.pings.append(time.monotonic())
            self.unreachable = False
        return web.Response(status=status, body=data, content_type=ctype)
