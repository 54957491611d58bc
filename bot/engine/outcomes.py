"""Recording how a run ended (``OutcomeRecorder``: the final transition and its outcome, in one transaction,
retried if needed) and how a watched run finishes (``Completion``: the maximum duration, the recovery)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from bot.engine import applying, wording
from bot.engine.announcer import Announcer
from bot.engine.endings import Ending
from bot.engine.revert import Reverter
from bot.engine.rollbacks import RollbackStore
from bot.engine.writes import PendingWrites
from bot.errors import IllegalTransition
from bot.words import Words


class OutcomeRecorder:
    """Finish runs with their outcome. A database outage leaves the record to the spool (``PendingWrites``)."""

    def __init__(
        self, writes: PendingWrites, clock: Callable[[], datetime], *, before_end: Callable[[], None] = lambda: None
    ) -> None:
        """``before_end``: stores what must be stored before an end (``Prober.flush``: the batched samples)."""
        self.writes = writes
        self.clock = clock
        self.before_end = before_end

    def finish(self, run_id: int, ending: Ending) -> Words:
        """Record the end; returns nothing to say, or a sentence to append when the record is spooled.

        Raises ``IllegalTransition`` when someone else ended the run first (they announce it, not us).
        """
        self.before_end()  # the retrospective, posted once the end is recorded, reads every sample
        if self.writes.write(applying.run_ended(run_id, ending, self.clock())):
            return Words()
        return wording.record_pending()

    def recovered(self, run_id: int, seconds: float | None) -> None:
        """Record the recovery measured after a stop condition's abort (spooled while the database is down)."""
        self.writes.write_in_order(applying.recovery_measured(run_id, seconds, self.clock()))


class Holding(Protocol):
    """What completion needs from the process holding the run (``Supervisor``)."""

    def stop_renewing(self, run_id: int) -> None: ...
    def let_go(self, run_id: int) -> None: ...


class Completion:
    """A watched run reaching its end: the maximum duration (revert), then the measured recovery (completed)."""

    def __init__(
        self,
        holding: Holding,
        rollbacks: RollbackStore,
        revert: Reverter,
        recorder: OutcomeRecorder,
        announcer: Announcer,
    ) -> None:
        self.holding, self.rollbacks, self.revert = holding, rollbacks, revert
        self.recorder, self.announcer = recorder, announcer

    def end_fault(self, run_id: int) -> bool:
        """Maximum duration reached: revert. False when the revert failed (the run is then marked failed)."""
        self.holding.stop_renewing(run_id)
        rollback = self.rollbacks.current(run_id)
        report = self.revert(rollback)
        if report.ok:
            rto = timedelta(seconds=rollback.rto_seconds)
            self.announcer.tell(run_id, wording.maximum_reached(run_id, rto))
            return True
        ending = Ending.failed(wording.end_revert_failed(report.failures()), rollback.rto_seconds)
        with contextlib.suppress(IllegalTransition):  # aborted meanwhile: that abort told the channel
            pending = self.recorder.finish(run_id, ending)
            self.announcer.tell(run_id, wording.failed(run_id, ending.reason, pending), urgent=True)
        self.holding.let_go(run_id)
        return False

    def complete(
        self, run_id: int, recovery_seconds: float | None, *, watched: bool, evaluated: bool, sampled: bool = True
    ) -> None:
        """Recovery measured (None: it never came back): finish completed with the verdict on the hypothesis.

        ``watched`` False: the run has no stop conditions. ``evaluated`` False: a rehearsal whose stop
        conditions could not be evaluated tested nothing. ``sampled`` False: no sample during the fault.
        """
        try:
            rollback = self.rollbacks.current(run_id)
        except IllegalTransition:  # ended elsewhere meanwhile
            return
        ending = Ending.completed(
            rollback.rto_seconds, recovery_seconds, watched=watched, evaluated=evaluated, sampled=sampled
        )
        with contextlib.suppress(IllegalTransition):  # aborted meanwhile: that abort told the channel
            pending = self.recorder.finish(run_id, ending)
            self.announcer.tell(run_id, wording.completed(run_id, ending.summary or "", pending), urgent=True)
        self.holding.let_go(run_id)
