"""The VK connector tests run against the simulator, by default in callback mode."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ..conftest import connector, host, running
from .harness import VKHarness

__all__ = ["connector", "host"]


@pytest.fixture
async def harness() -> AsyncIterator[VKHarness]:
    async for instance in running(VKHarness()):
        yield instance
