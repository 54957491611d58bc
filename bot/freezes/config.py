"""The policy's ``freeze_calendars`` entries. No imports from the policy (it imports this to validate)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.vocabulary import parse_duration

_ONLY_VARIABLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
MIN_POLL = timedelta(minutes=1)


class FreezeCalendar(BaseModel):
    """An iCalendar feed whose every event is a freeze of all environments.

    ``url`` usually holds a ``${VAR}`` reference: the secret URL is read from the environment at fetch
    time only. The database and the logs know the feed by ``label`` (its ``name``, the variable's name,
    or a hash of the URL as written), never by the URL.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1)
    poll: timedelta = Field(default=timedelta(minutes=5))
    name: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("poll", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        poll = parse_duration(value)
        if poll < MIN_POLL:
            raise ValueError("poll a calendar at most once a minute (poll: 1m or more)")
        return poll

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not (_ONLY_VARIABLE.match(value) or value.startswith(("http://", "https://", "${"))):
            raise ValueError("expected an http(s) URL or a ${VARIABLE} holding one")
        return value

    @property
    def key(self) -> str:
        """A stable identity for the feed's cached rows: a hash of the URL as written (with ``${VAR}``)."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        variable = _ONLY_VARIABLE.match(self.url)
        return variable.group(1) if variable else f"calendar {self.key[:8]}"
