"""Typed data carried in a button's ``value`` or a modal's ``private_metadata``: validated, never hand-parsed."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError

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


class PlanMeta(_Meta):
    experiment: str
    channel: str | None = None
    run: int | None = None  # set when the form edits this run's plan


class OverrideMeta(_Meta):
    """The "Start anyway" form: which run, inside which freeze, and where to answer."""

    run: int
    freeze: int
    channel: str | None = None


class ItemRef(_Meta):
    item: int
