"""``PartSender``: a retry sends only the parts a failed attempt did not send."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from bridge.connector import PermanentDeliveryError, TemporaryDeliveryError
from bridge.connectors.parts import MAX_REMEMBERED, PartSender


def parts(
    log: list[str], names: str, fail: dict[str, Exception]
) -> list[Callable[[], Awaitable[str]]]:
    def part(name: str) -> Callable[[], Awaitable[str]]:
        async def send() -> str:
            error = fail.pop(name, None)
            if error is not None:
                raise error
            log.append(name)
            return name.upper()

        return send

    return [part(n) for n in names]


async def test_retry_sends_the_rest_only() -> None:
    sender, log = PartSender(), []
    fail = {"c": TemporaryDeliveryError("429")}
    with pytest.raises(TemporaryDeliveryError):
        await sender.send("$e:text", parts(log, "abcd", fail))
    assert log == ["a", "b"] and sender.pending("$e:text") == 2
    assert await sender.send("$e:text", parts(log, "abcd", fail)) == ["A", "B", "C", "D"]
    assert log == ["a", "b", "c", "d"]
    assert sender.pending("$e:text") == 0
    # Done: the same key again is a new message (the core never resends a delivered one).
    await sender.send("$e:text", parts(log, "ab", {}))
    assert log[-2:] == ["a", "b"]


async def test_permanent_failure_forgets_and_keys_are_separate() -> None:
    sender, log = PartSender(), []
    with pytest.raises(TemporaryDeliveryError):
        await sender.send("$x", parts(log, "ab", {"b": TemporaryDeliveryError("x")}))
    with pytest.raises(PermanentDeliveryError):
        await sender.send("$y", parts(log, "ab", {"b": PermanentDeliveryError("no")}))
    assert sender.pending("$x") == 1 and sender.pending("$y") == 0


async def test_memory_is_bounded() -> None:
    sender: PartSender = PartSender()
    for i in range(MAX_REMEMBERED + 10):
        with pytest.raises(TemporaryDeliveryError):
            await sender.send(f"${i}", parts([], "ab", {"b": TemporaryDeliveryError("x")}))
    assert sender.pending("$0") == 0 and sender.pending(f"${MAX_REMEMBERED + 9}") == 1
