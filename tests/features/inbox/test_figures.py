"""The inbox's service figures on SQLite and on a real PostgreSQL: response and resolution
times in wall-clock and business time (closed hours and snoozed or pending time left out),
kept once per wait."""

from __future__ import annotations

from datetime import UTC, datetime

from mautrix.util.async_db import Database

from bridge.db import InboxConversation, InboxResponse
from bridge.features.inbox.figures import record_resolution, record_response, show_seconds
from bridge.features.inbox.hours import parse_business_hours
from tests.db.support import database, databases

__all__ = ["database", "databases"]

ACC = "acc"
OFFICE = parse_business_hours(
    {"timezone": "UTC", "weekly": {"mon-fri": "09:00-17:00"}}, "features.inbox.teams.x.hours"
)
HOUR = 3600


def at(day: int, hour: int, minute: int = 0) -> int:
    """Milliseconds at that time of December 2026 (the 7th is a Monday), UTC."""
    return int(datetime(2026, 12, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


async def current(chat: str) -> InboxConversation:
    found = await InboxConversation.get(ACC, chat)
    assert found is not None
    return found


async def reply(chat: str, now: int) -> None:
    """What the delivered hook does with a staff reply."""
    await record_response(OFFICE, await current(chat), now)
    await InboxConversation.staff_replied(ACC, chat, now)


async def resolve(chat: str, now: int) -> None:
    """What the ``resolve`` command does."""
    await InboxConversation.set_status(ACC, chat, "resolved", now)
    await record_resolution(OFFICE, await current(chat), now)


def figures(rows: list[InboxResponse]) -> list[tuple[str, int, int]]:
    return [(row.kind, row.seconds, row.business_seconds) for row in rows]


async def test_business_time_leaves_out_closed_hours_and_snoozes(database: Database) -> None:
    assert await InboxConversation.create(ACC, "c", "support", at(7, 16))
    # Snoozed from Monday 16:30 until Tuesday 09:30: half an hour of each open day paused.
    await InboxConversation.set_status(ACC, "c", "snoozed", at(7, 16, 30), at(8, 9, 30))
    await InboxConversation.set_status(ACC, "c", "open", at(8, 9, 30))
    await reply("c", at(8, 10))
    await reply("c", at(8, 10, 5))  # nobody waited: no figure
    await InboxConversation.customer_wrote(ACC, "c", at(8, 11))
    await InboxConversation.set_status(ACC, "c", "pending", at(8, 11, 5))
    await InboxConversation.set_status(ACC, "c", "open", at(8, 11, 10))
    await reply("c", at(8, 11, 15))
    await resolve("c", at(8, 12))
    # Reopened an hour later and resolved again: the second resolution counts from then.
    await InboxConversation.set_status(ACC, "c", "open", at(8, 13))
    await resolve("c", at(8, 14))
    assert figures(await InboxResponse.of(ACC, "c")) == [
        ("first", 18 * HOUR, HOUR),  # Mon 16:00-17:00 and Tue 09:00-10:00, minus two halves
        ("next", 15 * 60, 10 * 60),  # five minutes pending left out
        ("resolution", 20 * HOUR, 3 * HOUR - 5 * 60),  # 4h open minus the pauses
        ("resolution", HOUR, HOUR),
    ]


async def test_a_retried_reply_records_its_wait_once(database: Database) -> None:
    assert await InboxConversation.create(ACC, "c", "support", at(7, 10))
    row = await current("c")
    await record_response(OFFICE, row, at(7, 10, 2))
    await record_response(OFFICE, row, at(7, 10, 3))  # the hook again, before the row changed
    await InboxConversation.staff_replied(ACC, "c", at(7, 10, 3))
    assert figures(await InboxResponse.of(ACC, "c")) == [("first", 120, 120)]
    # Always open (no business hours): business time is wall-clock time minus the pauses.
    await InboxConversation.customer_wrote(ACC, "c", at(7, 20))
    await InboxConversation.set_status(ACC, "c", "snoozed", at(7, 20, 10), at(7, 21))
    await InboxConversation.set_status(ACC, "c", "open", at(7, 21))
    await record_response(None, await current("c"), at(7, 21, 30))
    assert figures(await InboxResponse.since("support", "next", at(7, 0))) == [
        ("next", 90 * 60, 40 * 60)
    ]
    assert await InboxResponse.since("sales", "next", at(7, 0)) == []


def test_show_seconds() -> None:
    shown = [show_seconds(s) for s in (None, 45, 200, 3900, 2 * 86400 + 3 * 3600)]
    assert shown == ["-", "45s", "3m 20s", "1h 05m", "2d 03h"]
