"""The one bounded body reader, as the webhook, Telegram webhook and WhatsApp webhook endpoints
use it: linear work however small the chunks, and 413 without reading an over-limit body."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bridge.connectors.http import READ_CHUNK, BodyTooLarge, read_body
from bridge.connectors.telegram import TelegramConnector
from bridge.connectors.webhook import WebhookConnector
from bridge.connectors.webhook.handle_remote import InboundEndpoint
from bridge.connectors.whatsapp.config import parse_config as parse_whatsapp
from bridge.connectors.whatsapp.handle_remote import MAX_BODY, Webhook
from bridge.types import AccountID

CHUNK = 16


class CountingBytes(bytes):
    """A chunk that counts the bytes copied when something is concatenated onto it: as a
    subclass of ``bytes`` its ``__radd__`` runs for ``body + chunk`` (and ``body += chunk``)."""

    copied = 0

    def __radd__(self, other: bytes) -> bytes:
        CountingBytes.copied += len(other) + len(self)
        return bytes(other) + bytes(self)


class DribblingStream:
    """A request body arriving ``CHUNK`` bytes at a time; ``size=None`` never ends."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self.handed = 0
        self.reads = 0

    async def read(self, n: int = -1) -> bytes:
        self.reads += 1
        left = CHUNK if self.size is None else min(CHUNK, self.size - self.handed)
        count = max(0, min(left, n if n >= 0 else left))
        self.handed += count
        return CountingBytes(b"x" * count)


def request(stream: DribblingStream, **headers: str) -> web.Request:
    return make_mocked_request("POST", "/", headers=headers, payload=stream)


@pytest.fixture(autouse=True)
def reset_counter() -> None:
    CountingBytes.copied = 0


async def test_many_small_chunks_are_joined_once() -> None:
    size = 256 * 1024
    stream = DribblingStream(size)
    body = await read_body(request(stream), size)
    assert body == b"x" * size
    assert stream.handed == size
    assert CountingBytes.copied <= 2 * size


async def test_over_limit_without_length_stops_after_the_limit() -> None:
    stream = DribblingStream(None)
    with pytest.raises(BodyTooLarge):
        await read_body(request(stream), 100_000)
    assert stream.handed <= 100_000 + READ_CHUNK


async def test_declared_length_over_limit_reads_nothing() -> None:
    stream = DribblingStream(None)
    with pytest.raises(BodyTooLarge):
        await read_body(request(stream, **{"Content-Length": "100001"}), 100_000)
    assert stream.reads == 0


class Host:
    log = logging.getLogger("test.http")


def webhook_endpoint() -> tuple[Callable[[web.Request], Awaitable[web.StreamResponse]], int]:
    config = WebhookConnector.parse_config(
        {"secret": "s" * 32, "max_body_size": 3 * 1024 * 1024}, "channels.w"
    )
    return InboundEndpoint(config, Host()).handle, config.max_body_size  # type: ignore[arg-type]


def whatsapp_endpoint() -> tuple[Callable[[web.Request], Awaitable[web.StreamResponse]], int]:
    raw = {
        "phone_number_id": "109876543210987",
        "business_account_id": "104455667788990",
        "access_token": "EAAG-test-token",
        "app_secret": "test-app-secret",
        "verify_token": "test-verify-token",
    }
    webhook = Webhook(parse_whatsapp(raw, "channels.wa"), Host())  # type: ignore[arg-type]
    webhook.open = True
    return webhook.receive, MAX_BODY


def telegram_endpoint() -> tuple[Callable[[web.Request], Awaitable[web.StreamResponse]], int]:
    from bridge.connectors.telegram.connector import MAX_UPDATE_SIZE

    raw = {
        "token": "123456:AAH-contract_test-token-0123456789",
        "mode": "webhook",
        "webhook_url": "https://bridge.example.com",
        "webhook_secret": "test-webhook-secret-0123456789abcdef",
    }
    config = TelegramConnector.parse_config(raw, "channels.tg")
    connector: Any = TelegramConnector(AccountID("tg"), config, Host())  # type: ignore[arg-type]
    connector._open = True
    connector._secret = raw["webhook_secret"]  # what start() sets (it would call Telegram)
    return connector._handle_webhook, MAX_UPDATE_SIZE


HEADERS = {
    "webhook": {},
    "whatsapp": {},
    "telegram": {"X-Telegram-Bot-Api-Secret-Token": "test-webhook-secret-0123456789abcdef"},
}
ENDPOINTS = {
    "webhook": webhook_endpoint,
    "whatsapp": whatsapp_endpoint,
    "telegram": telegram_endpoint,
}


@pytest.mark.parametrize("name", list(ENDPOINTS))
async def test_endpoint_reads_a_dribbled_body_in_linear_work(name: str) -> None:
    handler, limit = ENDPOINTS[name]()
    size = min(limit, 1024 * 1024)
    stream = DribblingStream(size)
    response = await handler(request(stream, **HEADERS[name]))
    assert response.status in (400, 401)  # unsigned or not JSON: but read whole, and once
    assert stream.handed == size
    assert CountingBytes.copied <= 2 * size, f"{CountingBytes.copied} bytes copied"


@pytest.mark.parametrize("name", list(ENDPOINTS))
async def test_endpoint_refuses_an_endless_body_with_413(name: str) -> None:
    handler, limit = ENDPOINTS[name]()
    stream = DribblingStream(None)
    response = await handler(request(stream, **HEADERS[name]))
    assert response.status == 413
    assert stream.handed <= limit + READ_CHUNK
