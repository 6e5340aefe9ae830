"""Business hours: concrete weeks (lunch breaks, holidays, summer time, 24:00) and properties
over random schedules in several timezones; bad config refused with the key named."""

from __future__ import annotations

import io
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from bridge.connector import ConfigError
from bridge.features.inbox.hours import (
    DAYS,
    MINUTES_PER_DAY,
    BusinessHours,
    parse_business_hours,
)

KEY = "teams.support.business_hours"
BERLIN = ZoneInfo("Europe/Berlin")
EXAMPLE = """
timezone: Europe/Berlin          # IANA name (zoneinfo)
weekly:
  mon-fri: ["09:00-12:30", "13:30-17:00"]
  sat: "10:00-14:00"
holidays:
  dates: [2026-12-24, "2026-12-31"]
  country: DE
  region: BY
"""


def _hours(weekly: dict[str, Any], **extra: Any) -> BusinessHours:
    return parse_business_hours({"timezone": "Europe/Berlin", "weekly": weekly, **extra}, KEY)


OFFICE_WEEKLY = {"mon-fri": ["09:00-12:30", "13:30-17:00"]}
OFFICE = _hours(OFFICE_WEEKLY)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def hours(seconds: float) -> float:
    return seconds / 3600


def test_the_documented_example_parses_from_yaml() -> None:
    parsed = parse_business_hours(YAML().load(io.StringIO(EXAMPLE)), KEY)
    assert parsed.zone == BERLIN
    assert parsed.weekly[0] == ((9 * 60, 12 * 60 + 30), (13 * 60 + 30, 17 * 60))
    assert parsed.weekly[5] == ((10 * 60, 14 * 60),)
    assert parsed.weekly[6] == ()
    assert parsed.closed_dates == {date(2026, 12, 24), date(2026, 12, 31)}
    assert (parsed.country, parsed.region) == ("DE", "BY")


def test_friday_evening_waits_for_monday_morning() -> None:
    friday = berlin(2026, 3, 13, 18, 0)
    assert not OFFICE.is_open(friday)
    assert OFFICE.next_open(friday) == berlin(2026, 3, 16, 9, 0)
    assert OFFICE.next_close(friday) == friday
    assert OFFICE.business_seconds(friday, berlin(2026, 3, 16, 10, 0)) == 3600


def test_the_lunch_break_is_closed() -> None:
    assert OFFICE.is_open(berlin(2026, 3, 12, 12, 29))
    assert not OFFICE.is_open(berlin(2026, 3, 12, 12, 30))
    assert not OFFICE.is_open(berlin(2026, 3, 12, 13, 0))
    assert OFFICE.is_open(berlin(2026, 3, 12, 13, 30))
    assert OFFICE.next_close(berlin(2026, 3, 12, 11, 0)) == berlin(2026, 3, 12, 12, 30)
    assert OFFICE.next_open(berlin(2026, 3, 12, 12, 45)) == berlin(2026, 3, 12, 13, 30)
    assert OFFICE.next_open(berlin(2026, 3, 12, 10, 0)) == berlin(2026, 3, 12, 10, 0)
    lunch = OFFICE.business_seconds(berlin(2026, 3, 12, 12, 0), berlin(2026, 3, 12, 14, 0))
    assert hours(lunch) == 1
    whole_day = OFFICE.business_seconds(berlin(2026, 3, 12), berlin(2026, 3, 13))
    assert hours(whole_day) == 7


def test_any_timezone_in_naive_refused() -> None:
    assert OFFICE.is_open(datetime(2026, 3, 12, 8, 30, tzinfo=UTC))  # 09:30 in Berlin
    assert OFFICE.next_open(datetime(2026, 3, 12, 7, 0, tzinfo=UTC)) == berlin(2026, 3, 12, 9)
    with pytest.raises(ValueError, match="naive"):
        OFFICE.is_open(datetime(2026, 3, 12, 10, 0))


def test_explicit_dates_and_public_holidays_are_closed_all_day() -> None:
    bavaria = _hours(OFFICE_WEEKLY, holidays={"dates": ["2026-12-24"], "country": "DE"})
    bavaria_region = _hours(OFFICE_WEEKLY, holidays={"country": "DE", "region": "BY"})
    # Christmas Eve (a Thursday, closed by date), then Christmas (public) and a weekend.
    assert not bavaria.is_open(berlin(2026, 12, 24, 10, 0))
    assert bavaria.next_open(berlin(2026, 12, 23, 18, 0)) == berlin(2026, 12, 28, 9, 0)
    assert bavaria.is_closed_day(date(2026, 12, 25))
    # Labour Day is a Friday: Thursday evening waits for Monday.
    assert bavaria.next_open(berlin(2026, 4, 30, 17, 0)) == berlin(2026, 5, 4, 9, 0)
    week = bavaria.business_seconds(berlin(2026, 4, 27), berlin(2026, 5, 4))
    assert hours(week) == 4 * 7
    # Epiphany is a holiday in Bavaria only.
    assert bavaria.is_open(berlin(2026, 1, 6, 10, 0))
    assert not bavaria_region.is_open(berlin(2026, 1, 6, 10, 0))


def test_a_summer_time_weekend_keeps_wall_clock_hours() -> None:
    # Clocks go forward on Sunday 2026-03-29 and back on Sunday 2026-10-25.
    friday, monday = berlin(2026, 3, 27, 9, 0), berlin(2026, 3, 30, 17, 0)
    assert hours(OFFICE.business_seconds(friday, monday)) == 14
    opens = OFFICE.next_open(berlin(2026, 3, 28, 12, 0))
    assert opens == berlin(2026, 3, 30, 9, 0)
    assert opens is not None and opens.utcoffset() == timedelta(hours=2)
    always = _hours({"sun": "00:00-24:00"})
    assert hours(always.business_seconds(berlin(2026, 3, 29), berlin(2026, 3, 30))) == 23
    assert hours(always.business_seconds(berlin(2026, 10, 25), berlin(2026, 10, 26))) == 25


def test_spans_in_the_skipped_and_the_repeated_hour() -> None:
    around_gap = _hours({"sun": ["01:00-02:30", "02:30-04:00"]})
    in_gap = _hours({"sun": "02:00-02:45"})
    start, end = berlin(2026, 3, 29), berlin(2026, 3, 30)
    # 01:00 until the jump at 02:00 (now 03:00), then 03:00 to 04:00: two hours, no overlap.
    assert hours(around_gap.business_seconds(start, end)) == 2
    assert around_gap.next_close(berlin(2026, 3, 29, 1, 30)) == berlin(2026, 3, 29, 4, 0)
    assert in_gap.business_seconds(start, end) == 0
    assert in_gap.next_open(start) == berlin(2026, 4, 5, 2, 0)
    repeated = _hours({"sun": "02:00-03:00"})
    # 02:00 summer time to 03:00 winter time: the repeated hour counts twice.
    autumn = repeated.business_seconds(berlin(2026, 10, 25), berlin(2026, 10, 26))
    assert hours(autumn) == 2


def test_spans_end_at_midnight_and_join_the_next_day() -> None:
    nights = _hours({"sat": "18:00-24:00", "sun": "00:00-06:00"})
    assert nights.is_open(berlin(2026, 3, 14, 23, 59))
    assert nights.is_open(berlin(2026, 3, 15, 0, 0))
    assert nights.next_close(berlin(2026, 3, 14, 20, 0)) == berlin(2026, 3, 15, 6, 0)
    night = nights.business_seconds(berlin(2026, 3, 14, 18), berlin(2026, 3, 15, 6))
    assert hours(night) == 12


def test_open_around_the_clock_or_never() -> None:
    always = _hours({"mon-sun": "00:00-24:00"})
    now = berlin(2026, 3, 12, 10, 0)
    assert always.is_open(now)
    assert always.next_open(now) == now
    assert always.next_close(now) is None
    never = _hours({})
    assert not never.is_open(now)
    assert never.next_open(now) is None
    assert never.next_close(now) == now


def test_day_ranges_wrap_over_the_weekend() -> None:
    weekend = _hours({"fri-mon": "10:00-11:00"})
    assert [bool(day) for day in weekend.weekly] == [True, False, False, False, True, True, True]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (["09:00-17:00"], KEY),
        ({"weekly": {}}, f"{KEY}.timezone"),
        ({"timezone": "Mars/Olympus_Mons", "weekly": {}}, f"{KEY}.timezone"),
        ({"timezone": "../../etc/passwd", "weekly": {}}, f"{KEY}.timezone"),
        ({"timezone": 5, "weekly": {}}, f"{KEY}.timezone"),
        ({"timezone": "UTC"}, f"{KEY}.weekly"),
        ({"timezone": "UTC", "weekly": ["mon"]}, f"{KEY}.weekly"),
        ({"timezone": "UTC", "weekly": {}, "opening": 1}, f"{KEY}.opening"),
        ({"timezone": "UTC", "weekly": {"funday": "09:00-17:00"}}, f"{KEY}.weekly.funday"),
        (
            {"timezone": "UTC", "weekly": {"mon-tue-wed": "09:00-17:00"}},
            f"{KEY}.weekly.mon-tue-wed",
        ),
        ({"timezone": "UTC", "weekly": {"mon": "9-17"}}, f"{KEY}.weekly.mon"),
        ({"timezone": "UTC", "weekly": {"mon": 9}}, f"{KEY}.weekly.mon"),
        ({"timezone": "UTC", "weekly": {"mon": [900]}}, f"{KEY}.weekly.mon"),
        ({"timezone": "UTC", "weekly": {"mon": None}}, f"{KEY}.weekly.mon"),
        ({"timezone": "UTC", "weekly": {"mon": "09:00-24:01"}}, f"{KEY}.weekly.mon"),
        ({"timezone": "UTC", "weekly": {"mon": "24:00-24:00"}}, f"{KEY}.weekly.mon"),
        ({"timezone": "UTC", "weekly": {"mon": "09:60-10:00"}}, f"{KEY}.weekly.mon"),
        ({"timezone": "UTC", "weekly": {"mon": "17:00-09:00"}}, f"{KEY}.weekly.mon"),
        ({"timezone": "UTC", "weekly": {"mon": "09:00-09:00"}}, f"{KEY}.weekly.mon"),
        (
            {"timezone": "UTC", "weekly": {"mon": ["09:00-12:00", "11:59-13:00"]}},
            f"{KEY}.weekly.mon",
        ),
        (
            {"timezone": "UTC", "weekly": {"mon-fri": "09:00-17:00", "fri-sat": "16:00-18:00"}},
            f"{KEY}.weekly.fri-sat",
        ),
        ({"timezone": "UTC", "weekly": {}, "holidays": ["DE"]}, f"{KEY}.holidays"),
        (
            {"timezone": "UTC", "weekly": {}, "holidays": {"observed": 1}},
            f"{KEY}.holidays.observed",
        ),
        (
            {"timezone": "UTC", "weekly": {}, "holidays": {"country": "XX"}},
            f"{KEY}.holidays.country",
        ),
        (
            {"timezone": "UTC", "weekly": {}, "holidays": {"country": 49}},
            f"{KEY}.holidays.country",
        ),
        (
            {"timezone": "UTC", "weekly": {}, "holidays": {"country": "DE", "region": "XX"}},
            f"{KEY}.holidays.region",
        ),
        (
            {"timezone": "UTC", "weekly": {}, "holidays": {"region": "BY"}},
            f"{KEY}.holidays.region",
        ),
        (
            {"timezone": "UTC", "weekly": {}, "holidays": {"dates": "2026-12-24"}},
            f"{KEY}.holidays.dates",
        ),
        (
            {"timezone": "UTC", "weekly": {}, "holidays": {"dates": ["2026-02-30"]}},
            f"{KEY}.holidays.dates",
        ),
        (
            {"timezone": "UTC", "weekly": {}, "holidays": {"dates": [20261224]}},
            f"{KEY}.holidays.dates",
        ),
    ],
)
def test_bad_config_names_the_key(raw: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_business_hours(raw, KEY)
    assert caught.value.key == key


# Properties over random schedules, in zones with summer time (also a half-hour one) and
# without, with random closed dates and public holidays.

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]


@st.composite
def schedules(draw: st.DrawFn) -> BusinessHours:
    weekly: dict[str, list[str]] = {}
    for day in DAYS:
        bounds = sorted(draw(st.sets(st.integers(0, MINUTES_PER_DAY), max_size=6)))
        spans = [
            f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
            for start, end in zip(bounds[::2], bounds[1::2], strict=False)
        ]
        if spans:
            weekly[day] = spans
    closed = draw(st.lists(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=20))
    holidays: dict[str, Any] = {"dates": [day.isoformat() for day in closed]}
    if draw(st.booleans()):
        holidays["country"] = "DE"
    raw = {"timezone": draw(st.sampled_from(ZONES)), "weekly": weekly, "holidays": holidays}
    return parse_business_hours(raw, KEY)


instants = st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 31), timezones=st.just(UTC))
TINY = timedelta(microseconds=1)


@settings(max_examples=150, deadline=None)
@given(schedules(), st.lists(instants, min_size=3, max_size=3))
def test_business_seconds_add_up(hours_: BusinessHours, points: list[datetime]) -> None:
    a, b, c = sorted(points)
    split = hours_.business_seconds(a, b) + hours_.business_seconds(b, c)
    assert math.isclose(split, hours_.business_seconds(a, c), abs_tol=1e-6)


@settings(max_examples=150, deadline=None)
@given(schedules(), instants, instants)
def test_business_seconds_within_the_wall_seconds(
    hours_: BusinessHours, a: datetime, b: datetime
) -> None:
    a, b = sorted((a, b))
    assert 0 <= hours_.business_seconds(a, b) <= (b - a).total_seconds()
    assert hours_.business_seconds(b, a) == 0


@settings(max_examples=150, deadline=None)
@given(schedules(), instants)
def test_is_open_agrees_with_a_tiny_interval(hours_: BusinessHours, at: datetime) -> None:
    assert hours_.is_open(at) == (hours_.business_seconds(at, at + TINY) > 0)


@settings(max_examples=150, deadline=None)
@given(schedules(), instants)
def test_next_open_is_the_first_open_instant(hours_: BusinessHours, at: datetime) -> None:
    opens = hours_.next_open(at)
    if opens is None:
        assert hours_.business_seconds(at, at + timedelta(days=30)) == 0
        return
    assert opens >= at
    assert hours_.is_open(opens)
    assert hours_.business_seconds(at, opens) == 0
    assert (opens == at) == hours_.is_open(at)


@settings(max_examples=150, deadline=None)
@given(schedules(), instants)
def test_next_close_ends_the_opening(hours_: BusinessHours, at: datetime) -> None:
    closes = hours_.next_close(at)
    if closes is None:
        assert hours_.business_seconds(at, at + timedelta(days=30)) == 30 * 86400
        return
    assert closes >= at
    assert not hours_.is_open(closes)
    assert hours_.business_seconds(at, closes) == (closes - at).total_seconds()


@settings(max_examples=150, deadline=None)
@given(schedules(), instants)
def test_is_open_reads_the_wall_clock_away_from_clock_changes(
    hours_: BusinessHours, at: datetime
) -> None:
    offsets = {(at + timedelta(hours=h)).astimezone(hours_.zone).utcoffset() for h in (-26, 26)}
    if len(offsets) > 1:
        return
    local = at.astimezone(hours_.zone)
    minute = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 60e6
    in_span = any(start <= minute < end for start, end in hours_.weekly[local.weekday()])
    assert hours_.is_open(at) == (in_span and not hours_.is_closed_day(local.date()))
