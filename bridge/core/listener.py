"""Limits for the bridge's HTTP listeners: header and body read timeouts and a connection cap,
so that slow or numerous clients (a byte at a time, or thousands of idle sockets) cannot hold
a listener. aiohttp has no header timeout, so each connection's protocol is wrapped: the
wrapper counts connections, arms a timer until the request reaches the application (headers
parsed, seen by ``ConnectionGuard.middleware``), then one until its body has arrived, and
closes the connection when a timer runs out. Idle keep-alive connections are closed by
aiohttp's own keep-alive timeout."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..config import ListenerLimits

log = logging.getLogger("bridge.listener")

_BUSY_BODY = json.dumps({"error": "too many connections, retry later"}).encode()
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 5\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


class ConnectionGuard:
    """The limits of one listener, and its counters."""

    def __init__(self, name: str, limits: ListenerLimits) -> None:
        self.name = name
        self.limits = limits
        self.connections: dict[asyncio.BaseTransport, GuardedProtocol] = {}
        self.refused = 0
        """Connections answered 503 because the cap was reached."""
        self.timed_out = 0
        """Connections closed because headers or body were too slow."""

    def protocol_factory(self, server: web.Server) -> Any:
        return lambda: GuardedProtocol(self, server())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        connection = self.connections.get(request.transport) if request.transport else None
        if connection is None:
            return await handler(request)
        connection.request_started(request)
        try:
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            connection.request_finished()


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's ``RequestHandler`` for one connection, with the guard's limits around it."""

    def __init__(self, guard: ConnectionGuard, inner: RequestHandler) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.refused = False
        self.in_request = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if len(self.guard.connections) >= self.guard.limits.max_connections:
            self.refused = True
            self.guard.refused += 1
            if self.guard.refused == 1 or self.guard.refused % 100 == 0:
                log.warning(
                    "%s listener: %d connections open, refusing more (%d refused so far)",
                    self.guard.name, len(self.guard.connections), self.guard.refused,
                )  # fmt: skip
            transport.write(BUSY_RESPONSE)
            transport.close()
            return
        self.guard.connections[transport] = self
        self._arm(self.guard.limits.header_timeout, "headers")
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if not self.in_request and self._timer is None:
            # The first byte of the next request on a keep-alive connection.
            self._arm(self.guard.limits.header_timeout, "headers")
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.refused:
            return None
        return self.inner.eof_received()  # type: ignore[func-returns-value]

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel()
        if self.refused:
            return
        if self.transport is not None:
            self.guard.connections.pop(self.transport, None)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if not self.refused:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if not self.refused:
            self.inner.resume_writing()

    # ------------------------------------------------------------------ from the middleware

    def request_started(self, request: web.Request) -> None:
        self._cancel()
        self.in_request = True
        if not request.content.is_eof():
            self._arm(self.guard.limits.body_timeout, "body", request)

    def request_finished(self) -> None:
        self._cancel()
        self.in_request = False

    # ------------------------------------------------------------------ timers

    def _arm(self, seconds: float, what: str, request: web.Request | None = None) -> None:
        self._cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(seconds, self._expired, what, request)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, what: str, request: web.Request | None) -> None:
        self._timer = None
        if request is not None and request.content.is_eof():
            return  # the body is in; the handler is just busy
        self.guard.timed_out += 1
        limit = (
            self.guard.limits.header_timeout
            if what == "headers"
            else self.guard.limits.body_timeout
        )
        log.info(
            "%s listener: closed a connection whose %s took longer than %gs",
            self.guard.name, what, limit,
        )  # fmt: skip
        if self.transport is not None:
            self.transport.close()


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through ``guard``."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard
    ) -> None:
        super().__init__(runner, host, port)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard.protocol_factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
