"""What the WhatsApp simulator's tests share: the simulator posting to a small webhook receiver
that checks Meta's signatures on its own, a plain aiohttp client and Graph API calls."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from . import payloads as wa
from .simulator import WhatsAppSimulator

TOKEN = "EAAG-test-access-token"
SECRET = "app-secret-for-tests"
VERIFY = "verify-me-please"
V = "v21.0"
ALICE = "491701234567"
BOB = "491709876543"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
Json = dict[str, Any]


class Receiver:
    """The bridge's side of the webhook, as small as possible: answers the verification GET
    and accepts a POST only when ``X-Hub-Signature-256`` is the HMAC of the raw body."""

    def __init__(self) -> None:
        self.events: list[Json] = []
        self.raw: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.refused: list[bytes] = []
        self.answers: list[int] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/webhook", self._verify)
        app.router.add_post("/webhook", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/webhook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _verify(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == VERIFY:
            return web.Response(text=query.get("hub.challenge", ""))
        return web.Response(status=403, text="Forbidden")

    async def _post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        given_sig = request.headers.get("X-Hub-Signature-256", "")
        if not hmac.compare_digest(given_sig, expected):
            self.refused.append(raw)
            return web.Response(status=401)
        self.raw.append(raw)
        self.headers.append(dict(request.headers))
        self.events.append(json.loads(raw))
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    def statuses(self) -> list[Json]:
        return [s for event in self.events for s in wa.iter_statuses(event)]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    await rec.start()
    yield rec
    await rec.stop()


@pytest.fixture
async def sim(receiver: Receiver) -> AsyncIterator[WhatsAppSimulator]:
    async with WhatsAppSimulator(
        TOKEN,
        app_secret=SECRET,
        verify_token=VERIFY,
        webhook_url=receiver.url,
        webhook_retry_delay=0.01,
    ) as simulator:
        simulator.clock.freeze()
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    sim: WhatsAppSimulator,
    method: str,
    path: str,
    *,
    token: str | None = TOKEN,
    **kw: Any,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = path if path.startswith("http") else f"{sim.base_url}/{V}{path}"
    async with http.request(method, url, headers=headers, **kw) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.read()


async def send(
    http: aiohttp.ClientSession,
    sim: WhatsAppSimulator,
    to: str,
    type_: str,
    content: Any,
    **extra: Any,
) -> tuple[int, Json]:
    body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
    body |= {"type": type_, type_: content, **extra}
    return await call(http, sim, "POST", f"/{sim.phone_number_id}/messages", json=body)


async def upload(
    http: aiohttp.ClientSession,
    sim: WhatsAppSimulator,
    data: bytes,
    mime: str,
    *,
    product: str | None = "whatsapp",
) -> tuple[int, Json]:
    form = aiohttp.FormData()
    if product is not None:
        form.add_field("messaging_product", product)
    form.add_field("type", mime)
    form.add_field("file", io.BytesIO(data), filename="upload.bin", content_type=mime)
    return await call(http, sim, "POST", f"/{sim.phone_number_id}/media", data=form)


def assert_error(status: int, body: Json, http_status: int, code: int) -> Json:
    assert status == http_status, body
    error = body["error"]
    assert error["code"] == code
    assert error["type"] in ("OAuthException", "GraphMethodException")
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fbtrace_id"], str) and error["fbtrace_id"]
    return error


def webp(size: int, *, animated: bool) -> bytes:
    flags = 0x02 if animated else 0x00
    head = b"RIFF" + (size - 8).to_bytes(4, "little") + b"WEBPVP8X" + b"\x0a\x00\x00\x00"
    return (head + bytes([flags]) + b"\x00" * size)[:size]


async def open_window(sim: WhatsAppSimulator, wa_id: str = ALICE) -> Json:
    msg = wa.text_message(wa_id, "hello")
    delivery = await sim.receive(msg, names={wa_id: "Alice"})
    assert delivery.ok
    return msg
