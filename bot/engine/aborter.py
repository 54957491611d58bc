"""Aborting: one run (from any process), every run (the global kill switch), and resuming after it.

An abort reverts on the caller's thread at once: it never waits for a watcher or a probe in flight, and a
database or Redis outage never holds a revert back (records are written afterwards, retried if needed).

Reverts come first, the bookkeeping after (``RevertsFirst``): recording the faults' states and the run's end,
telling people and letting the run go waits until no other abort's revert is under way, and at most
``BOOKKEEPING`` aborts keep books at once. The bookkeeping is most of an abort's work (each audit event waits
its turn on the chain's head row); with it done in between, the tenth of ten simultaneous aborts waited for
nine runs' records before its own revert, and with a hundred runs ``abort all`` took seconds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
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
from bot.engine.revert import Reverter, RevertReport, adapter_for
from bot.engine.rollbacks import Rollback, RollbackStore
from bot.engine.supervisor import Supervisor
from bot.engine.writes import PendingWrites
from bot.errors import DomainError, IllegalTransition
from bot.runs.core import RunCore
from bot.tracing import adapter_call, annotate, carried, span
from bot.words import Words

log = logging.getLogger(__name__)

MAX_PARALLEL_REVERTS = 32  # abort all: runs reverted at once (each mostly waits for its backend)
BOOKKEEPING = 4  # aborts recording at once: their audit events queue on one row anyway
BOOKKEEPING_PATIENCE_SECONDS = 1.0
QUIET_GAP_SECONDS = 0.02  # simultaneous aborts arrive a few milliseconds apart: let the next one revert first


@dataclass(frozen=True)
class AbortResult:
    run_id: int
    reverted: bool
    detail: Words


@dataclass(frozen=True)
class _Reverted:
    rollback: Rollback
    report: RevertReport
    at: float  # time.monotonic()


class RevertsFirst:
    """The aborts whose reverts are under way. Bookkeeping waits until there are none and none began in the
    last ``gap`` seconds, at most ``patience`` seconds; then at most ``size`` aborts keep books at once."""

    def __init__(
        self, size: int = BOOKKEEPING, patience: float = BOOKKEEPING_PATIENCE_SECONDS, gap: float = QUIET_GAP_SECONDS
    ) -> None:
        self.patience, self.gap = patience, gap
        self._reverting = 0
        self._last_began = 0.0
        self._changed = threading.Condition()
        self._books = threading.BoundedSemaphore(size)

    @contextlib.contextmanager
    def reverting(self, count: int = 1) -> Iterator[None]:
        with self._changed:
            self._reverting += count
            self._last_began = time.monotonic()
        try:
            yield
        finally:
            with self._changed:
                self._reverting -= count
                self._changed.notify_all()

    @contextlib.contextmanager
    def bookkeeping(self) -> Iterator[None]:
        deadline = time.monotonic() + self.patience
        with self._changed:
            while (now := time.monotonic()) < deadline:
                if self._reverting == 0 and now - self._last_began >= self.gap:
                    break
                self._changed.wait(min(self.gap, deadline - now))
        with self._books:
            yield


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
        self.first = RevertsFirst()

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
        with span("engine.abort", run_id=run_id, breach=breach is not None), self.supervisor.aborting(run_id):
            with self.first.reverting():
                reverted = self._revert(self.rollbacks.for_abort(run_id))
            with self.first.bookkeeping():
                return self._record(actor, reason, reverted, breach=breach, recovering=recovering)

    def abort_all(self, actor: str, reason: str = "") -> list[AbortResult]:
        """Engage the kill switch (database and Redis), revert every running run in parallel, then record each,
        then ``halt_all``."""
        with span("engine.abort_all"):
            return self._abort_all(actor, reason)

    def _abort_all(self, actor: str, reason: str) -> list[AbortResult]:
        self.writes.write(applying.kill_switch_engaged(actor, reason))
        self.coordination.mirror_kill_switch(engaged=True, actor=actor, reason=reason)
        run_ids = sorted(self.rollbacks.running())  # in order: two at once never wait for each other's runs
        annotate(runs=len(run_ids))
        if not run_ids:
            return []
        with contextlib.ExitStack() as aborting:
            for run_id in run_ids:  # every run's renewals stop before the first revert
                aborting.enter_context(self.supervisor.aborting(run_id))
            with self.first.reverting(len(run_ids)):
                found = self.rollbacks.for_abort_all(run_ids)
                reverted = self._revert_all([rollback for rollback in found.values() if isinstance(rollback, Rollback)])
            results = self._record_all(actor, reason, found, reverted)
        self._halt_all([outcome.rollback for outcome in reverted.values()])
        return results

    def resume(self, actor: str) -> bool:
        """Release the global kill switch (approvers only); True when it was engaged."""
        changed = self.core.kill_switch.release(actor)
        mirrored = self.coordination.kill_switch_mirrored()
        self.coordination.mirror_kill_switch(engaged=False, actor=actor)
        return changed or mirrored

    def _revert(self, rollback: Rollback) -> _Reverted:
        return _Reverted(rollback, self.revert.revert_only(rollback), time.monotonic())

    def _revert_all(self, rollbacks: Sequence[Rollback]) -> dict[int, _Reverted]:
        if not rollbacks:
            return {}
        workers = min(MAX_PARALLEL_REVERTS, len(rollbacks))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chaosbot-abort") as pool:
            reverts = [pool.submit(carried(partial(self._revert, rollback))) for rollback in rollbacks]
            return {done.rollback.run_id: done for done in (revert.result() for revert in reverts)}

    def _record(
        self,
        actor: str,
        reason: str,
        reverted: _Reverted,
        *,
        breach: str | None = None,
        recovering: Recovering | None = None,
    ) -> AbortResult:
        """After the revert: the faults' states, the run's end, the announcement; then the run is let go."""
        rollback, report = reverted.rollback, reverted.report
        run_id = rollback.run_id
        self.revert.note(rollback, report)
        # A fault that is still in has nothing to recover from yet: its alarm is what matters then.
        watch = recovering if recovering is not None and report.ok else None
        limit = watch.limit if watch is not None else None
        ending = Ending.aborted(actor, reason, rollback.rto_seconds, breach=breach, recovery_watch=limit)
        try:
            pending = self.recorder.finish(run_id, ending)
        except IllegalTransition as exc:  # it ended while we were reverting
            self.supervisor.let_go(run_id)
            return AbortResult(run_id, report.ok, Words.of(report.words(), " ", exc.words))
        detail = Words.of(report.words(), pending)
        self.announcer.tell(run_id, wording.aborted(actor, run_id, reason, detail), urgent=True)
        self.supervisor.let_go(run_id)
        if watch is not None:
            self.after_abort.watch(run_id, watch, reverted_at=reverted.at)
        return AbortResult(run_id, report.ok, detail)

    def _record_all(
        self, actor: str, reason: str, found: dict[int, Rollback | Words], reverted: dict[int, _Reverted]
    ) -> list[AbortResult]:
        def record(run_id: int) -> AbortResult:
            done = reverted.get(run_id)
            if done is None:  # ended meanwhile, or no handles anywhere
                said = found[run_id]
                return AbortResult(run_id, False, said if isinstance(said, Words) else Words())
            try:
                with self.first.bookkeeping():
                    return self._record(actor, reason, done)
            except DomainError as exc:
                return AbortResult(run_id, done.report.ok, exc.words)

        with ThreadPoolExecutor(max_workers=BOOKKEEPING, thread_name_prefix="chaosbot-books") as pool:
            records = [pool.submit(carried(partial(record, run_id))) for run_id in found]
            return [done.result() for done in records]

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
