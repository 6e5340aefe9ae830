"""``FakeHost``: the core's side of the connector contract, real where it touches the network.

Routes a connector adds are served by a real aiohttp server on 127.0.0.1, ``http`` is a real
``aiohttp.ClientSession``, events are recorded (deduplicated by ``dedup_key``) and must
round-trip through JSON as the core's durable queue requires. Persistent data lives in memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from bridge.connector import ConnectorState
from bridge.events import RemoteEvent
from bridge.types import AccountID, RemoteChatID

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HostFailure(RuntimeError):
    """Raised by ``handle_remote_event`` when a test made the host fail (database down)."""


class FakeHost:
    def __init__(self, account_id: AccountID) -> None:
        self.account_id = account_id
        self.log = logging.getLogger(f"test.host.{account_id}")
        self.events: list[RemoteEvent] = []
        """Every event recorded, in order, each once."""
        self.duplicates: list[RemoteEvent] = []
        """Deliveries refused as repeats of a recorded event."""
        self.states: list[ConnectorState] = []
        self.routes: dict[tuple[str, str], Handler] = {}
        self.data: dict[str, Any] = {}
        self._keys: set[str] = set()
        self._failures = 0
        self._recorded = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeHost:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ BridgeHost

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._session is not None, "FakeHost.start() was not awaited"
        return self._session

    async def handle_remote_event(self, event: RemoteEvent) -> bool:
        assert isinstance(event, RemoteEvent), f"not a RemoteEvent: {event!r}"
        encoded = json.dumps(event.to_json())
        decoded = RemoteEvent.from_json(json.loads(encoded))
        assert decoded == event, f"event does not round-trip through JSON: {event!r}"
        await asyncio.sleep(0)  # a real host awaits its database here
        if self._failures:
            self._failures -= 1
            raise HostFailure("database is down")
        key = event.dedup_key()
        if key in self._keys:
            self.duplicates.append(event)
            return False
        self._keys.add(key)
        self.events.append(event)
        self._recorded.set()
        return True

    def add_route(self, method: str, path: str, handler: Handler) -> str:
        assert path.startswith("/"), f"route path must start with '/': {path!r}"
        full = f"/connectors/{self.account_id}{path}"
        key = (method.upper(), full)
        if key in self.routes:
            raise ValueError(f"route {method} {full} is already registered")
        self.routes[key] = handler
        return full

    def set_state(self, state: ConnectorState) -> None:
        self.states.append(state)

    async def load_data(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.data))

    async def save_data(self, data: dict[str, Any]) -> None:
        self.data = json.loads(json.dumps(data))

    async def find_chat(self, message_ids: list[str]) -> RemoteChatID | None:
        """As the core does, from the recorded events (the fake has no message table)."""
        for event in reversed(self.events):
            if getattr(event, "message_id", None) in message_ids:
                return event.chat.id
        return None

    async def portal_metadata(self, chat: RemoteChatID) -> dict[str, Any]:
        """As the core does: the ``metadata["portal"]`` of the chat's recorded events, merged."""
        merged: dict[str, Any] = {}
        for event in self.events:
            extra = event.metadata.get("portal")
            if event.chat.id == chat and isinstance(extra, dict):
                merged.update(extra)
        return merged

    # ------------------------------------------------------------------ test helpers

    def url(self, full_path: str) -> str:
        """The absolute URL of a full path returned by ``add_route``."""
        return self.base_url + full_path

    def route_url(self, path: str, method: str = "POST") -> str:
        """The absolute URL of a route the connector added under ``path``."""
        full = f"/connectors/{self.account_id}{path}"
        assert (method, full) in self.routes, f"the connector did not add {method} {path}"
        return self.url(full)

    def fail_next_events(self, count: int = 1) -> None:
        """Make the next ``count`` calls of ``handle_remote_event`` raise ``HostFailure``."""
        self._failures = count

    async def wait_for_events(self, count: int, seconds: float = 5.0) -> list[RemoteEvent]:
        """Wait until at least ``count`` events are recorded (for polling connectors)."""
        async with asyncio.timeout(seconds):
            while len(self.events) < count:
                self._recorded.clear()
                await self._recorded.wait()
        return self.events

    @property
    def state(self) -> ConnectorState | None:
        return self.states[-1] if self.states else None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        handler = self.routes.get((request.method, request.path))
        if handler is not None:
            return await handler(request)
        allowed = [method for method, path in self.routes if path == request.path]
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise web.HTTPNotFound()
