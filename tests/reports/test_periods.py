from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.errors import InvalidInput
from bot.reports.periods import Period, PeriodKind, parse_period
from tests.reports.seed import SYDNEY


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11", Period.month(2026, 11)),
        (" 2026-1 ", Period.month(2026, 1)),
        ("2026-Q4", Period.quarter(2026, 4)),
        ("2026-q1", Period.quarter(2026, 1)),
        ("2026Q2", Period.quarter(2026, 2)),
    ],
)
def test_periods_people_type(text: str, expected: Period) -> None:
    assert parse_period(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-13", "a month is 01 to 12"),
        ("2026-00", "a month is 01 to 12"),
        ("2026-Q5", "a quarter is Q1 to Q4"),
        ("November", "use YYYY-MM (such as 2026-11) or YYYY-Qn (such as 2026-Q4)"),
        ("", "is not a period"),
    ],
)
def test_a_bad_period_says_what_is_expected(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_period(text)
    assert says in caught.value.message
    assert caught.value.field == "period"


def test_bounds_are_midnight_in_the_team_zone_across_daylight_saving() -> None:
    # Sydney moves to daylight time on 4 Oct 2026: the quarter starts at +10:00 and ends at +11:00.
    quarter = parse_period("2026-Q4")
    assert quarter.start(SYDNEY) == datetime(2026, 9, 30, 14, tzinfo=UTC)
    assert quarter.end(SYDNEY) == datetime(2026, 12, 31, 13, tzinfo=UTC)
    assert [month.label for month in quarter.months()] == ["2026-10", "2026-11", "2026-12"]


def test_neighbours_wrap_around_the_year() -> None:
    assert parse_period("2026-12").next() == Period.month(2027, 1)
    assert parse_period("2027-01").previous() == Period.month(2026, 12)
    assert parse_period("2026-Q4").next() == Period.quarter(2027, 1)
    assert parse_period("2027-Q1").previous() == Period.quarter(2026, 4)


def test_the_period_containing_a_moment_is_read_in_the_team_zone() -> None:
    moment = datetime(2026, 12, 31, 13, 30, tzinfo=UTC)  # already 1 Jan 2027 in Sydney
    assert Period.containing(moment, SYDNEY) == Period.month(2027, 1)
    assert Period.containing(moment, SYDNEY, PeriodKind.QUARTER) == Period.quarter(2027, 1)
    assert Period.month(2027, 1).title == "January 2027" and Period.quarter(2027, 1).title == "Q1 2027"
