"""When summaries are posted: the first working day of a month, at the configured time in the team's zone.

A month's summary is posted on the first working day of the next month (``reporting.monthly``); a quarter's
on the first working day of the next quarter (``reporting.quarterly``). Weekends and the team's public
holidays (``reporting.country`` / ``subdivision``, through the ``holidays`` package) are skipped.

``due_summaries(now)`` lists what should have been posted by now and not long ago; the runtime claims each
``(kind, key)`` once across replicas (``bot.schedule.firings``), so a summary is posted once. If the bot was
down at the posting moment, it is posted when the bot comes back, within ``catch_up``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.reports.config import Reporting
from bot.reports.periods import Period, PeriodKind

CATCH_UP = timedelta(days=7)
FIRING_KINDS = {PeriodKind.MONTH: "summary.monthly", PeriodKind.QUARTER: "summary.quarterly"}
SATURDAY = 5


@dataclass(frozen=True)
class DueSummary:
    kind: str  # the firing's kind: "summary.monthly" | "summary.quarterly"
    key: str  # the firing's key: the period, "2026-11" | "2026-Q4"
    period: Period
    due_at: datetime  # UTC


def first_working_day(year: int, month: int, reporting: Reporting) -> date:
    """The first day of the month that is neither a weekend day nor a public holiday of the team."""
    holidays = reporting.holidays_in(year)
    day = date(year, month, 1)
    while day.weekday() >= SATURDAY or day in holidays:
        day += timedelta(days=1)
    return day


def posting_moment(period: Period, reporting: Reporting, zone: ZoneInfo) -> datetime:
    """When the summary of ``period`` is posted (UTC): the first working day after it, at the configured time."""
    year, month = period.next().first_month
    at: time = reporting.monthly if period.kind is PeriodKind.MONTH else reporting.quarterly
    day = first_working_day(year, month, reporting)
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def due_summaries(
    now: datetime, reporting: Reporting, zone: ZoneInfo, *, catch_up: timedelta = CATCH_UP
) -> list[DueSummary]:
    """The summaries whose posting moment has passed, at most ``catch_up`` ago: (kind, key, period, due_at)."""
    due = []
    for kind, name in FIRING_KINDS.items():
        current = Period.containing(now, zone, kind)
        for period in (current.previous().previous(), current.previous()):
            moment = posting_moment(period, reporting, zone)
            if moment <= now < moment + catch_up:
                due.append(DueSummary(kind=name, key=period.label, period=period, due_at=moment))
    return due


def next_posting(now: datetime, reporting: Reporting, zone: ZoneInfo) -> DueSummary:
    """The next summary to be posted after ``now`` (for ``/chaos status`` and the scheduler's wake-up)."""
    upcoming = []
    for kind, name in FIRING_KINDS.items():
        period = Period.containing(now, zone, kind).previous()
        while (moment := posting_moment(period, reporting, zone)) <= now:
            period = period.next()
        upcoming.append(DueSummary(kind=name, key=period.label, period=period, due_at=moment))
    return min(upcoming, key=lambda summary: (summary.due_at, summary.kind))
