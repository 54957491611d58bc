"""The start gate: may this run start now, as far as off-peak windows and delivery freezes go?

The kill switch and preflight stay where they are (``RunTransitions.begin``, the engine). A person's Start and
the scheduler's automatic start both ask ``StartGate.refusal``; every plan and edit asks ``window_error``
(through ``PlanRules.check_window``).
Windows are checked first: overriding a freeze would not help a run outside its window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.errors import DomainError
from bot.freezes.models import Freeze
from bot.freezes.service import Freezes, describe
from bot.policy.models import Policy
from bot.runs.models import Run
from bot.schedule.windows import OffPeak, off_peak
from bot.vocabulary import format_local
from bot.words import Words


class Rule(StrEnum):
    WINDOW = "window"
    FREEZE = "freeze"


@dataclass(frozen=True)
class Refusal:
    """Why a run may not start now, and what would let it.

    ``overridable``: an approver may start anyway with a reason (freezes yes, windows no); then ``freeze``
    is the freeze to name in the "Start anyway" form and to pass back as ``overriding``.
    """

    rule: Rule
    words: Words
    overridable: bool
    freeze: Freeze | None = None
    next_start: datetime | None = None

    def __str__(self) -> str:
        return str(self.words)


class StartRefused(DomainError):
    """A start refused by a window or a freeze; ``refusal`` tells the interface whether to offer "Start anyway"."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.words)
        self.refusal = refusal


class StartGate:
    """Windows and freezes for starts: ``RunTransitions.may_start`` calls ``check``, ``PlanRules`` ``window_error``."""

    def __init__(self, policy: Policy, freezes: Freezes, *, zone: ZoneInfo) -> None:
        self.policy = policy
        self.freezes = freezes
        self.zone = zone

    def off_peak(self, environment: str) -> OffPeak:
        rules = self.policy.environments.get(environment)
        return off_peak(rules.windows if rules else [], self.zone)

    def refusal(self, run: Run, now: datetime, *, overriding: int | None = None) -> Refusal | None:
        """None when ``run`` may start at ``now``; otherwise the rule that refuses, in words for people.

        ``overriding`` is the id of a freeze an approver chose to start inside (with a recorded reason);
        another freeze covering the same moment still refuses.
        """
        window = self._window_refusal(run, now)
        if window is not None:
            return window
        for freeze in self.freezes.covering(run.environment, now):
            if freeze.id != overriding:
                return Refusal(
                    rule=Rule.FREEZE,
                    words=Words.of(
                        f"{run.label} may not start now: a delivery freeze holds in {run.environment} (",
                        describe(freeze, self.zone),
                        f"). It can start after {format_local(freeze.ends_at, self.zone)}, "
                        "or an approver can start it anyway, giving a reason.",
                    ),
                    overridable=True,
                    freeze=freeze,
                    next_start=freeze.ends_at,
                )
        return None

    def check(self, run: Run, now: datetime, *, overriding: int | None = None) -> None:
        """Raise ``StartRefused`` unless ``run`` may start at ``now`` (see ``refusal``)."""
        refusal = self.refusal(run, now, overriding=overriding)
        if refusal is not None:
            raise StartRefused(refusal)

    def window_error(self, environment: str, planned_start: datetime) -> str | None:
        """For the plan rules: None when ``planned_start`` is inside the environment's windows, else why not."""
        windows = self.off_peak(environment)
        if windows.allowed(planned_start):
            return None
        following = windows.next_allowed_start(planned_start)
        return (
            f"{format_local(planned_start, self.zone)} is outside {environment}'s off-peak windows, "
            f"{windows.describe()}. The next allowed start is {format_local(following, self.zone)}."
        )

    def _window_refusal(self, run: Run, now: datetime) -> Refusal | None:
        windows = self.off_peak(run.environment)
        if windows.allowed(now):
            return None
        following = windows.next_allowed_start(now)
        sentence = (
            f"{run.label} may not start now: it is outside {run.environment}'s off-peak windows, "
            f"{windows.describe()}. The next window opens {format_local(following, self.zone)}."
        )
        expires = run.planned_start + self.policy.plan_expiry
        if following > expires:
            sentence += f" That is after the plan expires ({format_local(expires, self.zone)}): edit it to start then."
        return Refusal(rule=Rule.WINDOW, words=Words.of(sentence), overridable=False, next_start=following)
