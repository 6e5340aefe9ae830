"""An absolute time for ``snooze until``: ``2026-12-24 09:00`` or ``14:00`` (today, or
tomorrow when that time has passed), in the team's timezone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, tzinfo


def parse_until(words: Sequence[str], now: datetime, zone: tzinfo) -> datetime | None:
    """The instant ``words`` name (``[date] HH:MM``) in ``zone``, or None if they name none
    or one that is not after ``now``."""
    if len(words) not in (1, 2):
        return None
    try:
        clock = time.fromisoformat(words[-1])
        day = date.fromisoformat(words[0]) if len(words) == 2 else None
    except ValueError:
        return None
    if clock.tzinfo is not None or len(words[-1]) != 5:
        return None
    local_now = now.astimezone(zone)
    at = datetime.combine(day or local_now.date(), clock, tzinfo=zone)
    if day is None and at <= local_now:
        at = datetime.combine(local_now.date() + timedelta(days=1), clock, tzinfo=zone)
    return at if at > now else None
