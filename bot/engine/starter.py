"""Starting a run: checks, preflight, lease, baseline, the transition to running, then the inject.

Order: may_start → kill switch (Redis mirror and database) → adapter preflight → lease → baseline (the
steady state must hold) → the announcement, delivered (teams are told before a start; if Slack cannot take it
within ``announce_timeout`` seconds nobody could press Abort, so the start is refused and the run stays
approved) → ``RunTransitions.begin`` → persist the prepared handle (database, then the kept and
mirrored rollback) → inject → persist the injected handle → watch. A fault handle is always persisted
*before* the backend is touched, so any process can revert it later, even after a crash.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapters import registry
from adapters.base import Adapter, AdapterError, AdapterParams, FaultHandle, Preflight
from adapters.dry_run import DryRunAdapter
from bot.alerting.silences import RunSilences, SilenceError
from bot.catalogue.models import Experiment
from bot.dashboards.marker import NO_MARKER, FaultWindowMarker
from bot.engine import applying, wording
from bot.engine.announcer import Announcer
from bot.engine.coordination import Coordination
from bot.engine.endings import Ending
from bot.engine.errors import InjectFailed, PreflightFailed, StartNotAnnounced, SteadyStateNotMet
from bot.engine.outage import DB_UNAVAILABLE
from bot.engine.outcomes import OutcomeRecorder
from bot.engine.prober import Prober
from bot.engine.recovery import judged
from bot.engine.revert import Reverter, RevertReport
from bot.engine.rollbacks import FaultTarget, Rollback, RollbackStore
from bot.engine.supervisor import Injected, Supervisor
from bot.engine.writes import PendingWrites
from bot.errors import DomainError, IllegalTransition, InvalidInput, KillSwitchEngaged
from bot.records import service as records
from bot.records.models import MeasurementPhase
from bot.runs.core import RunCore
from bot.runs.models import Run, RunState
from bot.runs.transitions import FreezeOverride
from bot.tracing import adapter_call, span
from bot.words import Words
from storage.db import Database

log = logging.getLogger(__name__)
ANNOUNCE_TIMEOUT_SECONDS = 10.0  # CHAOSBOT_ANNOUNCE_TIMEOUT_SECONDS


@dataclass(frozen=True)
class _Fault:
    """The catalogue entry's fault, with the adapter that will run it (a rehearsal wraps the real one)."""

    name: str
    adapter: Adapter
    raw: dict[str, Any]
    params: AdapterParams
    dry_run: bool

    @property
    def rehearsal(self) -> bool:
        return isinstance(self.adapter, DryRunAdapter)

    def target(self, fault_id: int, handle: FaultHandle) -> FaultTarget:
        return FaultTarget(fault_id, self.name, self.raw, handle.to_json(), self.dry_run)


class Starter:
    """Starts runs (see the module docstring); holds what a start uses, no more."""

    def __init__(
        self,
        core: RunCore,
        db: Database,
        coordination: Coordination,
        supervisor: Supervisor,
        prober: Prober,
        rollbacks: RollbackStore,
        revert: Reverter,
        recorder: OutcomeRecorder,
        announcer: Announcer,
        writes: PendingWrites,
        *,
        clock: Callable[[], datetime],
        marker: FaultWindowMarker = NO_MARKER,
        silences: RunSilences | None = None,
        announce_timeout: float = ANNOUNCE_TIMEOUT_SECONDS,
    ) -> None:
        self.core, self.db, self.coordination = core, db, coordination
        self.announce_timeout = announce_timeout  # how long a start waits for Slack to take its announcement
        self.silences = silences  # Alertmanager silences for the alerts the run is expected to fire
        self.supervisor, self.prober, self.rollbacks, self.revert = supervisor, prober, rollbacks, revert
        self.recorder, self.announcer, self.writes = recorder, announcer, writes
        self.clock = clock
        self.marker = marker  # dashboards: the fault window starts at the inject

    def start(
        self,
        actor: str,
        run_id: int,
        *,
        dry_run: bool = False,
        duration: timedelta | None = None,
        override: FreezeOverride | None = None,
    ) -> Run:
        """Check, inject and start watching a run; returns the running run (see the module docstring)."""
        with span("engine.start", run_id=run_id, dry_run=dry_run):
            return self._start(actor, run_id, dry_run=dry_run, duration=duration, override=override)

    def _start(
        self, actor: str, run_id: int, *, dry_run: bool, duration: timedelta | None, override: FreezeOverride | None
    ) -> Run:
        if self.supervisor.closed:
            raise IllegalTransition(wording.shutting_down())
        run = self.core.queries.run(run_id)
        self.core.transitions.may_start(actor, run, overriding=override.freeze_id if override else None)
        self._refuse_when_killed()
        limit = self.core.rules.run_duration(run, dry_run=dry_run, requested=duration)
        experiment = Experiment.model_validate(run.experiment).model_copy(update={"max_duration": limit})
        fault = _fault_of(experiment, dry_run=dry_run)
        preflight = self._preflight(run, fault, experiment, dry_run=dry_run)
        if not self.supervisor.hold(run_id):
            raise IllegalTransition(wording.started_elsewhere(run.label))
        try:
            self._baseline(run, experiment, rehearsal=_rehearsal(run, dry_run))
            self._announce(actor, run, experiment, fault, preflight)
            run = self.core.transitions.begin(actor, run_id, dry_run=dry_run, duration=duration, override=override)
        except BaseException:
            self.supervisor.let_go(run_id)
            raise
        self._inject(run, experiment, fault)
        return self.core.queries.run(run_id)

    def _announce(self, actor: str, run: Run, experiment: Experiment, fault: _Fault, preflight: Preflight) -> None:
        """Teams are told before the start; an announcement Slack cannot take means nobody can press Abort."""
        words = self._announcement(actor, run, experiment, fault, preflight)
        if self.announcer.delivered(run.id, words, within=self.announce_timeout):
            return
        refusal = wording.not_announced(run.label, self.announce_timeout)
        log.warning("%s", refusal, extra={"run_id": run.id})
        self.announcer.tell(run.id, refusal)  # waits in the outbox behind the announcement: said once Slack is back
        raise StartNotAnnounced(refusal)

    def _refuse_when_killed(self) -> None:
        if self.coordination.kill_switch_mirrored() or self.core.kill_switch.engaged():
            raise KillSwitchEngaged(wording.kill_switch_engaged())

    def _preflight(self, run: Run, fault: _Fault, experiment: Experiment, *, dry_run: bool) -> Preflight:
        try:
            result = adapter_call(fault.name, "preflight", fault.adapter.preflight)(fault.params)
        except Exception as exc:  # an adapter bug or outage is a failed preflight, with its message
            result = Preflight(ok=False, detail=_message(exc))
        unsilenceable = None if fault.rehearsal or self.silences is None else self.silences.preflight(experiment)
        if unsilenceable is not None:  # never a fault whose expected alerts would page the on-call
            raise PreflightFailed(wording.preflight_failed(run.label, unsilenceable))
        if result.ok or (dry_run and run.environment != "production"):
            return result
        raise PreflightFailed(wording.preflight_failed(run.label, result.detail))

    def _baseline(self, run: Run, experiment: Experiment, *, rehearsal: bool) -> None:
        if not experiment.stop_conditions:
            return
        samples = self.prober.sample(experiment.stop_conditions)
        self.prober.save(run.id, MeasurementPhase.BASELINE, samples)
        bad = [f"{s.condition}: {s.detail}" for s in judged(samples, rehearsal=rehearsal) if not s.ok]
        if bad:
            raise SteadyStateNotMet(wording.steady_state_not_met(run.label, bad))

    def _inject(self, run: Run, experiment: Experiment, fault: _Fault) -> None:
        rollback = Rollback(run.id, run.rollback_steps, experiment.rto.total_seconds())
        try:
            prepare = adapter_call(fault.name, "prepare", fault.adapter.prepare)
            handle = prepare(fault.params, run_id=run.label, duration=experiment.max_duration)
            with self.db.transaction() as session:
                fault_id = records.add_fault(session, run_id=run.id, handle=handle)
        except Exception as exc:
            self._fail_start(run, rollback, f"could not prepare the fault: {_message(exc)}")
            raise InjectFailed(wording.failed_before_inject(run.label, _message(exc))) from exc
        rollback = self.rollbacks.keep(rollback.with_target(fault.target(fault_id, handle)))
        self._silence(run, experiment, fault, rollback)
        try:
            inject = adapter_call(fault.name, "inject", fault.adapter.inject)
            injected = inject(fault.params, handle, duration=experiment.max_duration)
        except Exception as exc:
            report = self._fail_start(run, rollback, f"inject failed: {_message(exc)}")
            raise InjectFailed(wording.inject_failed(run.label, _message(exc), undone=report.ok)) from exc
        injected_at = time.monotonic()
        try:
            rollback = self.rollbacks.keep(rollback.with_target(fault.target(fault_id, injected)))
            injected_when = self.clock()
            self.writes.write(applying.fault_injected(run.id, fault_id, injected, injected_when))
            self.marker.fault_started(
                run.id,
                label=run.label,
                experiment_id=run.experiment_id,
                at=injected_when,
                text=f"{run.label} {run.experiment_id} {experiment.title} ({run.environment}): fault injected",
            )
            self._watch(run, experiment, rollback, Injected(fault.adapter, fault.params, injected), at=injected_at)
        except Exception as exc:  # never leave an injected fault without a watcher
            self._fail_start(run, rollback, f"internal error after the inject: {_message(exc)}")
            raise

    def _silence(self, run: Run, experiment: Experiment, fault: _Fault, rollback: Rollback) -> None:
        """The alerts the run is expected to fire, silenced until its latest end (they lift by themselves)."""
        if self.silences is None or fault.rehearsal or not experiment.silences:
            return
        try:
            ids = self.silences.silence(
                run.id,
                label=run.label,
                experiment=experiment,
                latest_end=self.clock() + experiment.max_duration,
                link=f"chaosbot {run.label}",
            )
        except SilenceError as exc:
            self._fail_start(run, rollback, str(exc))
            raise InjectFailed(wording.failed_before_inject(run.label, str(exc))) from exc
        self.announcer.tell(run.id, wording.silenced(run.label, ids))

    def _watch(self, run: Run, experiment: Experiment, rollback: Rollback, injected: Injected, *, at: float) -> None:
        if self._ended_meanwhile(run.id):  # aborted while the inject call was in flight: undo it again
            self.revert(rollback)
            self.supervisor.let_go(run.id)
            return
        self.supervisor.watch(run.id, experiment, injected, at=at, rehearsal=_rehearsal(run, run.dry_run))
        self.announcer.tell(run.id, wording.injected(run.label), urgent=True)

    def _fail_start(self, run: Run, rollback: Rollback, reason: str) -> RevertReport:
        self.supervisor.stop_renewing(run.id)
        report = self.revert(rollback)
        with contextlib.suppress(IllegalTransition):  # aborted meanwhile: that abort told the channel
            pending = self.recorder.finish(run.id, Ending.failed(reason, rollback.rto_seconds))
            self.announcer.tell(
                run.id, wording.failed_to_start(run.label, reason, report.words(), pending), urgent=True
            )
        self.supervisor.let_go(run.id)
        return report

    def _ended_meanwhile(self, run_id: int) -> bool:
        if self.supervisor.is_aborting(run_id):
            return True
        try:
            return self.core.queries.run(run_id).run_state is not RunState.RUNNING
        except DB_UNAVAILABLE:
            return False

    def _announcement(self, actor: str, run: Run, experiment: Experiment, fault: _Fault, preflight: Preflight) -> Words:
        return wording.announcement(
            actor,
            run.label,
            experiment,
            rehearsal=fault.rehearsal,
            preflight_ok=preflight.ok,
            preflight_detail=preflight.detail,
            production=run.environment == "production",
        )


def _rehearsal(run: Run, dry_run: bool) -> bool:
    """A dry run outside production: probes that cannot be evaluated are recorded, not acted on."""
    return dry_run and run.environment != "production"


def _fault_of(experiment: Experiment, *, dry_run: bool) -> _Fault:
    name, raw = experiment.fault.adapter, dict(experiment.fault.params)
    try:
        adapter = registry.create(name, dry_run=dry_run)
        return _Fault(name, adapter, raw, adapter.validate(raw), dry_run)
    except (registry.UnknownAdapterError, AdapterError) as exc:
        raise InvalidInput(wording.fault_unusable(experiment.id, _message(exc))) from exc


def _message(exc: BaseException) -> str:
    if isinstance(exc, AdapterError | DomainError):
        return exc.message
    return str(exc) or type(exc).__name__
