"""Flood control as the Bot FAQ documents it: per private chat, per group and for all chats."""

from __future__ import annotations

import math
from collections import deque
from typing import NoReturn

from ..updates import Json
from .records import ThrottleRecord, retry_after_error
from .state import SimulatorState


class FloodControl(SimulatorState):
    """The Bot FAQ's flood limits per private chat, per group and for all chats, and the forced
    429 "storm"."""

    def rate_limit_storm(self, count: int, retry_after: int = 5, *, after: int = 0) -> None:
        """The next ``count`` counted send calls (after ``after`` that pass) answer 429 with
        ``retry_after``, whatever the limits say."""
        self._storm.extend([0] * after + [retry_after] * count)

    def _throttle(self, method: str, chat: Json, bc: str) -> None:
        chat_id = int(chat["id"])
        seconds = self._storm.pop(0) if self._storm else 0
        if seconds:
            self._record_throttle(method, chat_id, seconds, "storm")
        limits = self.rate_limits
        if not limits.enabled:
            return
        now = self.clock.now()
        key = (bc, chat_id)
        waits: list[tuple[float, str]] = []
        private = chat["type"] == "private"
        if private:
            tokens, stamp = self._buckets.get(key, (float(limits.private_burst), now))
            tokens = min(
                float(limits.private_burst), tokens + (now - stamp) * limits.private_per_second
            )
            if tokens < 1:
                waits.append(((1 - tokens) / limits.private_per_second, "chat"))
        else:
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= limits.group_per_minute:
                waits.append((window[0] + 60 - now, "group"))
        while self._global and self._global[0] <= now - 1:
            self._global.popleft()
        if len(self._global) >= limits.global_per_second:
            waits.append((self._global[0] + 1 - now, "global"))
        if waits:
            wait, scope = max(waits)
            self._record_throttle(method, chat_id, max(1, math.ceil(wait)), scope)
        if private:
            self._buckets[key] = (tokens - 1, now)
        else:
            self._windows[key].append(now)
        self._global.append(now)

    def _record_throttle(
        self, method: str, chat_id: int | None, seconds: int, scope: str
    ) -> NoReturn:
        self.throttled.append(ThrottleRecord(method, chat_id, seconds, scope))
        raise retry_after_error(seconds)
