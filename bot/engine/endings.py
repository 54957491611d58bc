"""How a run ends, decided in one place: what happened maps to the final state and the outcome stored with it.

Every way a run ends goes through an ``Ending`` constructor here: ``completed`` (the maximum duration was
reached and recovery measured, with the verdict on the hypothesis), ``aborted`` (a person, a breach, a
shutdown, a watcher crash), ``controller_lost`` (the dead man's switch), ``failed`` (a start that failed, a
revert that failed at the maximum duration), and ``from_record`` (the same ending read back from the spool).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from bot.engine import wording
from bot.engine.verdict import verdict_of
from bot.runs.models import RunState
from bot.words import SYSTEM_ACTOR

ENGINE_ACTOR = SYSTEM_ACTOR  # the bot itself, named (not @-mentioned) in messages


@dataclass(frozen=True)
class Ending:
    """How a run ends: its final state, who ended it and why, and the outcome fields stored with it.

    Build one with the constructors below, never by hand: they are the rules.
    """

    result: RunState
    actor: str
    reason: str
    rto_seconds: float
    hypothesis_held: bool | None = None
    recovery_seconds: float | None = None
    breach: str | None = None
    summary: str | None = None
    # After a stop condition's abort the probes keep sampling this long at most, to measure the recovery;
    # the retrospective waits for it (``Outcome.recovery_watch_until``).
    recovery_watch_seconds: float | None = None

    @classmethod
    def completed(
        cls,
        rto_seconds: float,
        recovery_seconds: float | None,
        *,
        watched: bool,
        evaluated: bool,
        sampled: bool = True,
    ) -> Ending:
        """The maximum duration was reached and the fault reverted; ``recovery_seconds`` None: never came back.
        ``evaluated`` False: a rehearsal whose stop conditions could not be evaluated tested nothing; ``sampled``
        False: nothing was measured while the fault was on, so nothing was tested either."""
        rto = timedelta(seconds=rto_seconds)
        verdict = verdict_of(rto, recovery_seconds, watched=watched, evaluated=evaluated, sampled=sampled)
        summary = wording.verdict(verdict, rto, recovery_seconds)
        return cls(
            RunState.COMPLETED,
            ENGINE_ACTOR,
            wording.completed_reason(summary),
            rto_seconds,
            hypothesis_held=verdict.held,
            recovery_seconds=recovery_seconds,
            summary=summary,
        )

    @classmethod
    def aborted(
        cls,
        actor: str,
        reason: str,
        rto_seconds: float,
        *,
        breach: str | None = None,
        recovery_watch: timedelta | None = None,
    ) -> Ending:
        """Aborted by a person or by the bot; a breached stop condition refutes the hypothesis.
        ``recovery_watch``: the recovery after the revert is still being measured, for at most this long."""
        return cls(
            RunState.ABORTED,
            actor,
            reason,
            rto_seconds,
            hypothesis_held=False if breach else None,
            breach=breach,
            recovery_watch_seconds=recovery_watch.total_seconds() if recovery_watch is not None else None,
        )

    @classmethod
    def controller_lost(cls, run_id: int, rto_seconds: float) -> Ending:
        """The process running it died; the dead man's switch reverted it."""
        return cls.aborted(ENGINE_ACTOR, wording.controller_lost(run_id), rto_seconds)

    @classmethod
    def failed(cls, reason: str, rto_seconds: float) -> Ending:
        """The engine could not do its part (a start, or the revert at the maximum duration)."""
        return cls(RunState.FAILED, ENGINE_ACTOR, reason, rto_seconds)

    @classmethod
    def from_record(cls, actor: str, reason: str, outcome: Mapping[str, Any]) -> Ending:
        """The ending a spooled record carries (``outcome()``'s fields)."""
        fields = {name: value for name, value in outcome.items() if name != "result"}
        return cls(RunState(str(outcome["result"])), actor, reason, **fields)

    def outcome(self) -> dict[str, Any]:
        """The fields of the run's ``Outcome`` row (``recovery_watch_seconds`` becomes its
        ``recovery_watch_until`` when the end is recorded)."""
        fields = asdict(self)
        del fields["actor"], fields["reason"]
        fields["result"] = self.result.value
        fields["summary"] = self.summary or self.reason or self.result.value
        return fields
