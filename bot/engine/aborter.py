"""Aborting: one run (from any process), every run (the global kill switch), and resuming after it.

An abort reverts on the caller's thread at once: it never waits for a watcher or a probe in flight, and a
database or Redis outage never holds a revert back (records are written afterwards, retried if needed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from adapters.base import Adapter
from bot.engine import applying, wording
from bot.engine.announcer import Announcer
from bot.engine.coordination import Coordination
from bot.engine.endings import Ending
from bot.engine.outcomes import OutcomeRecorder
from bot.engine.recovery import AfterAbort, Recovering
from bot.engine.revert import Reverter, adapter_for
from bot.engine.rollbacks import Rollback, RollbackStore
from bot.engine.supervisor import Supervisor
from bot.engine.writes import PendingWrites
from bot.errors import DomainError, IllegalTransition
from bot.runs.core import RunCore
from bot.tracing import adapter_call, annotate, carried, span
from bot.words import Words

log = logging.getLogger(__name__)

MAX_PARALLEL_ABORTS = 32


@dataclass(frozen=True)
class AbortResult:
    run_id: int
    reverted: bool
    detail: Words


class Aborter:
    """Aborts runs and engages or releases the kill switch; holds what an abort uses, no more."""

    def __init__(
        self,
        core: RunCore,
        coordination: Coordination,
        supervisor: Supervisor,
        rollbacks: RollbackStore,
        revert: Reverter,
        recorder: OutcomeRecorder,
        announcer: Announcer,
        writes: PendingWrites,
        after_abort: AfterAbort,
    ) -> None:
        self.core, self.coordination, self.supervisor = core, coordination, supervisor
        self.rollbacks, self.revert, self.recorder = rollbacks, revert, recorder
        self.announcer, self.writes, self.after_abort = announcer, writes, after_abort

    def abort(
        self,
        actor: str,
        run_id: int,
        reason: str = "",
        *,
        breach: str | None = None,
        recovering: Recovering | None = None,
    ) -> AbortResult:
        """Revert the run's faults now, then record it aborted (see ``RunEngine.abort``). ``recovering``: a
        stop condition aborted it; once reverted, its recovery is measured as after a completion."""
        with span("engine.abort", run_id=run_id, breach=breach is not None):
            return self._abort(actor, run_id, reason, breach=breach, recovering=recovering)[0]

    def _abort(
        self,
        actor: str,
        run_id: int,
        reason: str,
        *,
        breach: str | None = None,
        recovering: Recovering | None = None,
    ) -> tuple[AbortResult, Rollback]:
        with self.supervisor.aborting(run_id):
            rollback = self.rollbacks.for_abort(run_id)
            report = self.revert(rollback)
            reverted_at = time.monotonic()
            # A fault that is still in has nothing to recover from yet: its alarm is what matters then.
            watch = recovering if recovering is not None and report.ok else None
            limit = watch.limit if watch is not None else None
            ending = Ending.aborted(actor, reason, rollback.rto_seconds, breach=breach, recovery_watch=limit)
            try:
                pending = self.recorder.finish(run_id, ending)
            except IllegalTransition as exc:  # it ended while we were reverting
                self.supervisor.let_go(run_id)
                return AbortResult(run_id, report.ok, Words.of(report.words(), " ", exc.words)), rollback
            detail = Words.of(report.words(), pending)
            self.announcer.tell(run_id, wording.aborted(actor, run_id, reason, detail), urgent=True)
            self.supervisor.let_go(run_id)
            if watch is not None:
                self.after_abort.watch(run_id, watch, reverted_at=reverted_at)
            return AbortResult(run_id, report.ok, detail), rollback

    def abort_all(self, actor: str, reason: str = "") -> list[AbortResult]:
        """Engage the kill switch (database and Redis), abort every running run in parallel, then ``halt_all``."""
        with span("engine.abort_all"):
            return self._abort_all(actor, reason)

    def _abort_all(self, actor: str, reason: str) -> list[AbortResult]:
        self.writes.write(applying.kill_switch_engaged(actor, reason))
        self.coordination.mirror_kill_switch(engaged=True, actor=actor, reason=reason)
        run_ids = self.rollbacks.running()
        annotate(runs=len(run_ids))
        if not run_ids:
            return []
        workers = min(MAX_PARALLEL_ABORTS, len(run_ids))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chaosbot-abort") as pool:
            aborts = [pool.submit(carried(partial(self._abort_quietly, actor, run_id, reason))) for run_id in run_ids]
            outcomes = [abort.result() for abort in aborts]
        self._halt_all([rollback for _, rollback in outcomes if rollback is not None])
        return [result for result, _ in outcomes]

    def resume(self, actor: str) -> bool:
        """Release the global kill switch (approvers only); True when it was engaged."""
        changed = self.core.kill_switch.release(actor)
        mirrored = self.coordination.kill_switch_mirrored()
        self.coordination.mirror_kill_switch(engaged=False, actor=actor)
        return changed or mirrored

    def _abort_quietly(self, actor: str, run_id: int, reason: str) -> tuple[AbortResult, Rollback | None]:
        try:
            with span("engine.abort", run_id=run_id, breach=False):
                return self._abort(actor, run_id, reason)
        except DomainError as exc:  # ended meanwhile, or no handles anywhere
            return AbortResult(run_id, False, exc.words), None

    def _halt_all(self, rollbacks: Sequence[Rollback]) -> None:
        seen: set[str] = set()
        for target in (t for rollback in rollbacks for t in rollback.targets):
            key = f"{target.adapter}:{target.dry_run}:{sorted(target.params.items())}"
            if key in seen:
                continue
            seen.add(key)
            try:
                adapter = adapter_for(target)
                if type(adapter).halt_all is not Adapter.halt_all:
                    adapter_call(target.adapter, "halt_all", adapter.halt_all)(adapter.validate(target.params))
            except Exception:  # halt_all is a best-effort extra; every run was already reverted one by one
                log.exception("halt_all of adapter %s failed", target.adapter)
