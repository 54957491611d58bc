"""The run engine: start a run, watch its stop conditions, end it, and the kill switch and dead man's switch.

Safety rules this module keeps:

- A fault handle is persisted (database, Redis mirror, in-memory cache) *before* the backend is touched, so
  any process can revert it later, even after a crash.
- Abort reverts on the caller's thread at once: it never waits for a watcher or a probe in flight, and a
  database or Redis outage never holds a revert back (records are written afterwards, retried if needed).
- A running run is owned by the process holding its lease. When that process dies the lease lapses and
  ``recover_orphans`` (in any replica, or the next process to start) reverts the run and aborts it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session

from adapters import registry
from adapters.base import Adapter, AdapterError, AdapterParams, FaultHandle, Preflight
from bot.catalogue.models import Experiment, StopCondition
from bot.engine import records
from bot.engine.coordination import Coordination
from bot.engine.errors import AbortImpossible, InjectFailed, PreflightFailed, SteadyStateNotMet
from bot.engine.leases import LeaseKeeper
from bot.engine.probes import Sample, take_sample
from bot.engine.progress import Progress, read_progress
from bot.engine.records import DB_UNAVAILABLE
from bot.engine.revert import FaultTarget, RevertPlan, RevertReport, revert_plan, write_soon
from bot.engine.watcher import Watcher, judged
from bot.errors import DomainError, IllegalTransition, InvalidInput, KillSwitchEngaged
from bot.notify import Notifier
from bot.runs import service as runs
from bot.runs.flows import SYSTEM_ACTOR, Lifecycle, mention
from bot.runs.models import Run, RunState, run_label
from storage.db import utcnow

log = logging.getLogger(__name__)

ENGINE_ACTOR = SYSTEM_ACTOR  # the bot itself, named (not @-mentioned) in messages
DRY_RUN_ADAPTER = "dry_run"
READ_DEADLINE_SECONDS = 0.5  # an abort waits this long for the database before using its cached handles


@dataclass(frozen=True)
class AbortResult:
    run_id: int
    reverted: bool
    detail: str


@dataclass(frozen=True)
class _Fault:
    name: str
    adapter: Adapter
    raw: dict[str, Any]
    params: AdapterParams


class RunEngine:
    """Runs experiments for the Slack layer, the console and the scheduler (see the module docstring).

    ``close()`` stops this process's watchers and lease renewal *without reverting*: the leases lapse
    and another process (or the next one to start) reverts and aborts those runs via ``recover_orphans``.
    To stop runs deliberately, abort them first.
    """

    def __init__(
        self,
        lifecycle: Lifecycle,
        notifier: Notifier,
        coordination: Coordination,
        *,
        holder: str | None = None,
        lease_ttl: timedelta = timedelta(seconds=15),
        revert_attempts: int = 4,
        http: httpx.Client | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.lifecycle = lifecycle
        self.db = lifecycle.db
        self.notifier = notifier
        self.coordination = coordination
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_ttl = lease_ttl
        self.revert_attempts = revert_attempts
        self.clock = clock
        self._http = http or httpx.Client(follow_redirects=False)
        self._owns_http = http is None
        self._lock = threading.RLock()
        self._watchers: dict[int, Watcher] = {}
        self._plans: dict[int, RevertPlan] = {}
        self._aborting: set[int] = set()
        self._closed = False
        self._leases = LeaseKeeper(coordination, self.holder, lease_ttl, on_lost=self._lease_lost)
        self._probes = ThreadPoolExecutor(max_workers=16, thread_name_prefix="chaosbot-probe")
        self._reads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="chaosbot-read")

    # -- starting ------------------------------------------------------------------------------

    def start(self, actor: str, run_id: int, *, dry_run: bool = False, duration: timedelta | None = None) -> Run:
        """Check, inject and start watching a run; returns the running run.

        Order: may_start → kill switch (Redis mirror and database) → adapter preflight → lease → baseline
        (steady state must hold) → ``lifecycle.begin`` → persist the prepared handle → inject → persist the
        injected handle → watcher. Raises a ``DomainError`` saying why when a person can do something about it.
        ``duration`` shortens a rehearsal (``dry_run``) below the experiment's maximum.
        """
        if self._closed:
            raise IllegalTransition("This chaosbot process is shutting down; start the run again in a moment.")
        run = self.lifecycle.run(run_id)
        self.lifecycle.may_start(actor, run)
        self._refuse_when_killed()
        limit = self.lifecycle.run_duration(run, dry_run=dry_run, requested=duration)
        experiment = Experiment.model_validate(run.experiment).model_copy(update={"max_duration": limit})
        fault = _fault_of(experiment, dry_run=dry_run)
        preflight = self._preflight(run, fault, dry_run=dry_run)
        if not self.coordination.acquire(run_id, self.holder, self.lease_ttl):
            raise IllegalTransition(f"{run.label} is being started by another chaosbot process.")
        self._leases.track(run_id)
        try:
            self._baseline(run, experiment, rehearsal=_rehearsal(run, dry_run))
            run = self.lifecycle.begin(actor, run_id, dry_run=dry_run, duration=duration)
        except BaseException:
            self._let_go(run_id)
            raise
        self._inject(actor, run, experiment, fault, preflight)
        return self.lifecycle.run(run_id)

    def _refuse_when_killed(self) -> None:
        if self.coordination.kill_switch_mirrored() or self.lifecycle.kill_switch_engaged():
            raise KillSwitchEngaged(
                "The global kill switch is engaged: nothing can start until an approver runs `/chaos resume`."
            )

    def _preflight(self, run: Run, fault: _Fault, *, dry_run: bool) -> Preflight:
        try:
            result = fault.adapter.preflight(fault.params)
        except Exception as exc:  # an adapter bug or outage is a failed preflight, with its message
            result = Preflight(ok=False, detail=_message(exc))
        if result.ok or (dry_run and run.environment != "production"):
            return result
        raise PreflightFailed(
            f"Preflight failed for {run.label}, so nothing was injected and it stays approved: {result.detail}"
        )

    def _baseline(self, run: Run, experiment: Experiment, *, rehearsal: bool) -> None:
        if not experiment.stop_conditions:
            return
        samples = self.sample(experiment.stop_conditions)
        self.store(run.id, "baseline", samples)
        bad = [f"{s.condition}: {s.detail}" for s in judged(samples, rehearsal=rehearsal) if not s.ok]
        if bad:
            raise SteadyStateNotMet(
                f"{run.label} did not start: the steady state does not hold ({'; '.join(bad)}), so nothing "
                "was injected. It stays approved; start it again once the system is healthy."
            )

    def _inject(self, actor: str, run: Run, experiment: Experiment, fault: _Fault, preflight: Preflight) -> None:
        plan = RevertPlan(run.id, run.rollback_steps, experiment.rto.total_seconds())
        try:
            handle = fault.adapter.prepare(fault.params, run_id=run.label, duration=experiment.max_duration)
            with self.db.transaction() as session:
                fault_id = records.add_fault(session, run_id=run.id, handle=handle)
        except Exception as exc:
            self._fail_start(run, plan, f"could not prepare the fault: {_message(exc)}")
            raise InjectFailed(f"{run.label} failed before anything was injected: {_message(exc)}") from exc
        target = FaultTarget(fault_id, fault.name, fault.raw, handle.to_json())
        plan = self._remember(plan.with_target(target))
        self._tell(run.id, _announcement(actor, run, experiment, fault, preflight))
        try:
            injected = fault.adapter.inject(fault.params, handle, duration=experiment.max_duration)
        except Exception as exc:
            report = self._fail_start(run, plan, f"inject failed: {_message(exc)}")
            undone = "What may have been applied was reverted" if report.ok else "The revert failed too (see alert)"
            raise InjectFailed(
                f"Could not inject the fault of {run.label}: {_message(exc)}. {undone}; {run.label} is marked failed."
            ) from exc
        injected_at = time.monotonic()
        try:
            plan = self._remember(plan.with_target(replace(target, handle=injected.to_json())))
            write_soon(lambda: self._record_injected(fault_id, injected), what=f"recording the inject of {run.label}")
            self._after_inject(run, experiment, plan, injected_at=injected_at)
        except Exception as exc:  # never leave an injected fault without a watcher
            self._fail_start(run, plan, f"internal error after the inject: {_message(exc)}")
            raise

    def _after_inject(self, run: Run, experiment: Experiment, plan: RevertPlan, *, injected_at: float) -> None:
        if self._ended_meanwhile(run.id):  # aborted while the inject call was in flight: undo it again
            self._revert(plan)
            self._let_go(run.id)
            return
        watcher = Watcher(self, run.id, experiment, injected_at=injected_at, rehearsal=_rehearsal(run, run.dry_run))
        with self._lock:
            self._watchers[run.id] = watcher
        watcher.start()
        self._tell(run.id, f"Fault injected into {run.label}; watching its stop conditions.", urgent=True)

    def _fail_start(self, run: Run, plan: RevertPlan, reason: str) -> RevertReport:
        report = self._revert(plan)
        with contextlib.suppress(IllegalTransition):  # aborted meanwhile: that abort told the channel
            status = self._finish(run.id, plan, result=RunState.FAILED, actor=ENGINE_ACTOR, reason=reason)
            self._tell(run.id, f"{run.label} failed to start: {reason}. {_revert_text(report)}{status}", urgent=True)
        self._let_go(run.id)
        return report

    def _record_injected(self, fault_id: int, handle: FaultHandle) -> None:
        with self.db.transaction() as session:
            records.fault_injected(session, fault_id=fault_id, handle=handle, at=self.clock())

    def _ended_meanwhile(self, run_id: int) -> bool:
        with self._lock:
            if run_id in self._aborting:
                return True
        try:
            return self.lifecycle.run(run_id).run_state is not RunState.RUNNING
        except DB_UNAVAILABLE:
            return False

    # -- aborting ------------------------------------------------------------------------------

    def abort(self, actor: str, run_id: int, reason: str = "") -> AbortResult:
        """Revert the run's faults now (from any process), then record it aborted.

        Reverts from the persisted handles (database; the Redis mirror or this process's cache when the
        database does not answer within ``READ_DEADLINE_SECONDS``), retried with backoff. A final failure
        marks the fault failed and raises ``Notifier.alert`` (loud: the Slack publisher adds ``<!here>``) with
        the rollback steps. Aborting a run that already ended raises ``IllegalTransition``.
        """
        return self._abort(actor, run_id, reason)[0]

    def _abort(
        self, actor: str, run_id: int, reason: str, *, breach: str | None = None
    ) -> tuple[AbortResult, RevertPlan]:
        with self._lock:
            self._aborting.add(run_id)
            watcher = self._watchers.get(run_id)
        if watcher is not None:
            watcher.stop.set()  # the watcher stops at its next step; we never wait for a probe in flight
        try:
            plan = self._plan_for_abort(run_id)
            report = self._revert(plan)
            held = False if breach else None
            try:
                status = self._finish(
                    run_id, plan, result=RunState.ABORTED, actor=actor, reason=reason, breach=breach, held=held
                )
            except IllegalTransition as exc:  # it ended while we were reverting
                self._let_go(run_id)
                return AbortResult(run_id, report.ok, f"{_revert_text(report)} {exc.message}"), plan
            detail = _revert_text(report) + status
            said = f": {reason.rstrip('.')}." if reason else "."
            self._tell(run_id, f"{run_label(run_id)} aborted by {mention(actor)}{said} {detail}", urgent=True)
            self._let_go(run_id)
            return AbortResult(run_id, report.ok, detail), plan
        finally:
            with self._lock:
                self._aborting.discard(run_id)

    def _plan_for_abort(self, run_id: int) -> RevertPlan:
        future = self._reads.submit(self._plan_from_db, run_id)
        try:
            return future.result(timeout=READ_DEADLINE_SECONDS)
        except (FutureTimeout, *DB_UNAVAILABLE) as exc:
            cached = self._cached_plan(run_id)
            if cached is not None:
                log.warning("database did not answer (%r); reverting run %s from cached handles", exc, run_id)
                return cached
            if isinstance(exc, FutureTimeout):
                return future.result()  # slow, not down, and nothing cached: the database is all we have
            raise AbortImpossible(
                f"Cannot revert {run_label(run_id)} from here: the database is unreachable and no copy of its "
                "fault handles is available. Follow its rollback steps by hand."
            ) from exc

    def _plan_from_db(self, run_id: int) -> RevertPlan:
        with self.db.transaction() as session:
            run = runs.get(session, run_id=run_id)
            if run.run_state is not RunState.RUNNING:
                raise IllegalTransition(self._not_running(run))
            faults = records.unreverted_faults(session, run_ids=[run_id])
            return _plan_of(run, faults)

    def _cached_plan(self, run_id: int) -> RevertPlan | None:
        with self._lock:
            cached = self._plans.get(run_id)
        if cached is not None:
            return cached
        mirrored = self.coordination.mirrored_handles(run_id)
        return RevertPlan.from_json(mirrored) if mirrored else None

    def _not_running(self, run: Run) -> str:
        if not run.run_state.is_final:
            return f"{run.label} is not running ({run.state}): there is nothing to abort. To withdraw it, cancel it."
        return self.lifecycle.ended_sentence(run)

    def abort_all(self, actor: str, reason: str = "") -> list[AbortResult]:
        """Engage the global kill switch (database and Redis) first, then abort every running run in parallel,
        then call ``halt_all`` on each adapter involved that supports it."""
        write_soon(lambda: self.lifecycle.engage_kill_switch(actor, reason), what="engaging the kill switch")
        self.coordination.mirror_kill_switch(engaged=True, actor=actor, reason=reason)
        run_ids = self._running_ids()
        if not run_ids:
            return []
        with ThreadPoolExecutor(max_workers=min(32, len(run_ids)), thread_name_prefix="chaosbot-abort") as pool:
            outcomes = list(pool.map(lambda run_id: self._abort_quietly(actor, run_id, reason), run_ids))
        self._halt_all([plan for _, plan in outcomes if plan is not None])
        return [result for result, _ in outcomes]

    def _abort_quietly(self, actor: str, run_id: int, reason: str) -> tuple[AbortResult, RevertPlan | None]:
        try:
            return self._abort(actor, run_id, reason)
        except DomainError as exc:  # ended meanwhile, or no handles anywhere
            return AbortResult(run_id, False, exc.message), None

    def _running_ids(self) -> list[int]:
        future = self._reads.submit(self._running_from_db)
        try:
            return future.result(timeout=READ_DEADLINE_SECONDS)
        except (FutureTimeout, *DB_UNAVAILABLE):
            with self._lock:
                known = set(self._plans)
            return sorted(known | set(self.coordination.mirrored_runs()))

    def _running_from_db(self) -> list[int]:
        with self.db.transaction() as session:
            return [run.id for run in records.running_runs(session)]

    def _halt_all(self, plans: Sequence[RevertPlan]) -> None:
        seen: set[str] = set()
        for target in (t for plan in plans for t in plan.targets):
            key = f"{target.adapter}:{sorted(target.params.items())}"
            if key in seen:
                continue
            seen.add(key)
            try:
                adapter = registry.create(target.adapter)
                if type(adapter).halt_all is not Adapter.halt_all:
                    adapter.halt_all(adapter.validate(target.params))
            except Exception:  # halt_all is a best-effort extra; every run was already reverted one by one
                log.exception("halt_all of adapter %s failed", target.adapter)

    def resume(self, actor: str) -> bool:
        """Release the global kill switch (approvers only); True when it was engaged."""
        changed = self.lifecycle.release_kill_switch(actor)
        mirrored = self.coordination.kill_switch_mirrored()
        self.coordination.mirror_kill_switch(engaged=False, actor=actor)
        return changed or mirrored

    # -- dead man's switch ---------------------------------------------------------------------

    def recover_orphans(self) -> list[int]:
        """Revert and abort running runs whose controller died (their lease lapsed); returns their ids.

        Safe to call from every replica at once: each run is recovered by whoever takes its lease.
        """
        with self.db.transaction() as session:
            running = [run.id for run in records.running_runs(session)]
        with self._lock:
            mine = set(self._watchers) | set(self._plans)
        recovered = []
        for run_id in self.coordination.expired([r for r in running if r not in mine]):
            if not self.coordination.acquire(run_id, self.holder, self.lease_ttl):
                continue  # another replica is recovering it
            self._leases.track(run_id)  # a slow revert must not let a second replica start recovering too
            if self._recover(run_id):
                recovered.append(run_id)
        return recovered

    def _recover(self, run_id: int) -> bool:
        try:
            plan = self._plan_from_db(run_id)
        except IllegalTransition:  # ended meanwhile
            self._let_go(run_id)
            return False
        report = self._revert(plan)
        reason = (
            f"controller lost: the chaosbot process running {run_label(run_id)} stopped renewing its lease; "
            "faults reverted from their persisted handles"
        )
        try:
            status = self._finish(run_id, plan, result=RunState.ABORTED, actor=ENGINE_ACTOR, reason=reason)
        except IllegalTransition:  # ended meanwhile by someone else
            self._let_go(run_id)
            return False
        text = f"{run_label(run_id)} aborted, {reason}. {_revert_text(report)}{status}"
        self._tell(run_id, text, urgent=True)
        self._notify(lambda n: n.alert(run_id, text))
        self._let_go(run_id)
        return True

    # -- reading -------------------------------------------------------------------------------

    def running(self) -> list[int]:
        """Run ids this process is watching."""
        with self._lock:
            return sorted(self._watchers)

    def progress(self, run_id: int) -> Progress | None:
        """Elapsed time, phase and the latest sample of each stop condition (None unless running)."""
        return read_progress(self.db, run_id, self.clock)

    def close(self) -> None:
        """Stop watchers and lease renewal without reverting; see the class docstring."""
        with self._lock:
            self._closed = True
            watchers = list(self._watchers.values())
        for watcher in watchers:
            watcher.stop.set()
        self._leases.close()
        for watcher in watchers:
            watcher.thread.join(timeout=0.5)
        self._probes.shutdown(wait=False, cancel_futures=True)
        self._reads.shutdown(wait=False, cancel_futures=True)
        if self._owns_http:
            self._http.close()

    # -- the watcher's host interface (called by watcher threads, not by the Slack layer) --------

    def still_running(self, run_id: int) -> bool:
        """Whether the database still says running (True when it cannot be read: keep watching)."""
        try:
            return self.lifecycle.run(run_id).run_state is RunState.RUNNING
        except DB_UNAVAILABLE:
            return True

    def sample(self, conditions: Sequence[StopCondition]) -> list[Sample]:
        """One sample of each condition, probed in parallel."""
        if len(conditions) == 1:
            return [take_sample(conditions[0], self._http)]
        return list(self._probes.map(lambda condition: take_sample(condition, self._http), conditions))

    def store(self, run_id: int, phase: str, samples: list[Sample]) -> None:
        """Store samples as measurements (dropped, with a warning, while the database is down)."""
        try:
            with self.db.transaction() as session:
                records.add_samples(session, run_id=run_id, phase=phase, samples=samples, at=self.clock())
        except DB_UNAVAILABLE:
            log.warning("database unavailable: %d samples of run %s not stored", len(samples), run_id)

    def breached(self, run_id: int, reason: str) -> None:
        """A stop condition was breached: abort as chaosbot, recording the breach."""
        try:
            self._abort(ENGINE_ACTOR, run_id, reason, breach=reason)
        except DomainError as exc:
            log.info("breach of run %s not acted on: %s", run_id, exc.message)

    def end_fault(self, run_id: int) -> bool:
        """Maximum duration reached: revert. False when the revert failed (the run is then marked failed)."""
        plan = self._cached_plan(run_id) or self._plan_from_db(run_id)
        report = self._revert(plan)
        label = run_label(run_id)
        if report.ok:
            rto = _seconds(plan.rto_seconds)
            self._tell(run_id, f"{label} reached its maximum duration: fault reverted; measuring recovery (RTO {rto}).")
            return True
        reason = f"could not revert at the end of the maximum duration: {'; '.join(report.failures())}"
        with contextlib.suppress(IllegalTransition):  # aborted meanwhile: that abort told the channel
            status = self._finish(run_id, plan, result=RunState.FAILED, actor=ENGINE_ACTOR, reason=reason)
            self._tell(run_id, f"{label} failed: {reason}.{status}", urgent=True)
        self._let_go(run_id)
        return False

    def complete(self, run_id: int, recovery_seconds: float | None, *, evaluated: bool = True) -> None:
        """Recovery measured (None: it never came back): finish completed with the verdict on the hypothesis.

        ``evaluated`` False: a rehearsal whose stop conditions could not be evaluated tested nothing.
        """
        try:
            plan = self._cached_plan(run_id) or self._plan_from_db(run_id)
        except IllegalTransition:  # ended elsewhere meanwhile
            return
        watched = self._has_conditions(run_id)
        held, summary = _verdict(plan.rto_seconds, recovery_seconds, watched=watched, evaluated=evaluated)
        with contextlib.suppress(IllegalTransition):  # aborted meanwhile: that abort told the channel
            status = self._finish(
                run_id,
                plan,
                result=RunState.COMPLETED,
                actor=ENGINE_ACTOR,
                reason=f"maximum duration reached; {summary}",
                held=held,
                recovery_seconds=recovery_seconds,
                summary=summary,
            )
            self._tell(run_id, f"{run_label(run_id)} completed: {summary}.{status}", urgent=True)
        self._let_go(run_id)

    def ticked(self, run_id: int) -> None:
        """A tick was stored: refresh the progress (non-urgent, so the notifier may throttle it)."""
        self._notify(lambda n: n.run_changed(run_id, urgent=False))

    def crashed(self, run_id: int, error: Exception) -> None:
        """The watcher hit a bug: abort, so no fault stays injected with nobody watching it."""
        if self._closed:  # close() cancels probes under the watcher's feet: not a reason to revert
            return
        reason = f"the run engine hit an internal error ({type(error).__name__}); reverted to be safe"
        try:
            self._abort(ENGINE_ACTOR, run_id, reason)
        except DomainError as exc:
            log.info("run %s not aborted after the watcher crash: %s", run_id, exc.message)

    def detach(self, run_id: int, *, ended_elsewhere: bool) -> None:
        """The watcher thread ends; when another process ended the run, stop holding its lease here."""
        with self._lock:
            self._watchers.pop(run_id, None)
            closed = self._closed
        if ended_elsewhere and not closed:
            log.info("run %s ended in another process; watcher stopped", run_id)
            self._let_go(run_id)

    # -- shared plumbing -----------------------------------------------------------------------

    def _remember(self, plan: RevertPlan) -> RevertPlan:
        with self._lock:
            self._plans[plan.run_id] = plan
        self.coordination.mirror_handles(plan.run_id, plan.to_json())
        return plan

    def _revert(self, plan: RevertPlan) -> RevertReport:
        """Revert every target of the plan, record each fault's state, and alert loudly on failure."""
        report = revert_plan(plan, attempts=self.revert_attempts)
        write_soon(lambda: self._record_revert(report), what=f"recording the revert of {run_label(plan.run_id)}")
        if report.ok:
            emptied = replace(plan, targets=())
            with self._lock:
                cached = plan.run_id in self._plans
                if cached:
                    self._plans[plan.run_id] = emptied
            if cached:
                self.coordination.mirror_handles(plan.run_id, emptied.to_json())
        else:
            self._notify(lambda n: n.alert(plan.run_id, _revert_alert(plan, report, self.revert_attempts)))
        return report

    def _record_revert(self, report: RevertReport) -> None:
        with self.db.transaction() as session:
            for fault_id, error in report.errors.items():
                if fault_id is None:
                    continue
                if error is None:
                    records.fault_reverted(session, fault_id=fault_id, at=self.clock())
                else:
                    records.fault_failed(session, fault_id=fault_id, error=error)

    def _finish(
        self,
        run_id: int,
        plan: RevertPlan,
        *,
        result: RunState,
        actor: str,
        reason: str,
        held: bool | None = None,
        recovery_seconds: float | None = None,
        breach: str | None = None,
        summary: str | None = None,
    ) -> str:
        """Record the end and its outcome; returns "" or a sentence to append when the record is pending.

        Raises ``IllegalTransition`` when someone else ended the run first (they announce it, not us).
        """
        outcome = {
            "result": result.value,
            "hypothesis_held": held,
            "recovery_seconds": recovery_seconds,
            "rto_seconds": plan.rto_seconds,
            "breach": breach,
            "summary": summary or reason or result.value,
        }
        recorder = _EndRecorder(self, run_id, result=result, actor=actor, reason=reason, outcome=outcome)
        try:
            recorder()
        except DB_UNAVAILABLE:
            write_soon(recorder, what=f"recording the end of {run_label(run_id)}")
            return " The database is unreachable: the record is written as soon as it is back."
        return ""

    def _let_go(self, run_id: int) -> None:
        """Forget the run here: stop its watcher, stop renewing and release its lease, drop cached handles."""
        with self._lock:
            watcher = self._watchers.pop(run_id, None)
            self._plans.pop(run_id, None)
        if watcher is not None:
            watcher.stop.set()
        self._leases.untrack(run_id)
        try:
            self.coordination.release(run_id, self.holder)
        except DB_UNAVAILABLE:
            log.warning("could not release the lease of run %s; it lapses by itself", run_id)
        self.coordination.forget_handles(run_id)

    def _lease_lost(self, run_id: int) -> None:
        with self._lock:
            watcher = self._watchers.pop(run_id, None)
            self._plans.pop(run_id, None)
        if watcher is not None:
            watcher.stop.set()

    def _has_conditions(self, run_id: int) -> bool:
        with self._lock:
            watcher = self._watchers.get(run_id)
        return watcher is None or bool(watcher.experiment.stop_conditions)

    def _tell(self, run_id: int, text: str, *, urgent: bool = False) -> None:
        self._notify(lambda n: n.timeline(run_id, text))
        if urgent:
            self._notify(lambda n: n.run_changed(run_id, urgent=True))

    def _notify(self, call: Callable[[Notifier], None]) -> None:
        try:
            call(self.notifier)
        except Exception:  # a chat outage must never stop a revert or a record
            log.exception("notifier failed")


class _EndRecorder:
    """Finish the run and store its outcome; safe to call again after a database error (for the retry)."""

    def __init__(
        self, engine: RunEngine, run_id: int, *, result: RunState, actor: str, reason: str, outcome: dict[str, Any]
    ) -> None:
        self.engine, self.run_id, self.result, self.actor, self.reason = engine, run_id, result, actor, reason
        self.outcome = outcome

    def __call__(self) -> None:
        try:
            self.engine.lifecycle.finish(self.actor, self.run_id, self.result, self.reason, also=self._save)
        except IllegalTransition:
            if not self._ours():
                raise
            # An earlier attempt committed although its connection failed: make sure the outcome is there.
            with self.engine.db.transaction() as session:
                self._save(session, None)

    def _save(self, session: Session, _run: Run | None) -> None:
        records.save_outcome(session, run_id=self.run_id, at=self.engine.clock(), **self.outcome)

    def _ours(self) -> bool:
        """An earlier attempt whose commit went through although its connection failed."""
        run = self.engine.lifecycle.run(self.run_id)
        return run.state == self.result.value and run.ended_by == self.actor and (run.end_reason or "") == self.reason


def _rehearsal(run: Run, dry_run: bool) -> bool:
    """A dry run outside production: probes that cannot be evaluated are recorded, not acted on."""
    return dry_run and run.environment != "production"


def _fault_of(experiment: Experiment, *, dry_run: bool) -> _Fault:
    name, raw = experiment.fault.adapter, dict(experiment.fault.params)
    if dry_run and name != DRY_RUN_ADAPTER:  # an entry that already rehearses is used as it is
        name, raw = DRY_RUN_ADAPTER, {"would_use": name, "params": raw}
    try:
        adapter = registry.create(name)
        return _Fault(name, adapter, raw, adapter.validate(raw))
    except (registry.UnknownAdapterError, AdapterError) as exc:
        raise InvalidInput(f"{experiment.id}'s fault cannot be used: {_message(exc)}") from exc


def _plan_of(run: Run, faults: Sequence[records.FaultRecord]) -> RevertPlan:
    experiment = Experiment.model_validate(run.experiment)
    targets = tuple(FaultTarget(f.id, f.adapter, _params_for(experiment, f.adapter), dict(f.handle)) for f in faults)
    return RevertPlan(run.id, run.rollback_steps, experiment.rto.total_seconds(), targets)


def _params_for(experiment: Experiment, adapter: str) -> dict[str, Any]:
    """The params a recorded fault was injected with: the entry's own, or the dry-run wrapping of them."""
    params = dict(experiment.fault.params)
    if adapter == experiment.fault.adapter:
        return params
    return {"would_use": experiment.fault.adapter, "params": params}


def _verdict(
    rto_seconds: float, recovery: float | None, *, watched: bool, evaluated: bool = True
) -> tuple[bool | None, str]:
    rto = _seconds(rto_seconds)
    if not watched:
        return None, "no stop conditions, so recovery was not measured"
    if not evaluated:
        return None, "its stop conditions could not be evaluated (a rehearsal), so the hypothesis was not tested"
    if recovery is None:
        return False, f"the steady state did not come back after the revert (RTO {rto}): hypothesis refuted"
    if recovery <= rto_seconds:
        return True, f"recovered in {recovery:.1f} s after the revert, within the RTO of {rto}: hypothesis held"
    return False, f"recovered in {recovery:.1f} s after the revert, over the RTO of {rto}: hypothesis refuted"


def _announcement(actor: str, run: Run, experiment: Experiment, fault: _Fault, preflight: Preflight) -> str:
    conditions = ", ".join(c.name for c in experiment.stop_conditions) or "none"
    check = "passed" if preflight.ok else "FAILED (dry run goes on)"
    if run.environment == "production" and preflight.ok:
        check += " (production: revert path and kill switch verified)"
    return (
        f"{run.label} started by {mention(actor)}{' as a dry run' if fault.name == DRY_RUN_ADAPTER else ''}: "
        f"injecting {experiment.fault.adapter} for up to {_seconds(experiment.max_duration.total_seconds())}. "
        f"Stop conditions: {conditions}, probed every {_seconds(experiment.probe_interval.total_seconds())}. "
        f"Preflight {check}: {preflight.detail}"
    )


def _revert_text(report: RevertReport) -> str:
    if not report.errors:
        return "Nothing left to revert."
    if report.ok:
        return "Fault reverted."
    return f"REVERT FAILED: {'; '.join(report.failures())}. Follow the manual rollback steps (alert posted)."


def _revert_alert(plan: RevertPlan, report: RevertReport, attempts: int) -> str:
    # No "<!here>" here: Notifier.alert is loud by contract and the Slack publisher adds the mention.
    return (
        f"{run_label(plan.run_id)}: the fault could NOT be reverted after {attempts} attempts "
        f"({'; '.join(report.failures())}). Roll it back by hand now:\n{plan.rollback_steps}"
    )


def _seconds(value: float) -> str:
    seconds = int(value)
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _message(exc: BaseException) -> str:
    if isinstance(exc, AdapterError | DomainError):
        return exc.message
    return str(exc) or type(exc).__name__
