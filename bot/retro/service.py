"""Build a run's retrospective from its records: the run, its audit events, faults, measurements and outcome.

Every way a run ends gives a sensible retrospective: completed (held or refuted), aborted by a person,
auto-aborted on a stop condition, controller lost, failed, and (for completeness) never run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.alerting.models import RunSilence
from bot.alerting.silences import matchers_text, silences_of
from bot.audit import service as audit
from bot.audit.models import AuditEvent
from bot.catalogue.models import Experiment, StopCondition
from bot.catalogue.thresholds import threshold_text
from bot.records import service as records
from bot.records.models import FaultRecordState, MeasurementPhase
from bot.retro.links import filled_links
from bot.retro.models import (
    ActionItemLine,
    Breach,
    ConditionReport,
    Ending,
    PhaseStats,
    Point,
    Recovery,
    Retrospective,
    SilenceLine,
    TimelineEntry,
    Verdict,
    Window,
)
from bot.retro.stats import percentile, worst
from bot.runs import service as runs
from bot.runs.models import RAN, Run, RunState
from bot.vocabulary import (
    format_clock,
    format_day,
    format_duration,
    format_local,
    format_seconds,
    format_time,
    zone_abbreviation,
)
from bot.words import SYSTEM_ACTOR, Words, who
from storage.db import Database, utcnow

ActionItemSource = Callable[[Session, int], Sequence[ActionItemLine]]
CONTROLLER_LOST = "controller lost"
# Same-second moments in the order they happen: the revert comes before the record of the end.
_TIE_ORDER = {"injected": 1, "breach": 2, "reverted": 3, "recovered": 4, "completed": 5, "aborted": 5, "failed": 5}
_ENDED_KINDS = {f"run.{state.value}": state.value for state in RAN}


def build(
    source: Session | Database,
    run_id: int,
    *,
    zone: ZoneInfo,
    action_items: ActionItemSource | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Retrospective:
    """The retrospective of one run, read in one transaction (``source`` may be an open session); ``now``
    tells whether a recovery still being measured is measured yet."""
    if isinstance(source, Database):
        with source.transaction() as session:
            return build(session, run_id, zone=zone, action_items=action_items, environ=environ, now=now)
    return _Reader(source, run_id, zone, environ, now or utcnow()).retrospective(action_items)


class _Reader:
    def __init__(
        self, session: Session, run_id: int, zone: ZoneInfo, environ: Mapping[str, str] | None, now: datetime
    ) -> None:
        self.session, self.zone, self.environ, self.now = session, zone, environ, now
        self.run: Run = runs.get(session, run_id=run_id)
        self.experiment = Experiment.model_validate(self.run.experiment)
        self.outcome = records.outcome(session, run_id=run_id)
        self.faults = records.faults(session, run_id=run_id)
        self.samples = records.measurements(session, run_id=run_id)
        self.events = audit.timeline(session, run_id)
        self.silences = silences_of(session, run_id=run_id)

    def retrospective(self, action_items: ActionItemSource | None) -> Retrospective:
        run, experiment = self.run, self.experiment
        ending = self.ending()
        conditions = tuple(self.condition(c) for c in experiment.stop_conditions)
        breach = self.breach(conditions)
        recovery = self.recovery(ending)
        verdict, why = self.verdict(ending, breach, recovery)
        window = self.window()
        links, link_gaps = (
            ([], [])
            if window is None
            else filled_links(experiment.observability, window.start, window.end, self.environ)
        )
        return Retrospective(
            run_id=run.id,
            label=run.label,
            experiment_id=run.experiment_id,
            title=experiment.title,
            hypothesis=experiment.hypothesis,
            environment=run.environment,
            owner=run.owner,
            state=run.state,
            ending=ending,
            rehearsal=run.dry_run,
            zone=self.zone.key,
            verdict=verdict,
            why=why,
            breach=breach,
            window=window,
            timeline=self.timeline(breach, recovery),
            conditions=conditions,
            recovery=recovery,
            gaps=tuple(self.gaps(ending, conditions) + link_gaps),
            action_items=tuple(action_items(self.session, run.id)) if action_items else (),
            links=tuple(links),
            silences=tuple(self.silence(row) for row in self.silences),
            rollbacks=tuple(step for fault in self.faults for step in fault.steps()),
        )

    # -- how it ended and what that says about the hypothesis ------------------------------------

    def ending(self) -> Ending:
        state = self.run.run_state
        if state is RunState.COMPLETED:
            return Ending.COMPLETED
        if state is RunState.FAILED:
            return Ending.FAILED
        if state is not RunState.ABORTED:
            return Ending.NOT_RUN
        if self.outcome is not None and self.outcome.breach:
            return Ending.STOP_CONDITION
        if self.run.ended_by == SYSTEM_ACTOR:
            reason = self.run.end_reason or ""
            return Ending.CONTROLLER_LOST if reason.startswith(CONTROLLER_LOST) else Ending.SYSTEM_ABORT
        return Ending.ABORTED

    def verdict(self, ending: Ending, breach: Breach | None, recovery: Recovery) -> tuple[Verdict, Words]:
        held = self.outcome.hypothesis_held if self.outcome is not None else None
        if ending is Ending.STOP_CONDITION and breach is not None:
            return Verdict.REFUTED, Words.of(_breach_sentence(breach, self.zone))
        if held is True:
            return Verdict.HELD, Words.of(recovery.text)
        if held is False:
            return Verdict.REFUTED, Words.of(recovery.text)
        return Verdict.NOT_TESTED, self.untested_because(ending)

    def untested_because(self, ending: Ending) -> Words:
        reason = (self.run.end_reason or "").rstrip(".")
        if ending is Ending.COMPLETED:
            summary = self.outcome.summary if self.outcome is not None else "nothing was measured"
            return Words.of(_sentence(summary.split(": hypothesis")[0]))
        if ending is Ending.ABORTED:
            said = f" ({reason})" if reason else ""
            return Words.of(
                "Aborted by ",
                who(self.run.ended_by or SYSTEM_ACTOR),
                said,
                " before the fault window ended; no stop condition was breached.",
            )
        if ending is Ending.CONTROLLER_LOST:
            return Words.of(
                "The chaosbot process running it stopped before the fault window ended; another process "
                "reverted the fault from its persisted handle."
            )
        if ending is Ending.SYSTEM_ABORT:
            return Words.of(_sentence(f"chaosbot aborted it: {reason}"))
        if ending is Ending.FAILED:
            return Words.of(_sentence(f"It failed: {reason or 'no reason recorded'}"))
        return Words.of(f"It never ran ({self.run.state}).")

    def recovery(self, ending: Ending) -> Recovery:
        rto = self.outcome.rto_seconds if self.outcome is not None else self.experiment.rto.total_seconds()
        seconds = self.outcome.recovery_seconds if self.outcome is not None else None
        rto_text = format_duration(rto)
        if seconds is not None:
            margin = rto - seconds
            if margin >= 0:
                text = f"Recovered in {_took(seconds)} after the revert: within the RTO of {rto_text}"
                text += f", {_took(margin)} to spare."
            else:
                text = f"Recovered in {_took(seconds)} after the revert: {_took(-margin)} over the RTO of {rto_text}."
            return Recovery(rto, seconds, margin >= 0, margin, text)
        if ending is Ending.COMPLETED and self.outcome is not None and self.outcome.hypothesis_held is False:
            text = f"Did not recover: the steady state had not come back when the watch ended (RTO {rto_text})."
            return Recovery(rto, None, False, None, text)
        if self.watched_after_abort():
            assert self.outcome is not None  # watched_after_abort reads it
            if self.outcome.awaits_recovery(self.now):
                text = f"Not measured yet: the recovery after the abort is still being watched (RTO {rto_text})."
                return Recovery(rto, None, None, None, text)
            text = (
                "Did not recover: the steady state had not come back when the watch after the abort ended "
                f"(RTO {rto_text})."
            )
            return Recovery(rto, None, False, None, text)
        return Recovery(rto, None, None, None, f"Not measured: {self.unmeasured_because(ending)} (RTO {rto_text}).")

    def watched_after_abort(self) -> bool:
        """A stop condition aborted the run and its recovery was measured after the revert."""
        return self.outcome is not None and self.outcome.recovery_watch_until is not None

    def unmeasured_because(self, ending: Ending) -> str:
        if not self.experiment.stop_conditions:
            return "the experiment has no stop conditions"
        if ending is Ending.COMPLETED:
            return "its stop conditions could not be evaluated (a rehearsal)"
        if ending is Ending.NOT_RUN:
            return "the run never started"
        if ending is Ending.FAILED:
            return "the run failed"
        return "the run was aborted, so recovery after the revert was not watched"

    def silence(self, row: RunSilence) -> SilenceLine:
        if row.expired_at is not None and row.expired_at >= row.ends_at:
            status = f"ended by itself at {format_time(row.ends_at, self.zone)}"
        elif row.expired_at is not None:
            status = f"expired at {format_time(row.expired_at, self.zone)}"
        elif row.lift_requested_at is not None:
            error = f" ({row.last_error})" if row.last_error else ""
            status = f"not expired yet{error}; it ends by itself at {format_time(row.ends_at, self.zone)}"
        else:
            status = f"active until {format_time(row.ends_at, self.zone)}"
        return SilenceLine(row.silence_id, matchers_text(row.matchers), status)

    # -- per stop condition ------------------------------------------------------------------------

    def condition(self, condition: StopCondition) -> ConditionReport:
        probe = condition.probe
        upper, lower = probe.bounds
        points = tuple(
            Point(m.at, m.value, m.ok, MeasurementPhase(m.phase), m.detail)
            for m in self.samples
            if m.condition == condition.name
        )
        phases = {
            phase: _phase_stats([p for p in points if p.phase is phase], upper, lower) for phase in MeasurementPhase
        }
        return ConditionReport(
            name=condition.name,
            kind=probe.kind,
            unit=probe.unit,
            threshold=threshold_text(condition),
            upper=upper,
            lower=lower,
            phases=phases,
            points=points,
            breached=self._breached(condition.name),
        )

    def _breached(self, name: str) -> bool:
        breach = self.outcome.breach if self.outcome is not None else None
        return bool(breach) and (breach or "").startswith(f"stop condition {name}:")

    def breach(self, conditions: Sequence[ConditionReport]) -> Breach | None:
        text = self.outcome.breach if self.outcome is not None else None
        if not text:
            return None
        condition = next((c for c in conditions if c.breached), None)
        if condition is None:
            return Breach("", None, "", "", None, text)
        failing = [p for p in condition.points if p.phase is MeasurementPhase.FAULT and not p.ok]
        sample = failing[-1] if failing else None
        detail = text.split(":", 1)[1].strip() if ":" in text else text
        return Breach(
            condition.name,
            sample.value if sample else None,
            condition.unit,
            condition.threshold,
            sample.at if sample else None,
            detail,
        )

    # -- moments -----------------------------------------------------------------------------------

    def injected_at(self) -> datetime | None:
        moments = [f.injected_at for f in self.faults if f.injected_at is not None]
        return min(moments) if moments else None

    def reverted_at(self) -> datetime | None:
        """When the injected fault was undone (the end of the run when its revert was not recorded)."""
        if self.injected_at() is None:
            return None
        moments = [f.reverted_at for f in self.faults if f.reverted_at is not None]
        return max(moments) if moments else self.run.ended_at

    def window(self) -> Window | None:
        if self.run.started_at is None:
            return None
        taken = [m.at for m in self.samples]
        start = min([self.run.started_at, *taken])
        end = max([self.run.ended_at or self.run.started_at, *taken])
        return Window(start, end, self.injected_at(), self.reverted_at())

    def timeline(self, breach: Breach | None, recovery: Recovery) -> tuple[TimelineEntry, ...]:
        entries = [entry for event in self.events if (entry := self._from_event(event)) is not None]
        injected, reverted = self.injected_at(), self.reverted_at()
        adapters = ", ".join(sorted({f.adapter for f in self.faults}))
        if injected is not None:
            entries.append(self._entry(injected, "injected", Words.of(f"Fault injected ({adapters})")))
        if breach is not None and breach.at is not None:
            said = f"Stop condition {breach.condition} breached: {_value(breach)} against {breach.threshold}"
            entries.append(self._entry(breach.at, "breach", Words.of(said)))
        if reverted is not None:
            entries.append(self._entry(reverted, "reverted", Words.of("Fault reverted")))
            if recovery.seconds is not None:
                back = reverted + timedelta(seconds=recovery.seconds)
                said = f"Recovered: steady state back {_took(recovery.seconds)} after the revert"
                entries.append(self._entry(back, "recovered", Words.of(said)))
        return tuple(sorted(entries, key=lambda entry: (entry.at, _TIE_ORDER.get(entry.kind, 0))))

    def _from_event(self, event: AuditEvent) -> TimelineEntry | None:
        payload = json.loads(event.payload or "{}")
        actor = who(event.actor)
        action = event.action
        if action == "run.planned":
            planned = format_local(self.run.planned_start, self.zone, year=False)
            return self._entry(event.at, "planned", Words.of("Planned by ", actor, f" for {planned}"))
        if action == "run.edited":
            return self._entry(event.at, "edited", Words.of("Plan edited by ", actor))
        if action == "approval.given":
            role = payload.get("role", "")
            return self._entry(event.at, "approved", Words.of("Approved by ", actor, f" as {role}" if role else ""))
        if "notice" in action:
            return self._entry(event.at, "notice", Words.of("Notice posted in the channel"))
        if action == "run.started":
            rehearsal = " (rehearsal)" if payload.get("dry_run") else ""
            return self._entry(self.run.started_at or event.at, "started", Words.of("Started by ", actor, rehearsal))
        if action in _ENDED_KINDS:
            return self._ended(event, payload)
        return None

    def _ended(self, event: AuditEvent, payload: dict[str, object]) -> TimelineEntry:
        kind = _ENDED_KINDS[event.action]
        reason = str(payload.get("reason") or "").rstrip(".")
        at = self.run.ended_at or event.at
        if kind == "completed":
            return self._entry(at, kind, Words.of(_sentence(f"Completed: {reason}" if reason else "Completed")))
        verb = "Aborted" if kind == "aborted" else "Failed"
        said = f": {reason}" if reason else ""
        return self._entry(at, kind, Words.of(f"{verb} by ", who(event.actor), said))

    def _entry(self, at: datetime, kind: str, what: Words) -> TimelineEntry:
        zone = self.zone
        return TimelineEntry(at, format_day(at, zone), format_clock(at, zone), zone_abbreviation(at, zone), kind, what)

    # -- what could not be measured ----------------------------------------------------------------

    def gaps(self, ending: Ending, conditions: Sequence[ConditionReport]) -> list[str]:
        gaps: list[str] = []
        started = self.run.started_at is not None
        if self.run.dry_run:
            gaps.append("A rehearsal (dry run): no real fault was injected.")
        if started and not conditions:
            gaps.append("No stop conditions: nothing was measured, so the hypothesis could not be tested.")
        if started and self.injected_at() is None:
            gaps.append("No fault was injected, so the system was never under test.")
        for condition in conditions:
            gaps.extend(_condition_gaps(condition, started=started, faulted=self.injected_at() is not None))
        for fault in self.faults:
            if fault.state == FaultRecordState.FAILED:
                gaps.append(
                    f"The {fault.adapter} fault could not be reverted ({fault.last_error}); "
                    "check its rollback steps were followed."
                )
        if ending is Ending.CONTROLLER_LOST and self.samples:
            last = format_time(max(m.at for m in self.samples), self.zone)
            gaps.append(f"Unobserved from {last}, when the controlling process was lost, until the revert.")
        ended_early = ending not in (Ending.COMPLETED, Ending.NOT_RUN) and not self.watched_after_abort()
        if self.injected_at() is not None and ended_early and conditions:
            gaps.append("Recovery after the revert was not watched: the run ended early.")
        if self.run.run_state.is_final and started and self.outcome is None:
            gaps.append("No outcome was recorded (the database may have been unreachable when the run ended).")
        return gaps


def _condition_gaps(condition: ConditionReport, *, started: bool, faulted: bool) -> list[str]:
    gaps = []
    errors = [p for p in condition.points if p.value is None]
    if errors:
        gaps.append(
            f"{condition.name}: {len(errors)} of {len(condition.points)} samples could not be taken "
            f"(last: {errors[-1].detail})."
        )
    if started and not condition.phases[MeasurementPhase.BASELINE].samples:
        gaps.append(f"{condition.name}: no baseline sample before the fault.")
    if faulted and not condition.phases[MeasurementPhase.FAULT].samples:
        gaps.append(f"{condition.name}: no sample while the fault was on.")
    return gaps


def _phase_stats(points: Sequence[Point], upper: float | None, lower: float | None) -> PhaseStats:
    values = [p.value for p in points if p.value is not None]
    return PhaseStats(
        samples=len(points),
        errors=len(points) - len(values),
        failing=sum(1 for p in points if not p.ok and p.value is not None),
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        worst=worst(values, upper=upper, lower=lower),
    )


def _breach_sentence(breach: Breach, zone: ZoneInfo) -> str:
    if breach.value is None or not breach.condition:
        return _sentence(f"Stop condition breached: {breach.detail}")
    at = f" at {format_time(breach.at, zone)}" if breach.at else ""
    return f"Stop condition {breach.condition} breached{at}: {_value(breach)} against the threshold {breach.threshold}."


def _value(breach: Breach) -> str:
    if breach.value is None:
        return breach.detail
    return f"{breach.value:.0f} {breach.unit}".strip() if breach.unit else f"{breach.value:g}"


def _took(seconds: float) -> str:
    return format_seconds(seconds) if seconds < 60 else format_duration(seconds)


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return (text[:1].upper() + text[1:] + ".") if text else ""
