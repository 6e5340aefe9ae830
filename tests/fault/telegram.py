"""The Telegram Bot API simulator with two faults the real service shows: server errors for a
while, and updates delivered again because the confirmation of a batch got lost."""

from __future__ import annotations

from typing import Any

from tests.connectors.telegram.simulator import ApiError, TelegramSimulator, _Params

SERVER_ERRORS = {500: "Internal Server Error", 502: "Bad Gateway"}


class FaultyTelegramSimulator(TelegramSimulator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._errors: list[int] = []
        self.server_errors = 0
        """How many calls were answered with an injected server error."""
        self.redeliver = False
        """getUpdates hands out every batch a second time (the same update ids), as when
        Telegram did not see the offset that confirmed it."""
        self._redelivered: set[int] = set()

    @property
    def redelivered(self) -> int:
        return len(self._redelivered)

    def fail_next(self, count: int, status: int = 502) -> None:
        """The next ``count`` Bot API calls of any method answer ``status`` (5xx)."""
        self._errors.extend([status] * count)

    async def _call(self, method: str, params: _Params) -> tuple[int, Any]:
        if self._errors:
            status = self._errors.pop(0)
            self.server_errors += 1
            raise ApiError(status, SERVER_ERRORS.get(status, "Server Error"))
        return await super()._call(method, params)

    async def _get_updates(self, p: _Params) -> list[Any]:
        offset = p.get_int("offset", 0) or 0
        if self.redeliver and offset > 0:
            again = [
                q.update_id
                for q in self._queue
                if q.update_id < offset and q.update_id not in self._redelivered
            ]
            if again:
                self._redelivered.update(again)
                p.values["offset"] = min(again)
        return await super()._get_updates(p)
