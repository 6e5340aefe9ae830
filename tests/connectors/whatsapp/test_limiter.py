"""The WhatsApp pair limiter forgets customers whose bucket has refilled, once it is large."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bridge.connectors.whatsapp import client
from bridge.connectors.whatsapp.client import PairLimiter


async def test_refilled_customers_are_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(client, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    limiter = PairLimiter(burst=2, per_user=1.0)
    limiter.prune_at = limiter.PRUNE_AT = 10
    for user in range(10):
        await limiter.acquire(str(user))
    clock[0] += 0.5
    await limiter.acquire("1")  # 1 has used its whole burst: refills at 1001.5 + 1
    clock[0] += 1.0
    limiter.prune_at = 10
    await limiter.acquire("new")
    assert set(limiter._tokens) == {"1", "new"}
