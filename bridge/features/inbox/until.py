"""An absolute time for ``snooze until``, in the team's timezone:

- ``14:00``: today, or tomorrow when that time has passed;
- ``2026-12-24 09:00``, or ``2026-12-24`` alone;
- ``tomorrow [HH:MM]``;
- ``monday [HH:MM]`` (or ``mon``...): the next such day, never today (``monday`` sent on a
  Monday means the one a week later).

A day without a time means the start of the team's business hours that day, or 09:00 when the
team has no hours or is closed that day. Times are wall-clock times: ``monday 09:00`` is 09:00
whether or not summer time begins over the weekend. A time the clocks skip (02:30 when they
jump from 02:00 to 03:00) means the jump itself, one they show twice its first occurrence, as
in the business hours."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from .hours import DAYS, BusinessHours, wall_clock

DEFAULT_TIME = time(9, 0)
WEEKDAYS = {
    **{name: number for number, name in enumerate(DAYS)},
    **{
        name: number
        for number, name in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
}


def parse_until(
    words: Sequence[str], now: datetime, zone: tzinfo, hours: BusinessHours | None = None
) -> datetime | None:
    """The instant (in UTC) ``words`` name in ``zone`` (``hours``: the team's business hours,
    for a day given without a time), or None if they name none or one that is not after
    ``now``."""
    if len(words) not in (1, 2):
        return None
    today = now.astimezone(zone).date()
    clock = _clock(words[-1])
    day_word = words[0] if len(words) == 2 or clock is None else None
    if len(words) == 2 and clock is None:
        return None
    if day_word is None:  # a time alone: today, or tomorrow once it has passed
        assert clock is not None
        at = _at(today, clock, zone)
        if at <= now:
            at = _at(today + timedelta(days=1), clock, zone)
        return at
    day = _day(day_word.lower(), today)
    if day is None:
        return None
    at = _at(day, clock, zone) if clock is not None else _opening(day, zone, hours)
    return at if at > now else None


def _clock(word: str) -> time | None:
    """``HH:MM`` (exactly), else None."""
    if len(word) != 5 or word[2] != ":":
        return None
    try:
        return time.fromisoformat(word)
    except ValueError:
        return None


def _day(word: str, today: date) -> date | None:
    if word == "today":
        return today
    if word == "tomorrow":
        return today + timedelta(days=1)
    if word in WEEKDAYS:
        ahead = (WEEKDAYS[word] - today.weekday() - 1) % 7 + 1
        return today + timedelta(days=ahead)
    try:
        return date.fromisoformat(word) if len(word) == 10 else None
    except ValueError:
        return None


def _at(day: date, clock: time, zone: tzinfo) -> datetime:
    # In UTC: aware datetimes in a repeated hour never equal those of another zone.
    return wall_clock(day, clock.hour * 60 + clock.minute, zone)


def _opening(day: date, zone: tzinfo, hours: BusinessHours | None) -> datetime:
    """When the team opens on ``day``; 09:00 without hours or on a closed day."""
    opening = None if hours is None else hours.opening(day)
    return opening.astimezone(UTC) if opening is not None else _at(day, DEFAULT_TIME, zone)
