"""The inbox's service figures, kept for each conversation as they happen: how long the
customer waited for the first staff reply and for each later one after writing again, and how
long the conversation took from its (re)opening to its resolution. Each in wall-clock seconds
and in business seconds: the team's open hours only, minus the time the conversation was
pending, snoozed or resolved."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime

from ...db.inbox import InboxConversation
from ...db.inbox_figures import InboxPause, InboxResponse
from .hours import BusinessHours


def instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _open_seconds(hours: BusinessHours | None, start: int, end: int) -> float:
    if end <= start:
        return 0.0
    if hours is None:
        return (end - start) / 1000
    return hours.business_seconds(instant(start), instant(end))


async def business_seconds(
    hours: BusinessHours | None, account: str, chat: str, start: int, end: int
) -> int:
    """The seconds of ``[start, end)`` (ms) in open hours while the conversation was not
    pending, snoozed or resolved."""
    total = _open_seconds(hours, start, end)
    for pause in await InboxPause.between(account, chat, start, end):
        paused_end = end if pause.ended_at is None else min(pause.ended_at, end)
        total -= _open_seconds(hours, max(pause.started_at, start), paused_end)
    return max(0, round(total))


async def record_response(
    hours: BusinessHours | None, row: InboxConversation, now: int
) -> InboxResponse | None:
    """A staff reply delivered at ``now`` to ``row`` (as it was before the reply): the wait
    it ended, if the customer was waiting (then returned)."""
    if row.waiting_since is None:
        return None
    kind = "first" if row.first_response_at is None else "next"
    return await _record(hours, row, kind, row.waiting_since, now)


async def record_resolution(hours: BusinessHours | None, row: InboxConversation, now: int) -> None:
    """``row`` was resolved at ``now``: the time since it was opened, or reopened last."""
    start = await InboxPause.last_resolved_end(row.account, row.chat) or row.created_at
    await _record(hours, row, "resolution", start, now)


async def _record(
    hours: BusinessHours | None, row: InboxConversation, kind: str, start: int, end: int
) -> InboxResponse:
    business = await business_seconds(hours, row.account, row.chat, start, end)
    seconds = max(0, round((end - start) / 1000))
    figure = InboxResponse(row.team, kind, start, end, seconds, business)
    await figure.insert(row.account, row.chat)
    return figure


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def show_seconds(seconds: float | None) -> str:
    """``1h 05m``, ``3m 20s``, ``45s``; ``-`` for None."""
    if seconds is None:
        return "-"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24}d {hours % 24:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
