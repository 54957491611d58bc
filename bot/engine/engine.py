"""``RunEngine``: the one face the handlers, the console, the scheduler and the runtime talk to.

It composes the pieces and holds no logic of its own:

- ``Starter`` (starter.py): preflight, baseline, inject.
- ``Aborter`` (aborter.py): one run, every run (the kill switch), resume.
- ``OrphanRecovery`` (orphans.py): the dead man's switch.
- ``Supervisor`` (supervisor.py): this process's leases, watchers and fault renewals.
- ``Timetable`` (timetable.py): one thread handing every run's due samples and renewals to their pools.
- ``Prober`` (prober.py): samples stop conditions and stores the measurements.
- ``Completion`` and ``OutcomeRecorder`` (outcomes.py): the maximum duration, the recovery, the recorded end;
  every way a run ends is decided by an ``Ending`` constructor (endings.py).
- ``RollbackStore`` (rollbacks.py), ``Reverter`` (revert.py), ``PendingWrites`` (writes.py); everything said
  to people comes from wording.py.

Each piece is given, in its constructor, only the parts it uses.

Safety rules kept across them: a fault handle is persisted before the backend is touched; an abort reverts
at once on the caller's thread and no outage holds it back; a running run belongs to the process holding its
lease, and when that process dies any replica's ``recover_orphans`` reverts and aborts it; a process that is
shut down (``shut_down``, SIGTERM) hands its runs over to a live replica, which adopts them, or reverts and
aborts them before it exits (shutdown.py); a record the database cannot take waits in the local spool and
is replayed exactly once (writes.py, spool.py, applying.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from bot.alerting.silences import RunSilences
from bot.dashboards.marker import NO_MARKER, FaultWindowMarker
from bot.engine import wording
from bot.engine.aborter import Aborter, AbortResult
from bot.engine.announcer import Announcer
from bot.engine.applying import RecordWriter
from bot.engine.coordination import Coordination
from bot.engine.orphans import OrphanRecovery
from bot.engine.outage import DB_UNAVAILABLE
from bot.engine.outcomes import Completion, OutcomeRecorder
from bot.engine.prober import Prober
from bot.engine.progress import Progress, read_progress
from bot.engine.recovery import AfterAbort, Recovering
from bot.engine.revert import Reverter
from bot.engine.rollbacks import RollbackStore
from bot.engine.shutdown import HANDOVER_SECONDS, Shutdown
from bot.engine.spool import DEFAULT_SPOOL_DIR, Spool, spool_folder
from bot.engine.starter import ANNOUNCE_TIMEOUT_SECONDS, Starter
from bot.engine.supervisor import Supervisor
from bot.engine.timetable import Timetable
from bot.engine.writes import PendingWrites
from bot.notify import Notifier
from bot.runs.core import RunCore
from bot.runs.models import Run
from bot.runs.transitions import FreezeOverride
from storage.db import process_identity, utcnow

__all__ = ["AbortResult", "RunEngine"]

log = logging.getLogger(__name__)

CLOSE_DEADLINE_SECONDS = 5.0
# Renewed every ttl/3 (4 s): a dead controller's lease lapses at most 12 s after its death, and with the
# dead man's switch sweeping every 2 s its fault is reverted within 15 s. Two missed renewals are tolerated.
LEASE_TTL = timedelta(seconds=12)
REPLICA_TTL = timedelta(seconds=15)  # the registry entry outlives three missed heartbeats (every 5 s)


class RunEngine:
    """Runs experiments (see the module docstring).

    ``close()`` stops this process's watchers, renewals and lease renewal *without reverting*: the leases
    lapse and another process (or the next one to start) reverts and aborts those runs via ``recover_orphans``.
    To stop runs deliberately, abort them first, or call ``shut_down()`` (SIGTERM: hand over or revert).
    Records still waiting for the database are replayed until a deadline and stay in the spool after it.
    """

    def __init__(
        self,
        core: RunCore,
        notifier: Notifier,
        coordination: Coordination,
        *,
        holder: str | None = None,
        lease_ttl: timedelta = LEASE_TTL,
        lease_renewal: timedelta | None = None,
        replica_ttl: timedelta = REPLICA_TTL,
        revert_attempts: int = 4,
        http: httpx.Client | None = None,
        clock: Callable[[], datetime] = utcnow,
        writes: PendingWrites | None = None,
        spool_dir: Path | None = None,
        on_ended: Callable[[int], None] | None = None,
        marker: FaultWindowMarker = NO_MARKER,
        silences: RunSilences | None = None,
        announce_timeout: float = ANNOUNCE_TIMEOUT_SECONDS,
    ) -> None:
        """``announce_timeout``: how long a start waits for the chat to take its announcement before it is
        refused (nothing injected)."""
        self.core = core
        self.db = core.db
        self.notifier = notifier
        self.coordination = coordination
        self.holder = holder or process_identity()
        self.clock = clock
        self.replica_ttl = replica_ttl
        self._closed = False
        self._writes = writes or PendingWrites(Spool(spool_folder(spool_dir or DEFAULT_SPOOL_DIR, self.db.url)))
        self._writes.bind(RecordWriter(core, on_ended))
        announcer = self._announcer = Announcer(notifier)
        rollbacks = self._rollbacks = RollbackStore(core, coordination)
        revert = Reverter(
            rollbacks,
            self._writes,
            announcer.notify,
            attempts=revert_attempts,
            clock=clock,
            marker=marker,
            silences=silences,
        )
        self._timetable = Timetable()
        prober = self._prober = Prober(self.db, clock, self._timetable, http=http)
        recorder = self._recorder = OutcomeRecorder(self._writes, clock, before_end=prober.flush)
        self._after_abort = AfterAbort(prober, self._recovered_after_abort)
        self._supervisor = Supervisor(
            core,
            coordination,
            rollbacks,
            prober,
            announcer,
            completion=lambda holding: Completion(holding, rollbacks, revert, recorder, announcer),
            abort=self._abort_for_supervisor,
            timetable=self._timetable,
            holder=self.holder,
            lease_ttl=lease_ttl,
            lease_renewal=lease_renewal,
        )
        self._starter = Starter(
            core,
            self.db,
            coordination,
            self._supervisor,
            prober,
            rollbacks,
            revert,
            recorder,
            announcer,
            self._writes,
            clock=clock,
            marker=marker,
            silences=silences,
            announce_timeout=announce_timeout,
        )
        self._aborter = Aborter(
            core,
            coordination,
            self._supervisor,
            rollbacks,
            revert,
            recorder,
            announcer,
            self._writes,
            self._after_abort,
        )
        self._orphans = OrphanRecovery(
            self.db,
            coordination,
            self._supervisor,
            rollbacks,
            revert,
            recorder,
            announcer,
            clock=clock,
            records_landed=self._writes.landed,
        )

    def _abort_for_supervisor(
        self, actor: str, run_id: int, reason: str, *, breach: str | None = None, recovering: Recovering | None = None
    ) -> AbortResult:
        return self._aborter.abort(actor, run_id, reason, breach=breach, recovering=recovering)

    def _recovered_after_abort(self, run_id: int, seconds: float | None, recovering: Recovering) -> None:
        self._recorder.recovered(run_id, seconds)
        rto = recovering.experiment.rto  # urgent: the run card shows the recovery now
        self._announcer.tell(run_id, wording.recovered_after_abort(run_id, seconds, rto), urgent=True)

    def start(
        self,
        actor: str,
        run_id: int,
        *,
        dry_run: bool = False,
        duration: timedelta | None = None,
        override: FreezeOverride | None = None,
    ) -> Run:
        """Check, inject and start watching a run; returns the running run.

        Raises a ``DomainError`` saying why when a person can do something about it. ``duration`` shortens
        a rehearsal (``dry_run``) below the experiment's maximum; ``override`` starts inside a freeze
        (approvers only, audited with the start).
        """
        return self._starter.start(actor, run_id, dry_run=dry_run, duration=duration, override=override)

    def abort(self, actor: str, run_id: int, reason: str = "") -> AbortResult:
        """Revert the run's faults now (from any process), then record it aborted.

        Reverts from the persisted handles (database; the Redis mirror or this process's copy when the
        database does not answer within ``rollbacks.READ_DEADLINE_SECONDS``), retried with backoff while the
        adapter says the error is retryable. A final failure marks the fault failed and raises
        ``Notifier.alert`` (loud) with the rollback steps. Aborting a run that already ended raises
        ``IllegalTransition``.
        """
        self.core.kill_switch.require_may_abort(actor, run_id)
        return self._aborter.abort(actor, run_id, reason)

    def abort_all(self, actor: str, reason: str = "") -> list[AbortResult]:
        """Engage the global kill switch (database and Redis) first, then abort every running run in parallel,
        then call ``halt_all`` on each adapter involved that supports it."""
        self.core.kill_switch.require_may_abort(actor)
        return self._aborter.abort_all(actor, reason)

    def resume(self, actor: str) -> bool:
        """Release the global kill switch (approvers only); True when it was engaged."""
        return self._aborter.resume(actor)

    def recover_orphans(self) -> list[int]:
        """Revert and abort running runs whose controller died (their lease lapsed); returns their ids."""
        return self._orphans.sweep()

    def running(self) -> list[int]:
        """Run ids this process is watching."""
        return self._supervisor.watching()

    def progress(self, run_id: int) -> Progress | None:
        """Elapsed time, phase and the latest sample of each stop condition (None unless running)."""
        return read_progress(self.db, run_id, self.clock)

    def heartbeat(self) -> None:
        """Say in the replica registry that this process is alive and adopts handed-over runs."""
        if not self._supervisor.closed:
            self.coordination.heartbeat(self.holder, self.replica_ttl)

    def drain(self) -> None:
        """Refuse new starts from now on (a start already under way completes); ``shut_down`` follows."""
        self._supervisor.drain()

    def shut_down(self, *, handover_seconds: float = HANDOVER_SECONDS) -> None:
        """Stop without leaving a fault unwatched (SIGTERM): no new start; each run this process watches is
        handed over to another live replica, which adopts it (not an abort), or, when no replica lives or
        none adopts it within ``handover_seconds``, reverted and aborted ("chaosbot was shut down").
        Then ``close()``."""
        self._supervisor.drain()
        try:
            self.coordination.leave(self.holder)
        except DB_UNAVAILABLE:
            log.warning("could not leave the replica registry; the entry lapses by itself")
        Shutdown(self._supervisor, self.coordination, self._announcer, self._aborter).run(handover_seconds)
        self.close()

    def close(self, *, deadline_seconds: float = CLOSE_DEADLINE_SECONDS) -> None:
        """Stop watchers, renewals and leases (no revert), then the database reads, then replay the spool."""
        if self._closed:
            return
        self._closed = True
        self._supervisor.close()
        self._timetable.close()
        self._after_abort.close()
        self._prober.close()
        self._rollbacks.close()
        self._writes.close(deadline_seconds=deadline_seconds)
