"""Stopping background tasks reliably, and retrying what must not be lost, for the core and
the connectors alike."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

RECANCEL_INTERVAL = 0.2


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object] | None]) -> None:
    """Cancel ``tasks`` and return once every one has finished.

    A single ``cancel()`` is not enough on Python 3.11: ``asyncio.wait_for`` (used inside
    aioimaplib, aiohttp and others) drops a cancellation that arrives in the same loop turn
    as its inner awaitable completes, and the task carries on (an IMAP loop then sits in its
    next IDLE for minutes). So the tasks are cancelled again until they are done. Their
    results and exceptions are consumed.
    """
    every = [task for task in tasks if task is not None]
    pending = {task for task in every if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_INTERVAL)
    for task in every:
        if not task.cancelled():
            task.exception()  # mark it retrieved: a stopped task's error is not news


async def until_done(
    what: str,
    action: Callable[[], Awaitable[T]],
    *,
    log: logging.Logger,
    first_delay: float,
    max_delay: float,
    traceback: bool = True,
) -> T:
    """Run ``action`` until it succeeds, with backoff from ``first_delay`` to ``max_delay``
    seconds: for writes whose loss to a passing outage of the database or the homeserver
    would lose or double a message. Each failure is logged as "Could not <what>"."""
    delay = first_delay
    while True:
        try:
            return await action()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("Could not %s (%s), retrying in %.1fs", what, e, delay, exc_info=traceback)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
