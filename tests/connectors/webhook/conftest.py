from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ..conftest import running
from .harness import WebhookHarness


@pytest.fixture
async def harness() -> AsyncIterator[WebhookHarness]:
    async for instance in running(WebhookHarness()):
        yield instance
