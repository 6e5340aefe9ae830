"""Delivery to a connector: retried in order until it succeeds, fails for good, or the
channel's deadline passes; every failure shown in the room. Staff messages and the messages
the bridge starts go through the same rules."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..connector import (
    DeliveryError,
    NetworkConnector,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from ..db import QueueItem
from ..logsafe import pii
from ..metrics.registry import BridgeMetrics, account_of
from ..tasks import until_done
from .dispatcher import GiveUp
from .notices import Notices
from .util import txn_id

log = logging.getLogger("bridge.delivery")

RETRY_MAX = 60.0
RECORD_RETRY = 0.5
RECORD_RETRY_MAX = 5.0
T = TypeVar("T")


async def deliver(
    item: QueueItem,
    connector: NetworkConnector,
    notices: Notices,
    room_id: str,
    event_id: str | None,
    action: Callable[[], Awaitable[T]],
    metrics: BridgeMetrics | None = None,
) -> T | None:
    """Run ``action`` until it succeeds, fails permanently, or the channel's delivery
    deadline (counted from when the bridge accepted ``item``) passes. Failures are shown in
    the room as a notice replying to ``event_id``; None is returned after a permanent one.
    Items of this conversation wait meanwhile. ``metrics`` counts the failures and retries."""
    deadline = item.created_at / 1000 + connector.capabilities.delivery_deadline
    delay = 1.0
    account = account_of(item.queue_key)
    while True:
        try:
            return await action()
        except PermanentDeliveryError as e:
            if metrics is not None:
                metrics.failed(account, "out", "permanent")
            await notices.failure(room_id, event_id, e.reason, txn=notice_txn(item))
            return None
        except asyncio.CancelledError:
            raise
        except Exception as e:
            reason = e.reason if isinstance(e, DeliveryError) else f"{type(e).__name__}: {e}"
            wait = (
                getattr(e, "retry_after", None) if isinstance(e, TemporaryDeliveryError) else None
            )
            wait = max(wait or delay, 0.05)
            if time.time() + wait > deadline:
                tries = item.attempts + 1
                # The dispatcher keeps it as a dead letter and tells the room.
                raise GiveUp(f"{reason} (gave up after {tries} attempt{'s' * (tries > 1)})") from e
            what = event_id or f"queue item {item.id}"
            log.warning("Delivery of %s failed (%s), retrying in %.1fs", what, pii(reason), wait)
            if metrics is not None:
                metrics.retried(account, "out")
            await item.bump_attempts()
            await asyncio.sleep(wait)
            delay = min(delay * 2, RETRY_MAX)


async def record(what: str, write: Callable[[], Awaitable[None]]) -> None:
    """Store what a delivery changed. The remote side has the message now: if the database
    fails here, running the queue item again would deliver it a second time, so the write
    itself is retried until the database is back."""
    await until_done(
        f"record {what}", write, log=log, first_delay=RECORD_RETRY,
        max_delay=RECORD_RETRY_MAX, traceback=False,
    )  # fmt: skip


def notice_txn(item: QueueItem) -> str:
    return txn_id("notice", str(item.id), str(item.created_at))
