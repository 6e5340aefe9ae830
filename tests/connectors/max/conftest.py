"""The MAX connector tests run against the Bot API simulator through the harness."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.fixtures import connector, host, running

from .harness import MaxHarness

__all__ = ["connector", "harness", "host"]


@pytest.fixture
async def harness() -> AsyncIterator[MaxHarness]:
    async for instance in running(MaxHarness()):
        yield instance
