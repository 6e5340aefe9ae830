"""What the Telegram simulator's tests share: the simulator with Alice, Bob and a group, an
aiogram bot on it, a webhook receiver, raw HTTP calls and a tiny PNG."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import TelegramObject
from aiohttp import web

from .simulator import SECRET_HEADER, TelegramSimulator

TOKEN = "424242:AAE-simulator_test-token"
ALICE = 5001
BOB = 5002
GROUP = -1001234567890


def png(width: int = 40, height: int = 30) -> bytes:
    """A valid tiny PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x00" * width * 3 for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def assert_documented(obj: Any, path: str = "object") -> None:
    """aiogram's models accept unknown fields; fail on any, so shapes are the documented ones."""
    if isinstance(obj, TelegramObject):
        assert not obj.model_extra, f"{path}: undocumented fields {sorted(obj.model_extra)}"
        for name in type(obj).model_fields:
            assert_documented(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, list):
        for n, item in enumerate(obj):
            assert_documented(item, f"{path}[{n}]")


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator(token=TOKEN, bot_username="bridge_bot") as simulator:
        simulator.add_user(ALICE, "Alice", last_name="A", username="alice")
        simulator.add_user(BOB, "Bob")
        simulator.add_group(GROUP, "Team", username="team_chat")
        yield simulator


@pytest.fixture
async def bot(sim: TelegramSimulator) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(sim.base_url))
    telegram_bot = Bot(TOKEN, session=session)
    try:
        yield telegram_bot
    finally:
        await session.close()


class Receiver:
    """The bot's webhook endpoint: records requests, answers ``fail`` statuses first."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.fail: list[int] = []
        self.reply: dict[str, Any] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.json()))
        if self.secret is not None and request.headers.get(SECRET_HEADER) != self.secret:
            return web.Response(status=401)
        if self.fail:
            return web.Response(status=self.fail.pop(0))
        return web.json_response(self.reply)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver(secret="s3cret_token-1")
    await hook.start()
    try:
        yield hook
    finally:
        await hook.stop()


async def raw(sim: TelegramSimulator, method: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """One HTTP request to the simulator outside aiogram; kwargs go to ``session.request``."""
    verb = kwargs.pop("verb", "POST")
    token = kwargs.pop("token", TOKEN)
    async with aiohttp.ClientSession() as session:
        url = f"{sim.base_url}/bot{token}/{method}"
        async with session.request(verb, url, **kwargs) as resp:
            return resp.status, await resp.json()
