"""A team's business hours: when it is open, when it next opens or closes, and how much of a
stretch of time was open (the service figures counted "in business hours only")::

    timezone: Europe/Berlin          # IANA name
    weekly:                          # a day or a range of days -> one or more spans
      mon-fri: ["09:00-12:30", "13:30-17:00"]
      sat: "10:00-14:00"             # a span may end at 24:00
    holidays:                        # closed all day
      dates: ["2026-12-24", "2026-12-31"]
      country: DE                    # public holidays of the `holidays` library
      region: BY                     # optional subdivision

Spans are wall-clock times in the team's timezone, so a day's hours stay 09:00-17:00 across a
change to or from summer time. A span touching a gap (clocks jumped forward) starts or ends at
the jump; in a repeated hour (clocks turned back) a time means its first occurrence. Pure
functions of the config and the instants asked about: no database, no clock."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from ...connector import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON_DAYS = 400
"""How far ``next_open`` and ``next_close`` look ahead before answering None."""
MINUTES_PER_DAY = 24 * 60

_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Span = tuple[int, int]
"""Minutes since local midnight: ``[start, end)``, end at most 24:00."""
Interval = tuple[datetime, datetime]
"""Two instants in UTC: ``[start, end)``."""


@dataclass(frozen=True)
class BusinessHours:
    zone: ZoneInfo
    weekly: tuple[tuple[Span, ...], ...]
    """Monday first: each weekday's spans, sorted, not overlapping."""
    closed_dates: frozenset[date] = frozenset()
    country: str | None = None
    region: str | None = None

    def is_open(self, at: datetime) -> bool:
        at = _utc(at)
        first = next(self._intervals(at), None)
        return first is not None and first[0] <= at

    def next_open(self, at: datetime) -> datetime | None:
        """``at`` itself when open, else the instant it next opens (None if it does not open
        within ``HORIZON_DAYS``), in the team's timezone."""
        at = _utc(at)
        first = next(self._intervals(at), None)
        return None if first is None else max(first[0], at).astimezone(self.zone)

    def next_close(self, at: datetime) -> datetime | None:
        """``at`` itself when closed, else the instant this opening ends (None if it does not
        close within ``HORIZON_DAYS``), in the team's timezone."""
        at = _utc(at)
        first = next(self._intervals(at), None)
        if first is None or first[0] > at:
            return at.astimezone(self.zone)
        horizon = self._local_date(at) + timedelta(days=HORIZON_DAYS + 1)
        if first[1] >= wall_clock(horizon, 0, self.zone):
            return None
        return first[1].astimezone(self.zone)

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """The seconds between ``start`` and ``end`` that fall in open hours (0 if ``end`` is
        not after ``start``)."""
        start, end = _utc(start), _utc(end)
        if end <= start:
            return 0.0
        total = timedelta()
        for open_, close in self._intervals(start, self._local_date(end)):
            if open_ >= end:
                break
            total += min(close, end) - max(open_, start)
        return total.total_seconds()

    def opening(self, day: date) -> datetime | None:
        """When the team first opens on the local date ``day`` (None: closed all day), in the
        team's timezone."""
        first = next(self._day(day), None)
        return None if first is None else first[0].astimezone(self.zone)

    def is_closed_day(self, day: date) -> bool:
        """The day is an explicit closed date or a public holiday."""
        if day in self.closed_dates:
            return True
        return self.country is not None and day in _public(self.country, self.region)

    def _local_date(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def _intervals(self, after: datetime, last: date | None = None) -> Iterator[Interval]:
        """The open intervals that end after ``after``, in order, touching ones merged, up to
        the local date ``last`` (``HORIZON_DAYS`` ahead by default)."""
        day = self._local_date(after)
        if last is None:
            last = day + timedelta(days=HORIZON_DAYS)
        day -= timedelta(days=1)  # a day's intervals end by its midnight; one more is cheap
        pending: Interval | None = None
        while day <= last:
            for interval in self._day(day):
                if pending is not None and interval[0] <= pending[1]:
                    pending = (pending[0], max(pending[1], interval[1]))
                    continue
                if pending is not None and pending[1] > after:
                    yield pending
                pending = interval
            day += timedelta(days=1)
        if pending is not None and pending[1] > after:
            yield pending

    def _day(self, day: date) -> Iterator[Interval]:
        if self.is_closed_day(day):
            return
        for start, end in self.weekly[day.weekday()]:
            interval = (wall_clock(day, start, self.zone), wall_clock(day, end, self.zone))
            if interval[0] < interval[1]:
                yield interval


@functools.cache
def _public(country: str, region: str | None) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=region)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} is naive: business hours need an aware datetime")
    return at.astimezone(UTC)


def wall_clock(day: date, minute: int, zone: tzinfo) -> datetime:
    """Wall-clock ``minute`` of ``day`` in ``zone`` as a UTC instant: a time in a repeated hour
    is its first occurrence, one in a gap is the jump itself, so that later wall-clock times
    never map to earlier instants."""
    naive = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = naive.replace(tzinfo=zone).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In a gap: the jump is the first instant whose wall-clock time is past ``naive``.
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = int(min(first, second).timestamp()), int(max(first, second).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) > naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def parse_business_hours(raw: Any, key: str) -> BusinessHours:
    """Check a team's ``business_hours`` section (at ``key``); raise ``ConfigError`` naming
    the exact key that is wrong."""
    section = _mapping(raw, key, required=("timezone", "weekly"), known=("holidays",))
    zone = _zone(section["timezone"], f"{key}.timezone")
    weekly = _weekly(section["weekly"], f"{key}.weekly")
    closed: frozenset[date] = frozenset()
    country = region = None
    if section.get("holidays") is not None:
        closed, country, region = _holidays(section["holidays"], f"{key}.holidays")
    return BusinessHours(zone, weekly, closed, country, region)


def _mapping(
    raw: Any, key: str, *, required: tuple[str, ...] = (), known: tuple[str, ...] = ()
) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"must be a mapping, not {type(raw).__name__}")
    for name in raw:
        if name not in required + known:
            raise ConfigError(f"{key}.{name}", "unknown key")
    for name in required:
        if raw.get(name) is None:
            raise ConfigError(f"{key}.{name}", "is missing")
    return raw


def _zone(raw: Any, key: str) -> ZoneInfo:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(key, f"must be an IANA timezone name such as Europe/Berlin, not {raw!r}")
    try:
        return ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError(key, f"{raw!r} is not a known IANA timezone") from e


def _weekly(raw: Any, key: str) -> tuple[tuple[Span, ...], ...]:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"must map days to spans, not {type(raw).__name__}")
    days: list[list[Span]] = [[] for _ in DAYS]
    for name, value in raw.items():
        where = f"{key}.{name}"
        spans = [_span(item, where) for item in _texts(value, where)]
        for day in _days(name, where):
            for span in spans:
                for other in days[day]:
                    if span[0] < other[1] and other[0] < span[1]:
                        raise ConfigError(
                            where, f"{_show(span)} overlaps {_show(other)} on {DAYS[day]}"
                        )
                days[day].append(span)
    return tuple(tuple(sorted(spans)) for spans in days)


def _texts(value: Any, key: str) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise ConfigError(key, 'must be a span "HH:MM-HH:MM" or a list of spans')


def _days(name: Any, key: str) -> list[int]:
    """``mon``, or a range ``mon-fri`` (``fri-mon`` wraps over the weekend)."""
    parts = str(name).strip().lower().split("-")
    if len(parts) > 2 or any(part.strip() not in DAYS for part in parts):
        raise ConfigError(key, f"{name!r} is not a day (mon...sun) or a range like mon-fri")
    first, last = (DAYS.index(part.strip()) for part in (parts[0], parts[-1]))
    return [(first + i) % 7 for i in range((last - first) % 7 + 1)]


def _span(raw: Any, key: str) -> Span:
    match = _SPAN.match(raw) if isinstance(raw, str) else None
    if match is None:
        raise ConfigError(key, f'{raw!r} is not a span "HH:MM-HH:MM"')
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start_h > 23 or start_m > 59 or end_m > 59 or end > MINUTES_PER_DAY:
        raise ConfigError(key, f"{raw!r} is not a time of day (00:00 to 24:00)")
    if end <= start:
        raise ConfigError(key, f"{raw!r} must end after it starts")
    return start, end


def _show(span: Span) -> str:
    return "-".join(f"{minute // 60:02d}:{minute % 60:02d}" for minute in span)


def _holidays(raw: Any, key: str) -> tuple[frozenset[date], str | None, str | None]:
    section = _mapping(raw, key, known=("dates", "country", "region"))
    dates = section.get("dates")
    dates = [] if dates is None else dates
    if not isinstance(dates, list):
        raise ConfigError(f"{key}.dates", "must be a list of dates YYYY-MM-DD")
    closed = frozenset(_date(item, f"{key}.dates") for item in dates)
    country, region = section.get("country"), section.get("region")
    if region is not None and country is None:
        raise ConfigError(f"{key}.region", "needs a country")
    if country is None:
        return closed, None, None
    if not isinstance(country, str) or country not in holidays.list_supported_countries():
        raise ConfigError(f"{key}.country", f"{country!r} is not a country the holidays know")
    if region is not None:
        region = str(region)
        if region not in holidays.list_supported_countries()[country]:
            raise ConfigError(f"{key}.region", f"{region!r} is not a subdivision of {country}")
    return closed, country, region


def _date(raw: Any, key: str) -> date:
    """A date as YAML gives it (unquoted) or as a text."""
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    try:
        if not isinstance(raw, str):
            raise ValueError(raw)
        return date.fromisoformat(raw.strip())
    except ValueError as e:
        raise ConfigError(key, f"{raw!r} is not a date YYYY-MM-DD") from e
