"""What the WhatsApp connector's tests share: the harness (the Cloud API simulator, serving media
the way Meta does, and a ``FakeHost``; no Synapse), a customer who writes, Matrix messages."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bridge.events import MatrixMedia, MatrixMessage
from bridge.types import PortalKey, RemoteChatID
from tests.contract.harness import FakeHost, staff_message

from ..conftest import running
from .harness import WhatsAppHarness
from .simulator import WebhookDelivery, WhatsAppSimulator

ALICE = "491701234567"
BOB = "491709876543"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
HOUR = 3600.0

# --------------------------------------------------------------------------- fixtures


class MediaServingSimulator(WhatsAppSimulator):
    """Meta with a media server that can misbehave: ``GET /{media-id}`` may leave out the
    checksum (``sha256="omit"``) or give one of other bytes (``sha256="wrong"``); the media URL
    may send bytes without end (``serve="endless"``, chunked) or announce a length far over any
    limit (``serve="oversized"``)."""

    sha256 = "keep"
    serve = "whole"
    padding = 0
    """Characters of filler in the ``GET /{media-id}`` answer."""

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if self.serve == "whole":
            return await super()._download(request)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if self.serve == "oversized":
            response.content_length = 1 << 40
        await response.prepare(request)
        chunk = b"\0" * 65536
        with contextlib.suppress(ConnectionError):
            while True:  # until the client hangs up
                await response.write(chunk)
        return response

    async def _get_node(self, request: web.Request) -> dict[str, Any]:
        info = await super()._get_node(request)
        if "url" in info and self.sha256 == "omit":
            info.pop("sha256")
        elif "url" in info and self.sha256 == "wrong":
            info["sha256"] = hashlib.sha256(b"other bytes").hexdigest()
        if self.padding:
            info["padding"] = "x" * self.padding
        return info


@pytest.fixture
async def harness() -> AsyncIterator[WhatsAppHarness]:
    # Only what the test makes happen: no earlier conversations stand in for the suite's.
    instance = WhatsAppHarness(
        earlier_conversations=False,
        simulator=MediaServingSimulator(
            "EAAG-connector-test-token",
            phone_number_id="109876543210987",
            waba_id="104455667788990",
            app_secret="connector-test-app-secret",
            verify_token="connector-test-verify-token",
            webhook_retry_delay=0.02,
        ),
    )
    async for started in running(instance):
        yield started


@pytest.fixture
def sim(harness: WhatsAppHarness) -> MediaServingSimulator:
    assert isinstance(harness.sim, MediaServingSimulator)
    return harness.sim


# --------------------------------------------------------------------------- helpers


async def customer_writes(
    sim: WhatsAppSimulator, *messages: dict[str, Any], names: dict[str, str] | None = None
) -> WebhookDelivery:
    delivery = await sim.receive(*messages, names=names)
    assert delivery.ok, delivery.statuses
    return delivery


def portal(harness: WhatsAppHarness, chat: str = ALICE) -> PortalKey:
    return PortalKey(harness.account_id, RemoteChatID(chat))


def matrix_message(
    harness: WhatsAppHarness, text: str, *, chat: str = ALICE, **fields: Any
) -> MatrixMessage:
    return staff_message(portal(harness, chat), text, **fields)


def media(
    data: bytes | int, filename: str, mimetype: str, *, size: int | None = -1
) -> tuple[MatrixMedia, list[int]]:
    """Matrix media of ``data`` (or of that many bytes); ``size`` -1 declares the real size.
    The list counts the downloads from the homeserver."""
    downloads: list[int] = []
    content = data if isinstance(data, bytes) else b"\0" * data

    async def download() -> bytes:
        downloads.append(1)
        return content

    declared = len(content) if size == -1 else size
    return MatrixMedia(f"mxc://example.com/{filename}", filename, mimetype, declared, download), (
        downloads
    )


def nothing_requested(sim: WhatsAppSimulator) -> bool:
    return not (sim.sent or sim.rejected or sim.uploads or sim.read_receipts or sim.downloads)


def only(host: FakeHost) -> Any:
    (event,) = host.events
    return event
