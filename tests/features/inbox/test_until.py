"""``snooze until`` times: a time alone, a date, ``tomorrow`` and weekday names, a day without a
time at the team's opening (09:00 without hours or on a closed day), wall-clock times across
the changes to and from summer time in Europe/Berlin, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.features.inbox.hours import parse_business_hours
from bridge.features.inbox.until import parse_until
from tests.features.inbox.test_hours import BERLIN

NOON_UTC = datetime(2026, 12, 7, 12, tzinfo=UTC)  # a Monday, 13:00 in Berlin
HOURS = parse_business_hours(
    {
        "timezone": "Europe/Berlin",
        "weekly": {"mon-fri": "08:30-17:00", "sat": "10:00-14:00"},
        "holidays": {"dates": ["2026-12-14"]},  # a Monday
    },
    "features.inbox.teams.x.hours",
)


def berlin(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["14:00"], berlin(12, 7, 14)),
        (["12:59"], berlin(12, 8, 12, 59)),  # passed: tomorrow
        (["2026-12-24", "09:00"], berlin(12, 24, 9)),
        (["2026-12-24"], berlin(12, 24, 9)),  # no hours: 09:00
        (["tomorrow"], berlin(12, 8, 9)),
        (["Tomorrow", "07:15"], berlin(12, 8, 7, 15)),
        (["today", "18:00"], berlin(12, 7, 18)),
        (["wednesday"], berlin(12, 9, 9)),
        (["fri", "16:30"], berlin(12, 11, 16, 30)),
        (["monday"], berlin(12, 14, 9)),  # on a Monday: the next one
        (["MON", "08:00"], berlin(12, 14, 8)),
        (["sunday", "23:59"], berlin(12, 13, 23, 59)),
    ],
)
def test_times(words: list[str], expected: datetime) -> None:
    assert parse_until(words, NOON_UTC, BERLIN) == expected


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["tomorrow"], berlin(12, 8, 8, 30)),  # the opening
        (["saturday"], berlin(12, 12, 10)),
        (["sunday"], berlin(12, 13, 9)),  # closed: 09:00
        (["monday"], berlin(12, 14, 9)),  # a holiday: 09:00
        (["2026-12-15"], berlin(12, 15, 8, 30)),
        (["tuesday", "07:00"], berlin(12, 8, 7)),  # a time given: that time
    ],
)
def test_a_day_alone_is_the_teams_opening(words: list[str], expected: datetime) -> None:
    assert parse_until(words, NOON_UTC, BERLIN, HOURS) == expected


def test_wall_clock_across_summer_time() -> None:
    friday = datetime(2027, 3, 26, 12, tzinfo=UTC)  # summer time begins on Sunday the 28th
    monday = parse_until(["monday"], friday, BERLIN)
    assert monday == datetime(2027, 3, 29, 7, tzinfo=UTC)  # 09:00 CEST, not 08:00 CEST
    assert monday == berlin(3, 29, 9, year=2027)
    assert parse_until(["monday"], friday, BERLIN, HOURS) == datetime(
        2027, 3, 29, 6, 30, tzinfo=UTC
    )
    # 02:30 does not exist that Sunday: the clocks jump from 02:00 to 03:00.
    assert parse_until(["sunday", "02:30"], friday, BERLIN) == datetime(2027, 3, 28, 1, tzinfo=UTC)
    saturday = datetime(2027, 10, 30, 12, tzinfo=UTC)  # back to winter time on Sunday the 31st
    assert parse_until(["tomorrow"], saturday, BERLIN) == datetime(2027, 10, 31, 8, tzinfo=UTC)
    # 02:30 happens twice that Sunday: the first one (still summer time) is meant.
    assert parse_until(["tomorrow", "02:30"], saturday, BERLIN) == datetime(
        2027, 10, 31, 0, 30, tzinfo=UTC
    )
    assert parse_until(["2027-10-31", "02:30"], saturday, BERLIN) == datetime(
        2027, 10, 31, 0, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "words",
    [
        [],
        ["2026-12-07", "12:00"],  # in the past
        ["today", "12:00"],
        ["2026-12-07"],  # today's 09:00 has passed
        ["9"],
        ["09:00:30"],
        ["25:00"],
        ["2026-13-01", "09:00"],
        ["2026-02-30"],
        ["someday"],
        ["monday", "9"],
        ["monday", "09:00", "sharp"],
        ["09:00", "monday"],
        ["tomorrow", "24:00"],
        ["next", "monday"],
        ["٠٩:٠٠"],  # digits, but not ASCII ones
    ],
)
def test_refused(words: list[str]) -> None:
    assert parse_until(words, NOON_UTC, BERLIN) is None
