"""The policy's ``reporting:`` section: when summaries are posted, where, and whose public holidays skip a day.

    reporting: {monthly: "09:00", quarterly: "09:30", channel: "#reliability", country: AU, subdivision: NSW}

Times are in the team's time zone (``CHAOSBOT_TIMEZONE``).
"""

from __future__ import annotations

import re
from datetime import date, time

from pydantic import BaseModel, ConfigDict, field_serializer, field_validator, model_validator

from bot.reports import public_holidays

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class Reporting(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    monthly: time = time(9, 0)
    quarterly: time = time(9, 30)
    channel: str | None = None  # None: the bot's own channel
    country: str = "AU"
    subdivision: str | None = "NSW"

    @field_validator("monthly", "quarterly", mode="before")
    @classmethod
    def _clock(cls, value: object) -> time:
        if isinstance(value, time):
            return value
        match = _CLOCK.match(str(value).strip())
        if not match:
            raise ValueError(f'expected a time of day such as "09:00", got {value!r}')
        return time(int(match.group(1)), int(match.group(2)))

    @field_serializer("monthly", "quarterly")
    def _hhmm(self, value: time) -> str:
        return value.strftime("%H:%M")

    @model_validator(mode="after")
    def _known_calendar(self) -> Reporting:
        try:
            known = public_holidays.subdivisions(self.country)
        except public_holidays.HolidayLookupError as error:
            raise ValueError(str(error)) from error
        if known is None:
            raise ValueError(f"the holidays package has no calendar for country {self.country!r}")
        if self.subdivision is not None and self.subdivision not in known:
            raise ValueError(
                f"{self.country} has no subdivision {self.subdivision!r} (known: {', '.join(known) or 'none'})"
            )
        return self

    def holidays_in(self, year: int) -> frozenset[date]:
        """The team's public holidays in this calendar year."""
        return public_holidays.holidays_in(self.country, self.subdivision, year)
