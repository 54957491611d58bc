"""Typed data carried in a button's ``value`` or a modal's ``private_metadata``: validated, never hand-parsed."""

from __future__ import annotations

from datetime import timedelta
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.errors import InvalidInput


class _Meta(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def dump(self) -> str:
        return self.model_dump_json()

    @classmethod
    def load(cls, raw: str) -> Self:
        try:
            return cls.model_validate_json(raw or "{}")
        except ValidationError:
            raise InvalidInput("That button or form is from an older chaosbot; run the command again.") from None


class RunRef(_Meta):
    run: int


class HomePage(_Meta):
    """Which page of running runs an App Home button shows (0: the first)."""

    page: int = Field(0, ge=0, le=10_000)


class PlanMeta(_Meta):
    experiment: str
    channel: str | None = None
    run: int | None = None  # set when the form edits this run's plan


class StartRef(_Meta):
    """A start to issue again (the "Start anyway" button): the run and the options the person asked for.

    A rehearsal stays a rehearsal, and a shortened one stays short, whichever path re-issues the start."""

    run: int
    dry_run: bool = False
    seconds: int | None = None  # ``--for``: a shorter run than the experiment's maximum duration

    @property
    def duration(self) -> timedelta | None:
        return None if self.seconds is None else timedelta(seconds=self.seconds)

    @classmethod
    def asked(cls, run: int, *, dry_run: bool, duration: timedelta | None) -> StartRef:
        seconds = None if duration is None else max(1, int(duration.total_seconds()))
        return cls(run=run, dry_run=dry_run, seconds=seconds)


class OverrideMeta(_Meta):
    """The "Start anyway" form: which start (with its options), inside which freeze, and where to answer."""

    start: StartRef
    freeze: int
    channel: str | None = None

    @property
    def run(self) -> int:
        return self.start.run


class ItemRef(_Meta):
    item: int
