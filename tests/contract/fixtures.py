"""Fixtures for tests that run a connector against its harness: a test module or package
defines ``harness`` (its remote side, started and stopped with ``running``); ``host`` and
``connector`` follow. The contract suite and the connector tests both use them (through their
``conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import pytest

from bridge.connector import NetworkConnector

from .fake_host import FakeHost
from .harness import ConnectorHarness

__all__ = ["connector", "host", "running"]

H = TypeVar("H", bound=ConnectorHarness)


async def running(harness: H) -> AsyncIterator[H]:
    """The body of a ``harness`` fixture: start, hand over, stop (``async for ... yield``)."""
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
