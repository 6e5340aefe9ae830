"""Fixtures shared by the connector tests: each test package or module defines ``harness``
(its remote side, started and stopped with ``running``); ``host`` and ``connector`` follow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import pytest

from bridge.connector import NetworkConnector
from tests.contract.fake_host import FakeHost
from tests.contract.harness import ConnectorHarness

H = TypeVar("H", bound=ConnectorHarness)


async def running(harness: H) -> AsyncIterator[H]:
    """The body of a ``harness`` fixture: ``yield from``-style start, hand over, stop."""
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


@pytest.fixture
async def host(harness: ConnectorHarness) -> AsyncIterator[FakeHost]:
    async with FakeHost(harness.account_id) as fake:
        yield fake


@pytest.fixture
async def connector(harness: ConnectorHarness, host: FakeHost) -> AsyncIterator[NetworkConnector]:
    instance = harness.make_connector(host)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()
