from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from bot.policy.models import Policy
from bot.policy.service import load_policy
from bot.reports.config import Reporting
from bot.reports.periods import Period
from bot.reports.schedule import due_summaries, first_working_day, next_posting, posting_moment
from tests.reports.seed import SYDNEY, local

NSW = Reporting()  # 09:00 monthly, 09:30 quarterly, AU-NSW


def test_a_month_starting_on_a_weekend_posts_on_monday() -> None:
    assert date(2026, 11, 1).weekday() == 6  # Sunday
    assert first_working_day(2026, 11, NSW) == date(2026, 11, 2)
    assert posting_moment(Period.month(2026, 10), NSW, SYDNEY) == local(2026, 11, 2, 9, 0)


def test_a_month_starting_on_a_public_holiday_posts_on_the_next_working_day() -> None:
    # Friday 1 January 2027 is New Year's Day; then a weekend.
    assert date(2027, 1, 1).weekday() == 4
    assert first_working_day(2027, 1, NSW) == date(2027, 1, 4)


def test_the_holidays_are_those_of_the_configured_subdivision() -> None:
    # Monday 1 June 2026 is Western Australia Day: a working day in NSW, a holiday in WA.
    assert first_working_day(2026, 6, NSW) == date(2026, 6, 1)
    assert first_working_day(2026, 6, Reporting(country="AU", subdivision="WA")) == date(2026, 6, 2)


def test_holidays_are_looked_up_without_loading_every_calendar_into_the_server() -> None:
    # The holidays package imports all ~300 country modules (11 MB) on first use: a child process does it.
    probe = (
        "import sys; from bot.reports.config import Reporting; from bot.reports.schedule import first_working_day;"
        "assert first_working_day(2027, 1, Reporting()).isoformat() == '2027-01-04';"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'holidays'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_the_quarter_is_posted_on_the_quarters_first_working_day_at_its_own_time() -> None:
    assert posting_moment(Period.quarter(2026, 4), NSW, SYDNEY) == local(2027, 1, 4, 9, 30)
    assert posting_moment(Period.month(2026, 12), NSW, SYDNEY) == local(2027, 1, 4, 9, 0)


def test_due_summaries_after_the_new_year() -> None:
    assert due_summaries(local(2027, 1, 4, 8, 59), NSW, SYDNEY) == []
    assert [(d.kind, d.key) for d in due_summaries(local(2027, 1, 4, 9, 0), NSW, SYDNEY)] == [
        ("summary.monthly", "2026-12")
    ]
    both = due_summaries(local(2027, 1, 4, 9, 45), NSW, SYDNEY)
    assert [(d.kind, d.key, d.period) for d in both] == [
        ("summary.monthly", "2026-12", Period.month(2026, 12)),
        ("summary.quarterly", "2026-Q4", Period.quarter(2026, 4)),
    ]


def test_a_bot_that_was_down_still_gets_the_summary_within_the_catch_up_window() -> None:
    back = local(2027, 1, 6, 15, 0)
    assert {d.key for d in due_summaries(back, NSW, SYDNEY)} == {"2026-12", "2026-Q4"}
    assert due_summaries(local(2027, 1, 4, 9, 0) + timedelta(days=8), NSW, SYDNEY) == []


def test_the_next_posting() -> None:
    upcoming = next_posting(datetime(2026, 12, 2, 3, 0, tzinfo=UTC), NSW, SYDNEY)
    assert (upcoming.key, upcoming.due_at) == ("2026-12", local(2027, 1, 4, 9, 0))


def test_reporting_in_the_policy_is_validated() -> None:
    base = load_policy().model_dump(mode="json")
    policy = Policy.model_validate({**base, "reporting": {"monthly": "08:15", "channel": "#reliability"}})
    assert policy.reporting.monthly.strftime("%H:%M") == "08:15" and policy.reporting.subdivision == "NSW"
    assert load_policy().reporting == Reporting()
    for bad, says in [
        ({"monthly": "9am"}, 'expected a time of day such as "09:00"'),
        ({"country": "XX"}, "no calendar for country 'XX'"),
        ({"subdivision": "ZZZ"}, "AU has no subdivision 'ZZZ'"),
        ({"weekly": "09:00"}, "Extra inputs are not permitted"),
    ]:
        with pytest.raises(ValidationError) as caught:
            Policy.model_validate({**base, "reporting": bad})
        assert says in str(caught.value)
