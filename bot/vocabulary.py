"""How chaosbot says durations, moments and run ids, everywhere: one place, so they never disagree."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h)\s*$")
_RUN_ID = re.compile(r"^(?:RUN-?)?(\d{1,9})$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(value: Any) -> timedelta:
    """Seconds as an int, or a string like ``90s``, ``5m``, ``2h``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        amount, unit = int(match.group(1)), match.group(2)
        if amount > 0:
            return timedelta(seconds=amount * _UNIT_SECONDS[unit])
    raise ValueError("expected a positive duration such as 300, '90s', '5m' or '2h'")


def format_duration(delta: timedelta | float) -> str:
    """``5m 00s`` or ``45s``: how a duration is shown to people (seconds may be given as a number)."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else delta
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def format_seconds(seconds: float) -> str:
    """A measured time such as a recovery: ``12.3 s``."""
    return f"{seconds:.1f} s"


def format_local(moment: datetime, zone: ZoneInfo) -> str:
    """A moment in the team's time zone: ``Wed 02 Dec 2026 14:05 AEDT``."""
    return moment.astimezone(zone).strftime("%a %d %b %Y %H:%M %Z")


def run_label(run_id: int) -> str:
    return f"RUN-{run_id}"


def parse_run_label(text: str) -> int | None:
    """``RUN-42``, ``run42`` or ``42`` → 42; None when it is not a run id."""
    match = _RUN_ID.match(text.strip())
    return int(match.group(1)) if match else None
