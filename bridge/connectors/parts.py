"""Messages that go out in several parts (a long text in chunks, a long caption before its
file): a retry after a failure in the middle sends only the parts not yet sent.

The core retries a whole ``MatrixMessage`` when the connector raises; without this, every
retry would send the first chunks again and the customer would see them doubled.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ..connector import PermanentDeliveryError

T = TypeVar("T")

MAX_REMEMBERED = 1000
"""Messages whose sent parts are remembered while they await a retry (oldest forgotten)."""


class PartSender:
    """Remembers, per message key (the Matrix event id and what is sent), the parts sent."""

    def __init__(self) -> None:
        self._sent: OrderedDict[str, list[object]] = OrderedDict()

    async def send(self, key: str, parts: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Send ``parts`` in order, skipping those a failed earlier attempt already sent;
        returns what each part returned."""
        done = self._sent.pop(key, [])
        self._sent[key] = done
        while len(self._sent) > MAX_REMEMBERED:
            self._sent.popitem(last=False)
        try:
            for part in parts[len(done) :]:
                done.append(await part())
        except PermanentDeliveryError:
            self._sent.pop(key, None)  # no retry will come
            raise
        self._sent.pop(key, None)
        return done  # type: ignore[return-value]

    def pending(self, key: str) -> int:
        """How many parts of ``key`` were sent by an attempt that then failed."""
        return len(self._sent.get(key, ()))
