"""Reporting periods: a month (``2026-11``) or a quarter (``2026-Q4``), bounded in the team's time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.errors import InvalidInput

_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_QUARTER = re.compile(r"^(\d{4})-?[Qq](\d)$")
FORMS = "YYYY-MM (such as 2026-11) or YYYY-Qn (such as 2026-Q4)"


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"


@dataclass(frozen=True, order=True)
class Period:
    kind: PeriodKind
    year: int
    number: int  # the month (1-12) or the quarter (1-4)

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        return cls(PeriodKind.MONTH, year, month)

    @classmethod
    def quarter(cls, year: int, quarter: int) -> Period:
        return cls(PeriodKind.QUARTER, year, quarter)

    @classmethod
    def containing(cls, moment: datetime, zone: ZoneInfo, kind: PeriodKind = PeriodKind.MONTH) -> Period:
        local = moment.astimezone(zone)
        if kind is PeriodKind.MONTH:
            return cls.month(local.year, local.month)
        return cls.quarter(local.year, (local.month - 1) // 3 + 1)

    @property
    def label(self) -> str:
        return f"{self.year}-{self.number:02d}" if self.kind is PeriodKind.MONTH else f"{self.year}-Q{self.number}"

    @property
    def title(self) -> str:
        if self.kind is PeriodKind.MONTH:
            return datetime(self.year, self.number, 1).strftime("%B %Y")
        return f"Q{self.number} {self.year}"

    @property
    def first_month(self) -> tuple[int, int]:
        return (self.year, self.number) if self.kind is PeriodKind.MONTH else (self.year, 3 * self.number - 2)

    def months(self) -> list[Period]:
        """The months it covers: itself, or the quarter's three."""
        if self.kind is PeriodKind.MONTH:
            return [self]
        year, first = self.first_month
        return [Period.month(year, first + offset) for offset in range(3)]

    def next(self) -> Period:
        size = 12 if self.kind is PeriodKind.MONTH else 4
        return Period(self.kind, self.year + self.number // size, self.number % size + 1)

    def previous(self) -> Period:
        size = 12 if self.kind is PeriodKind.MONTH else 4
        if self.number == 1:
            return Period(self.kind, self.year - 1, size)
        return Period(self.kind, self.year, self.number - 1)

    def start(self, zone: ZoneInfo) -> datetime:
        """The first instant, in UTC: midnight at the start of the first day in the team's zone."""
        year, month = self.first_month
        return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)

    def end(self, zone: ZoneInfo) -> datetime:
        """The first instant after the period, in UTC."""
        return self.next().start(zone)

    def __str__(self) -> str:
        return self.label


def parse_period(text: str) -> Period:
    """``YYYY-MM`` or ``YYYY-Qn``; ``InvalidInput`` saying what is expected otherwise."""
    value = text.strip()
    if match := _MONTH.match(value):
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise InvalidInput(f"{value!r}: a month is 01 to 12.", field="period")
        return Period.month(year, month)
    if match := _QUARTER.match(value):
        year, quarter = int(match.group(1)), int(match.group(2))
        if not 1 <= quarter <= 4:
            raise InvalidInput(f"{value!r}: a quarter is Q1 to Q4.", field="period")
        return Period.quarter(year, quarter)
    raise InvalidInput(f"{value!r} is not a period; use {FORMS}.", field="period")
