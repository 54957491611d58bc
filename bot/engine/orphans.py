"""The dead man's switch: revert and abort running runs whose controlling process died (its lease lapsed),
and adopt runs that a replica handed over when it shut down (keep watching them; nothing is reverted).

Safe to run in every replica at once: each run is recovered by whoever takes its lease. The rollback is
rebuilt from the fault records alone (adapter, catalogue params, persisted handle), so a new process can
revert what a dead one injected, rehearsals included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from adapters import registry
from adapters.base import FaultHandle
from bot.catalogue.models import Experiment
from bot.engine import wording
from bot.engine.announcer import Announcer
from bot.engine.coordination import Coordination
from bot.engine.endings import Ending
from bot.engine.outcomes import OutcomeRecorder
from bot.engine.revert import Reverter
from bot.engine.rollbacks import RollbackStore, rollback_of
from bot.engine.supervisor import Injected, Supervisor
from bot.errors import IllegalTransition
from bot.records import service as records
from bot.records.models import FaultRecord, FaultRecordState
from bot.runs import service as runs
from bot.runs.models import Run, RunState
from storage.db import Database

log = logging.getLogger(__name__)


class OrphanRecovery:
    """The dead man's switch (see the module docstring); holds what a recovery uses, no more."""

    def __init__(
        self,
        db: Database,
        coordination: Coordination,
        supervisor: Supervisor,
        rollbacks: RollbackStore,
        revert: Reverter,
        recorder: OutcomeRecorder,
        announcer: Announcer,
        *,
        clock: Callable[[], datetime],
        records_landed: Callable[[], bool],
    ) -> None:
        """``records_landed``: True when no record of an outage still waits in the spool (replaying it first)."""
        self.db, self.coordination, self.supervisor = db, coordination, supervisor
        self.rollbacks, self.revert, self.recorder, self.announcer = rollbacks, revert, recorder, announcer
        self.clock, self.records_landed = clock, records_landed

    def sweep(self) -> list[int]:
        """Adopt every handed-over run and recover every orphaned one this process can take the lease of;
        returns the ids of the runs recovered (reverted and aborted)."""
        if self.supervisor.closed:  # shutting down: this process takes nothing on
            return []
        # An abort spooled during a database outage released its run's lease in Redis while the database one
        # lapsed: until its end lands, the run looks orphaned. Judge on the records, never ahead of them.
        if not self.records_landed():
            log.info("dead man's switch waits for the spooled records of a database outage to land")
            return []
        with self.db.transaction() as session:
            running = [run.id for run in records.running_runs(session)]
        mine = self.supervisor.responsible_for()
        expired = self.coordination.expired([r for r in running if r not in mine])
        handed = self.coordination.handed_over(expired) if expired else {}  # read before taking the lease clears it
        recovered = []
        for run_id in expired:
            # Holding the lease (renewed) means a slow revert never lets a second replica start recovering too.
            if not self.supervisor.hold(run_id):
                continue
            if run_id in handed and self._adopt(run_id, handed[run_id]):
                continue
            if self._recover(run_id):
                recovered.append(run_id)
        return recovered

    def _adopt(self, run_id: int, handed_over_by: str) -> bool:
        """Watch a run another replica handed over; False when it cannot be (then it is recovered instead)."""
        with self.db.transaction() as session:
            run = runs.get(session, run_id=run_id)
            faults = records.unreverted_faults(session, run_ids=[run_id])
        if run.run_state is not RunState.RUNNING:
            self.supervisor.let_go(run_id)
            return True
        self.rollbacks.keep(rollback_of(run, faults))
        try:
            adoption = adoption_of(run, faults, self.clock())
        except Exception:  # the watch cannot be rebuilt: reverting is the safe way out
            log.exception("run %s was handed over but cannot be adopted; reverting it", run_id)
            self.rollbacks.forget(run_id, mirror=False)
            return False
        self.supervisor.watch(
            run_id,
            adoption.experiment,
            adoption.injected,
            at=adoption.at,
            rehearsal=run.dry_run and run.environment != "production",
            recovering=adoption.injected is None,
        )
        log.info("adopted run %s handed over by %s", run_id, handed_over_by)
        self.announcer.tell(run_id, wording.adopted(run_id, self.supervisor.holder, handed_over_by), urgent=True)
        return True

    def _recover(self, run_id: int) -> bool:
        try:
            rollback = self.rollbacks.stored(run_id)
        except IllegalTransition:  # ended meanwhile
            self.supervisor.let_go(run_id)
            return False
        report = self.revert(rollback)
        ending = Ending.controller_lost(run_id, rollback.rto_seconds)
        try:
            pending = self.recorder.finish(run_id, ending)
        except IllegalTransition:  # ended meanwhile by someone else
            self.supervisor.let_go(run_id)
            return False
        words = wording.recovered(run_id, ending.reason, report.words(), pending)
        self.announcer.tell(run_id, words, urgent=True)
        self.announcer.alert(run_id, words)
        self.supervisor.let_go(run_id)
        return True


@dataclass(frozen=True)
class Adoption:
    """What watching a handed-over run needs: its experiment (run's own limit), the fault in place (None when
    it was already reverted), and when it went in on this process's ``time.monotonic()`` scale."""

    experiment: Experiment
    injected: Injected | None
    at: float


def adoption_of(run: Run, faults: Sequence[FaultRecord], now: datetime) -> Adoption:
    experiment = Experiment.model_validate(run.experiment)
    if run.max_duration_seconds:
        experiment = experiment.model_copy(update={"max_duration": timedelta(seconds=run.max_duration_seconds)})
    live = [fault for fault in faults if fault.fault_state is not FaultRecordState.FAILED] or list(faults)
    fault = live[-1] if live else None
    since = (fault.injected_at if fault is not None else None) or run.started_at or now
    at = time.monotonic() - max(0.0, (now - since).total_seconds())
    if fault is None:
        return Adoption(experiment, None, at)
    adapter = registry.create(experiment.fault.adapter, dry_run=run.dry_run)
    params = adapter.validate(dict(experiment.fault.params))
    return Adoption(experiment, Injected(adapter, params, FaultHandle.from_json(fault.handle)), at)
