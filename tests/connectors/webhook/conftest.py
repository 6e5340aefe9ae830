from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.connectors.webhook import WebhookConnector

from .harness import FakeHost, WebhookHarness


@pytest.fixture
async def harness() -> AsyncIterator[WebhookHarness]:
    instance = WebhookHarness()
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def host(harness: WebhookHarness) -> AsyncIterator[FakeHost]:
    async with FakeHost(harness.account_id) as fake:
        yield fake


@pytest.fixture
async def connector(harness: WebhookHarness, host: FakeHost) -> AsyncIterator[WebhookConnector]:
    instance = harness.make_connector(host)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()
