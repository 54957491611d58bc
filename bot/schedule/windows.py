"""Off-peak windows: when runs in an environment may start, in the team's time zone.

A window is ``{days: [mon, …], start: "HH:MM", end: "HH:MM"}``. The day names the day the window *starts*;
an end at or before the start crosses midnight into the next day; ``"24:00"`` is the end of the day.

A moment is inside a window when the clock on the wall (team zone) reads inside it. That one definition
makes daylight saving come out right by itself: on the night the clocks go forward, a window 01:00-04:00
lasts two real hours (02:00-03:00 never appears on the wall); on the night they go back it lasts four.
An environment without windows may start at any time.

This module imports nothing from the policy (the policy imports ``Window`` from here to validate its file).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DAY_MINUTES = 24 * 60
# A window opens at most a week after any moment; two weeks also covers a window that crosses midnight.
_LOOKAHEAD_DAYS = 15


class Day(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def of(cls, day: date) -> Day:
        return list(cls)[day.weekday()]

    @property
    def label(self) -> str:
        return self.value.capitalize()


def _minutes(value: str, *, end: bool) -> int:
    if end and value == "24:00":
        return _DAY_MINUTES
    match = _CLOCK.match(value)
    if not match:
        allowed = "HH:MM from 00:00 to 24:00" if end else "HH:MM from 00:00 to 23:59"
        raise ValueError(f"{value!r} is not a time of day; expected {allowed}, such as 22:00")
    return int(match.group(1)) * 60 + int(match.group(2))


class Window(BaseModel):
    """One off-peak window of the policy file, validated like the rest of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[Day] = Field(min_length=1)
    start: str
    end: str

    @field_validator("days", mode="before")
    @classmethod
    def _lower_days(cls, value: object) -> object:
        if isinstance(value, list):
            return [item.strip().lower() if isinstance(item, str) else item for item in value]
        return value

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        _minutes(value, end=False)
        return value

    @field_validator("end")
    @classmethod
    def _end(cls, value: str) -> str:
        _minutes(value, end=True)
        return value

    @model_validator(mode="after")
    def _has_length(self) -> Window:
        if self.start_minute == self.end_minute % _DAY_MINUTES and self.end != "24:00":
            raise ValueError(
                f"a window from {self.start} to {self.end} has no length; for a whole day use 00:00 to 24:00"
            )
        if len(set(self.days)) != len(self.days):
            raise ValueError("a day is listed twice")
        return self

    @property
    def start_minute(self) -> int:
        return _minutes(self.start, end=False)

    @property
    def end_minute(self) -> int:
        return _minutes(self.end, end=True)

    @property
    def crosses_midnight(self) -> bool:
        return self.end_minute <= self.start_minute

    def span(self, day: date) -> tuple[datetime, datetime]:
        """The wall-clock (naive) opening and closing of this window when it starts on ``day``."""
        midnight = datetime.combine(day, time())
        opens = midnight + timedelta(minutes=self.start_minute)
        closes = midnight + timedelta(minutes=self.end_minute)
        if self.crosses_midnight:
            closes += timedelta(days=1)
        return opens, closes

    def describe(self) -> str:
        """``Mon-Fri 22:00-05:00`` or ``Sat, Sun 00:00-24:00``."""
        return f"{_days_label(self.days)} {self.start}-{self.end}"


def _days_label(days: Sequence[Day]) -> str:
    order = list(Day)
    indexes = sorted(order.index(day) for day in days)
    if len(indexes) > 2 and indexes == list(range(indexes[0], indexes[-1] + 1)):
        return f"{order[indexes[0]].label}-{order[indexes[-1]].label}"
    return ", ".join(order[index].label for index in indexes)


@dataclass(frozen=True)
class OffPeak:
    """The windows of one environment in the team's zone. No windows: any moment is allowed."""

    windows: tuple[Window, ...]
    zone: ZoneInfo

    @property
    def unrestricted(self) -> bool:
        return not self.windows

    def allowed(self, moment: datetime) -> bool:
        """Whether a run may start at ``moment`` (an aware datetime)."""
        if self.unrestricted:
            return True
        wall = _wall(moment, self.zone)
        for window in self.windows:
            for day in (wall.date() - timedelta(days=1), wall.date()):
                if Day.of(day) in window.days:
                    opens, closes = window.span(day)
                    if opens <= wall < closes:
                        return True
        return False

    def next_allowed_start(self, after: datetime) -> datetime:
        """The earliest moment at or after ``after`` at which a run may start (UTC)."""
        after = after.astimezone(UTC)
        if self.allowed(after):
            return after
        first = _wall(after, self.zone).date()
        openings = [
            self._instant(window.span(first + timedelta(days=offset))[0])
            for offset in range(_LOOKAHEAD_DAYS)
            for window in self.windows
            if Day.of(first + timedelta(days=offset)) in window.days
        ]
        later = [moment for moment in openings if moment > after and self.allowed(moment)]
        if not later:  # unreachable for a validated policy: every window has a day and a length
            raise ValueError("these windows never open")
        return min(later)

    def describe(self) -> str:
        if self.unrestricted:
            return "any time"
        return "; ".join(window.describe() for window in self.windows) + f" ({self.zone.key})"

    def _instant(self, wall: datetime) -> datetime:
        """The first real moment whose wall clock reads ``wall`` or later.

        For a time the clocks skip (the spring-forward gap) that is the moment the clocks jump.
        """
        earlier = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        if _wall(earlier, self.zone) == wall:
            return earlier
        # In the gap: fold=1 reads the wall with the offset after the jump, which lands before it.
        low = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        high = earlier
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if _wall(middle, self.zone) >= wall:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0)


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    # Through UTC: astimezone() to a datetime's own zone would return it unchanged, unnormalised.
    return moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None)


def off_peak(windows: Sequence[Window], zone: ZoneInfo) -> OffPeak:
    return OffPeak(tuple(windows), zone)
