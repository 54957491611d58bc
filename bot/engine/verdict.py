"""The verdict on a run's hypothesis, from the recovery measured after the revert (part of how a run ends,
``endings``; worded by ``wording.verdict``)."""

from __future__ import annotations

from datetime import timedelta
from enum import Enum


class Verdict(Enum):
    """What the recovery measured says about the hypothesis (``held``: None when it was not tested)."""

    NOT_WATCHED = "not watched"  # no stop conditions, so recovery was not measured
    NOT_EVALUATED = "not evaluated"  # a rehearsal whose stop conditions could not be evaluated
    NOT_SAMPLED = "not sampled"  # no sample was taken while the fault was on
    NEVER_CAME_BACK = "never came back"
    OVER_RTO = "over the RTO"
    WITHIN_RTO = "within the RTO"

    @property
    def held(self) -> bool | None:
        if self is Verdict.WITHIN_RTO:
            return True
        if self in (Verdict.NEVER_CAME_BACK, Verdict.OVER_RTO):
            return False
        return None


def verdict_of(
    rto: timedelta, recovery_seconds: float | None, *, watched: bool, evaluated: bool, sampled: bool = True
) -> Verdict:
    if not watched:
        return Verdict.NOT_WATCHED
    if not evaluated:
        return Verdict.NOT_EVALUATED
    if not sampled:
        return Verdict.NOT_SAMPLED
    if recovery_seconds is None:
        return Verdict.NEVER_CAME_BACK
    return Verdict.WITHIN_RTO if recovery_seconds <= rto.total_seconds() else Verdict.OVER_RTO
