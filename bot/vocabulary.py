"""How chaosbot says durations, moments, dates and run ids, everywhere: one place, so they never disagree.

Moments are shown in the team's time zone; each shape below is used by every surface that shows it.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_RUN_ID = re.compile(r"^(?:RUN-?)?(\d{1,9})$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _span(text: str, units: str) -> timedelta | None:
    match = _DURATION.match(text)
    if match is None or match.group(2) not in units or int(match.group(1)) <= 0:
        return None
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_duration(value: Any) -> timedelta:
    """How long something lasts: seconds as an int, or a string like ``90s``, ``5m``, ``2h``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    if isinstance(value, str) and (span := _span(value, "smh")) is not None:
        return span
    raise ValueError("expected a positive duration such as 300, '90s', '5m' or '2h'")


def parse_offset(text: str) -> timedelta:
    """How far from now, as a person types it: the same grammar as ``parse_duration``, days too (``1d``)."""
    span = _span(text, "smhd")
    if span is None:
        raise ValueError("expected a time from now such as '30m', '2h' or '1d'")
    return span


def format_duration(delta: timedelta | float) -> str:
    """``5m 00s`` or ``45s``: how a duration is shown to people (seconds may be given as a number)."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else delta
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def format_seconds(seconds: float) -> str:
    """A measured time such as a recovery: ``12.3 s``."""
    return f"{seconds:.1f} s"


def format_elapsed(seconds: float) -> str:
    """How long a short step took: ``340 ms`` under a second, else ``12.3 s``."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else format_seconds(seconds)


def format_local(moment: datetime, zone: ZoneInfo, *, year: bool = True) -> str:
    """A moment in the team's time zone: ``Wed 02 Dec 2026 14:05 AEDT`` (``Wed 02 Dec 14:05 AEDT`` without
    the year, inside a sentence about the same days)."""
    return moment.astimezone(zone).strftime("%a %d %b %Y %H:%M %Z" if year else "%a %d %b %H:%M %Z")


def format_day(moment: datetime, zone: ZoneInfo) -> str:
    """The local day of a moment: ``Wed 02 Dec 2026`` (a timeline's day heading)."""
    return moment.astimezone(zone).strftime("%a %d %b %Y")


def format_clock(moment: datetime, zone: ZoneInfo) -> str:
    """The local time of day to the second: ``14:05:09`` (a timeline's entries, under their day)."""
    return moment.astimezone(zone).strftime("%H:%M:%S")


def format_time(moment: datetime, zone: ZoneInfo) -> str:
    """The local time of day with its zone: ``14:05:09 AEDT``."""
    return moment.astimezone(zone).strftime("%H:%M:%S %Z")


def zone_abbreviation(moment: datetime, zone: ZoneInfo) -> str:
    """The zone's name at that moment: ``AEDT`` in summer, ``AEST`` in winter."""
    return moment.astimezone(zone).strftime("%Z")


def format_date(day: date, *, weekday: bool = False) -> str:
    """A calendar date such as a due date: ``02 Dec 2026`` (``Wed 02 Dec 2026`` with the weekday)."""
    return day.strftime("%a %d %b %Y" if weekday else "%d %b %Y")


def format_entered(moment: datetime, zone: ZoneInfo) -> str:
    """A moment as a person types it into a form in the console: ``2026-12-02 14:05 AEDT``."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def run_label(run_id: int) -> str:
    return f"RUN-{run_id}"


def parse_run_label(text: str) -> int | None:
    """``RUN-42``, ``run42`` or ``42`` → 42; None when it is not a run id."""
    match = _RUN_ID.match(text.strip())
    return int(match.group(1)) if match else None
