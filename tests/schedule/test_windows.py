"""Off-peak windows in the team's zone: midnight crossings, 24:00, daylight saving in Sydney, policy validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from bot.policy.models import Policy
from bot.policy.service import load_policy
from bot.schedule.windows import OffPeak, Window, off_peak
from tests.schedule.factories import SYDNEY

WEEKNIGHTS = Window(days=["mon", "tue", "wed", "thu", "fri"], start="22:00", end="05:00")
WEEKENDS = Window(days=["sat", "sun"], start="00:00", end="24:00")
PRODUCTION = off_peak([WEEKNIGHTS, WEEKENDS], SYDNEY)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SYDNEY)


def window(**raw: Any) -> OffPeak:
    return off_peak([Window.model_validate(raw)], SYDNEY)


def allowed_minutes(windows: OffPeak, start: datetime, end: datetime) -> int:
    """How many real minutes between two instants a run may start in."""
    minutes, moment = 0, start.astimezone(UTC)
    while moment < end:
        minutes += windows.allowed(moment)
        moment += timedelta(minutes=1)
    return minutes


def test_a_weeknight_window_crosses_midnight_and_belongs_to_the_day_it_starts() -> None:
    # Wed 2 Dec 2026
    assert not PRODUCTION.allowed(local(2026, 12, 2, 14, 0))
    assert PRODUCTION.allowed(local(2026, 12, 2, 22, 0))
    assert PRODUCTION.allowed(local(2026, 12, 3, 4, 59))
    assert not PRODUCTION.allowed(local(2026, 12, 3, 5, 0))
    # Monday 04:00 is in no window: Sunday's window is the whole day and ends at 24:00, Monday's opens at 22:00.
    assert not PRODUCTION.allowed(local(2026, 12, 7, 4, 0))
    # Saturday 03:00 is still Friday night's window (and the weekend's).
    assert PRODUCTION.allowed(local(2026, 12, 5, 3, 0))


def test_the_day_names_the_start_of_a_window_that_crosses_midnight() -> None:
    friday_night = window(days=["fri"], start="22:00", end="05:00")
    assert friday_night.allowed(local(2026, 12, 5, 2, 0))  # Saturday 02:00
    assert not friday_night.allowed(local(2026, 12, 4, 2, 0))  # Friday 02:00


def test_24_00_ends_the_day_and_the_end_is_exclusive() -> None:
    evening = window(days=["wed"], start="18:00", end="24:00")
    assert evening.allowed(local(2026, 12, 2, 23, 59))
    assert not evening.allowed(local(2026, 12, 3, 0, 0))
    assert not evening.allowed(local(2026, 12, 2, 17, 59))


def test_next_allowed_start_names_the_next_opening() -> None:
    assert PRODUCTION.next_allowed_start(local(2026, 12, 2, 14, 0)) == local(2026, 12, 2, 22, 0)
    # Inside a window: now.
    inside = local(2026, 12, 3, 1, 0)
    assert PRODUCTION.next_allowed_start(inside) == inside
    # Monday morning after the weekend: Monday 22:00.
    assert PRODUCTION.next_allowed_start(local(2026, 12, 7, 6, 0)) == local(2026, 12, 7, 22, 0)
    # Friday afternoon: Friday 22:00 (the weekend follows seamlessly).
    assert PRODUCTION.next_allowed_start(local(2026, 12, 4, 12, 0)) == local(2026, 12, 4, 22, 0)


def test_an_environment_without_windows_may_start_any_time() -> None:
    anytime = off_peak([], SYDNEY)
    moment = local(2026, 12, 2, 14, 7)
    assert anytime.allowed(moment)
    assert anytime.next_allowed_start(moment) == moment
    assert anytime.describe() == "any time"


def test_spring_forward_in_sydney_shortens_a_night_window_by_the_skipped_hour() -> None:
    # Sun 4 Oct 2026: at 02:00 AEST the clocks jump to 03:00 AEDT.
    night = window(days=["sun"], start="01:00", end="04:00")
    assert allowed_minutes(night, local(2026, 10, 4, 0, 0), local(2026, 10, 4, 6, 0)) == 120
    assert night.allowed(datetime(2026, 10, 3, 15, 30, tzinfo=UTC))  # 01:30 AEST
    assert night.allowed(datetime(2026, 10, 3, 16, 30, tzinfo=UTC))  # 03:30 AEDT
    assert not night.allowed(datetime(2026, 10, 3, 17, 0, tzinfo=UTC))  # 04:00 AEDT


def test_a_window_opening_inside_the_skipped_hour_opens_when_the_clocks_jump() -> None:
    skipped = window(days=["sun"], start="02:30", end="06:00")
    opens = skipped.next_allowed_start(local(2026, 10, 3, 12, 0))
    assert opens == datetime(2026, 10, 3, 16, 0, tzinfo=UTC)  # 03:00 AEDT, the first moment past 02:30 on the wall
    assert opens.astimezone(SYDNEY).strftime("%H:%M %Z") == "03:00 AEDT"


def test_fall_back_in_sydney_lengthens_a_night_window_by_the_repeated_hour() -> None:
    # Sun 5 Apr 2026: at 03:00 AEDT the clocks go back to 02:00 AEST; 02:00-03:00 happens twice.
    night = window(days=["sun"], start="01:00", end="04:00")
    assert allowed_minutes(night, local(2026, 4, 5, 0, 0), local(2026, 4, 5, 6, 0)) == 240
    repeated = window(days=["sun"], start="02:30", end="05:00")
    # Opens at the first 02:30 (AEDT), and is still open at the second (AEST).
    assert repeated.next_allowed_start(local(2026, 4, 4, 12, 0)) == datetime(2026, 4, 4, 15, 30, tzinfo=UTC)
    assert repeated.allowed(datetime(2026, 4, 4, 16, 30, tzinfo=UTC))


def test_a_window_crossing_midnight_on_the_night_the_clocks_change() -> None:
    saturday_night = window(days=["sat"], start="22:00", end="05:00")
    # Spring forward: Sat 3 Oct 22:00 AEST to Sun 4 Oct 05:00 AEDT is six real hours, not seven.
    assert allowed_minutes(saturday_night, local(2026, 10, 3, 20, 0), local(2026, 10, 4, 8, 0)) == 6 * 60
    # Fall back: Sat 4 Apr 22:00 AEDT to Sun 5 Apr 05:00 AEST is eight.
    assert allowed_minutes(saturday_night, local(2026, 4, 4, 20, 0), local(2026, 4, 5, 8, 0)) == 8 * 60


def test_windows_describe_themselves_for_people() -> None:
    assert PRODUCTION.describe() == "Mon-Fri 22:00-05:00; Sat, Sun 00:00-24:00 (Australia/Sydney)"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"days": ["mon"], "start": "25:00", "end": "05:00"}, "'25:00' is not a time of day"),
        ({"days": ["mon"], "start": "22:00", "end": "5:00"}, "'5:00' is not a time of day"),
        ({"days": ["mon"], "start": "24:00", "end": "05:00"}, "from 00:00 to 23:59"),
        ({"days": ["mon"], "start": "22:00", "end": "22:00"}, "has no length"),
        ({"days": ["monday"], "start": "22:00", "end": "05:00"}, "days.0"),
        ({"days": [], "start": "22:00", "end": "05:00"}, "days"),
        ({"days": ["mon", "mon"], "start": "22:00", "end": "05:00"}, "a day is listed twice"),
        ({"days": ["mon"], "start": "22:00"}, "end"),
    ],
)
def test_a_bad_window_in_the_policy_is_refused_with_the_rule(raw: dict[str, Any], problem: str) -> None:
    base = load_policy().model_dump(mode="json")
    base["environments"]["production"]["windows"] = [raw]
    with pytest.raises(ValidationError) as caught:
        Policy.model_validate(base)
    assert problem in str(caught.value)


def test_the_demo_policy_keeps_staging_open_and_production_off_peak() -> None:
    policy = load_policy()
    assert policy.environments["staging"].windows == []
    assert [w.describe() for w in policy.environments["production"].windows] == [
        "Mon-Fri 22:00-05:00",
        "Sat, Sun 00:00-24:00",
    ]
    assert policy.notice == timedelta(minutes=15)


def test_notice_and_calendars_are_validated_like_the_rest() -> None:
    base = load_policy().model_dump(mode="json")
    with pytest.raises(ValidationError, match="notice"):
        Policy.model_validate({**base, "notice": "soon"})
    with pytest.raises(ValidationError, match="at most once a minute"):
        Policy.model_validate({**base, "freeze_calendars": [{"url": "${DELIVERIES_ICAL_URL}", "poll": "10s"}]})
    with pytest.raises(ValidationError, match="http"):
        Policy.model_validate({**base, "freeze_calendars": [{"url": "ftp://example.org/x.ics"}]})
    policy = Policy.model_validate({**base, "notice": "30m", "freeze_calendars": [{"url": "${DELIVERIES_ICAL_URL}"}]})
    assert policy.notice == timedelta(minutes=30)
    assert policy.freeze_calendars[0].label == "DELIVERIES_ICAL_URL"
    assert policy.freeze_calendars[0].poll == timedelta(minutes=5)
