"""Throughput per business number, the pair rate to one user, and forced failures."""

from __future__ import annotations

from ..payloads import ApiError
from .state import SimulatorState


class Throughput(SimulatorState):
    """Throughput per business number (130429), the pair rate to one user (131056), and the
    failures tests force."""

    def storm(
        self, count: int, code: int = 130429, *, status: int | None = None, after: int = 0
    ) -> None:
        """The next ``count`` message sends (after ``after`` that pass) fail with ``code``
        (130429, 131056, 1, 2, 131000, ...), whatever the limits say. ``status`` overrides the
        HTTP status."""
        self._storm.extend([None] * after + [(code, status)] * count)

    def fail_next(self, count: int = 1, code: int = 1, *, status: int | None = None) -> None:
        """The next ``count`` Graph requests of any kind fail with ``code`` (default 1, "An
        unknown error occurred", HTTP 500; code 2 answers 503)."""
        self._failures.extend([(code, status)] * count)

    def _check_throughput(self) -> None:
        if not self.rate_limits.enabled:
            return
        now = self.clock.now()
        while self._throughput and now - self._throughput[0] >= 1.0:
            self._throughput.popleft()
        if len(self._throughput) >= self.rate_limits.messages_per_second:
            raise ApiError(130429)
        self._throughput.append(now)

    def _check_pair(self, wa_id: str) -> None:
        if not self.rate_limits.enabled:
            return
        limits, now = self.rate_limits, self.clock.now()
        tokens, last = self._pairs.get(wa_id, (float(limits.pair_burst), now))
        tokens = min(float(limits.pair_burst), tokens + (now - last) / limits.pair_interval)
        if tokens < 1.0:
            self._pairs[wa_id] = (tokens, now)
            raise ApiError(131056)
        self._pairs[wa_id] = (tokens - 1.0, now)
