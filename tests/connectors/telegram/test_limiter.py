"""The Telegram rate limiter forgets chats whose time has passed, once its table is large."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bridge.connectors.telegram import client
from bridge.connectors.telegram.client import RateLimiter


async def test_passed_entries_are_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(client, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    limiter = RateLimiter({"chat": 1.0, "group": 0.5, "global": 1e9})
    limiter.prune_at = limiter.PRUNE_AT = 10
    for chat in range(10):
        await limiter.acquire(chat)
    limiter.backoff(5, 100.0)
    clock[0] += 2.0
    await limiter.acquire(99)
    # Chat 5 still waits out its backoff; the others have passed; 99 was just added.
    assert set(limiter._next_chat) == {5, 99}
    assert limiter._next_chat[5] == pytest.approx(1100.0)
