"""The far end of the webhook connector in end-to-end tests: an in-house system that POSTs
signed events into the bridge and receives (and verifies) the bridge's signed POSTs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

from bridge.connectors.webhook.protocol import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign, verify

from .ports import LOOPBACK, free_port


class WebhookPeer:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.port = free_port()
        self.received: list[dict[str, Any]] = []
        self.idempotency_keys: list[str] = []
        self.deliveries: list[dict[str, Any]] = []
        """Every accepted POST, repeats included (``received`` keeps the first of each)."""
        self.files: dict[str, tuple[bytes, str]] = {}
        """Served at /files/<name> for inbound attachments: name -> (data, mimetype)."""
        self.bad_signatures = 0
        self.fail_next: list[int] = []
        """Statuses to answer to the next requests (e.g. [503, 503]) before accepting."""
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.bridge_url = ""

    @property
    def inbox_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/inbox"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/inbox", self._inbox)
        app.router.add_get("/files/{name}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session:
            await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    async def _inbox(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(self.secret, body, request.headers.get(SIGNATURE_HEADER)):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        if self.fail_next:
            return web.json_response({"error": "try later"}, status=self.fail_next.pop(0))
        payload = json.loads(body)
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        self.deliveries.append(payload)
        async with self._arrived:
            if key and key in self.idempotency_keys and payload.get("type") == "message":
                return web.json_response({"id": f"remote-{key}", "duplicate": True})
            self.idempotency_keys.append(key)
            self.received.append(payload)
            self._arrived.notify_all()
        return web.json_response({"id": f"remote-{payload.get('id')}"})

    async def _file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    def file_url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{self.port}/files/{name}"

    async def wait_for(self, predicate: Any, timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
        async def find() -> dict[str, Any]:
            async with self._arrived:
                while True:
                    for p in self.received:
                        if predicate(p):
                            return p
                    await self._arrived.wait()

        return await asyncio.wait_for(find(), timeout)

    async def send(
        self, account: str, payload: dict[str, Any], *, secret: str | None = None
    ) -> tuple[int, Any]:
        """POST a signed event to the bridge's webhook endpoint; returns (status, json)."""
        assert self._session is not None
        body = json.dumps(payload).encode()
        headers = {
            SIGNATURE_HEADER: sign(secret or self.secret, body),
            "Content-Type": "application/json",
        }
        url = f"{self.bridge_url}/connectors/{account}/events"
        async with self._session.post(url, data=body, headers=headers) as resp:
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = await resp.text()
            return resp.status, data
