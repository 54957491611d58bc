"""Rollbacks (what must be undone for a run's faults) and where they are kept: memory, Redis mirror, database.

A ``Rollback`` is kept in this process's memory and mirrored in Redis the moment a handle is persisted, so
an abort can revert even while the database does not answer. The database stays the source of truth: an
abort reads it first and uses the copies only when it misses ``READ_DEADLINE_SECONDS``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select

from bot.catalogue.models import Experiment
from bot.engine import wording
from bot.engine.coordination import Coordination
from bot.engine.errors import AbortImpossible
from bot.engine.outage import DB_UNAVAILABLE
from bot.engine.workers import Workers
from bot.errors import IllegalTransition
from bot.records import service as records
from bot.records.models import FaultRecord
from bot.runs import service as runs
from bot.runs.core import RunCore
from bot.runs.models import Run, RunState
from bot.words import Words

log = logging.getLogger(__name__)

READ_DEADLINE_SECONDS = 0.5  # an abort waits this long for the database before using its copies
READ_WORKERS = 8
_MISSED: tuple[type[Exception], ...] = (FutureTimeout, *DB_UNAVAILABLE)  # too slow, or unreachable


@dataclass(frozen=True)
class FaultTarget:
    """One fault to revert: the catalogue entry's adapter and params (``${VAR}`` unresolved), whether it was
    a rehearsal, and the persisted handle."""

    fault_id: int | None
    adapter: str
    params: dict[str, Any]
    handle: dict[str, Any]
    dry_run: bool = False


@dataclass(frozen=True)
class Rollback:
    """Everything needed to revert a run's faults without the database (also mirrored in Redis)."""

    run_id: int
    rollback_steps: str
    rto_seconds: float
    targets: tuple[FaultTarget, ...] = ()

    def with_target(self, target: FaultTarget) -> Rollback:
        others = tuple(t for t in self.targets if t.fault_id != target.fault_id)
        return replace(self, targets=(*others, target))

    def emptied(self) -> Rollback:
        return replace(self, targets=())

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "rollback_steps": self.rollback_steps,
            "rto_seconds": self.rto_seconds,
            "targets": [vars(target) for target in self.targets],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Rollback:
        targets = tuple(FaultTarget(**target) for target in raw.get("targets", []))
        return cls(int(raw["run_id"]), str(raw["rollback_steps"]), float(raw["rto_seconds"]), targets)


def rollback_of(run: Run, faults: Sequence[FaultRecord]) -> Rollback:
    """A run's rollback rebuilt from its fault records (a new process after a crash does this)."""
    experiment = Experiment.model_validate(run.experiment)
    fault = experiment.fault
    targets = tuple(FaultTarget(f.id, fault.adapter, dict(fault.params), dict(f.handle), run.dry_run) for f in faults)
    return Rollback(run.id, run.rollback_steps, experiment.rto.total_seconds(), targets)


class RollbackStore:
    """This process's copies of rollbacks, their Redis mirror, and reads from the database under a deadline."""

    def __init__(self, core: RunCore, coordination: Coordination) -> None:
        self.core = core
        self.db = core.db
        self.coordination = coordination
        self._lock = threading.Lock()
        self._kept: dict[int, Rollback] = {}
        self._reads = Workers(READ_WORKERS, "chaosbot-read")

    def keep(self, rollback: Rollback) -> Rollback:
        """Keep (and mirror) a rollback, replacing the run's previous one."""
        with self._lock:
            self._kept[rollback.run_id] = rollback
        self.coordination.mirror_handles(rollback.run_id, rollback.to_json())
        return rollback

    def reverted(self, rollback: Rollback) -> None:
        """All its faults are reverted: keep the run (its RTO, its steps) with nothing left to undo."""
        with self._lock:
            kept = rollback.run_id in self._kept
            if kept:
                self._kept[rollback.run_id] = rollback.emptied()
        if kept:
            self.coordination.mirror_handles(rollback.run_id, rollback.emptied().to_json())

    def forget(self, run_id: int, *, mirror: bool = True) -> None:
        with self._lock:
            self._kept.pop(run_id, None)
        if mirror:
            self.coordination.forget_handles(run_id)

    def known(self) -> set[int]:
        with self._lock:
            return set(self._kept)

    def copy(self, run_id: int) -> Rollback | None:
        """This process's copy, else the Redis mirror's."""
        with self._lock:
            kept = self._kept.get(run_id)
        if kept is not None:
            return kept
        mirrored = self.coordination.mirrored_handles(run_id)
        return Rollback.from_json(mirrored) if mirrored else None

    def stored(self, run_id: int) -> Rollback:
        """From the database; raises ``IllegalTransition`` (saying how it ended) unless the run is running."""
        with self.db.transaction() as session:
            run = runs.get(session, run_id=run_id)
            if run.run_state is not RunState.RUNNING:
                raise IllegalTransition(self._not_running(run))
            return rollback_of(run, records.unreverted_faults(session, run_ids=[run_id]))

    def current(self, run_id: int) -> Rollback:
        """A copy when there is one (no database read), else the database's."""
        return self.copy(run_id) or self.stored(run_id)

    def for_abort(self, run_id: int) -> Rollback:
        """The database's, unless it misses the read deadline or is down: then a copy (or ``AbortImpossible``)."""
        future = self._reads.submit(self.stored, run_id)
        try:
            return future.result(timeout=READ_DEADLINE_SECONDS)
        except _MISSED as exc:
            copy = self.copy(run_id)
            if copy is not None:
                log.warning("database did not answer (%r); reverting run %s from copied handles", exc, run_id)
                return copy
            if isinstance(exc, FutureTimeout):
                return future.result()  # slow, not down, and no copy: the database is all we have
            raise AbortImpossible(wording.cannot_abort_blind(run_id)) from exc

    def for_abort_all(self, run_ids: Sequence[int]) -> dict[int, Rollback | Words]:
        """``for_abort`` of many runs in one read: each run's rollback, or why it cannot be aborted."""
        future = self._reads.submit(self._stored_all, run_ids)
        try:
            return future.result(timeout=READ_DEADLINE_SECONDS)
        except _MISSED as exc:
            log.warning("database did not answer (%r); reverting every run from copied handles", exc)
            copies = {run_id: self.copy(run_id) for run_id in run_ids}
            stored: dict[int, Rollback | Words] = {}
            if isinstance(exc, FutureTimeout) and None in copies.values():
                with contextlib.suppress(*DB_UNAVAILABLE):  # slow, not down: for the runs with no copy
                    stored = future.result()
            return {
                run_id: copies[run_id] or stored.get(run_id) or wording.cannot_abort_blind(run_id) for run_id in run_ids
            }

    def _stored_all(self, run_ids: Sequence[int]) -> dict[int, Rollback | Words]:
        with self.db.transaction() as session:
            found = {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(run_ids)))}
            faults: dict[int, list[FaultRecord]] = {}
            for fault in records.unreverted_faults(session, run_ids=run_ids):
                faults.setdefault(fault.run_id, []).append(fault)
            return {
                run_id: rollback_of(run, faults.get(run_id, []))
                if run.run_state is RunState.RUNNING
                else self._not_running(run)
                for run_id, run in found.items()
            }

    def running(self) -> list[int]:
        """Running run ids: the database's within the deadline, else every run with a copy."""
        future = self._reads.submit(self._running_from_db)
        try:
            return future.result(timeout=READ_DEADLINE_SECONDS)
        except _MISSED:
            return sorted(self.known() | set(self.coordination.mirrored_runs()))

    def _running_from_db(self) -> list[int]:
        with self.db.transaction() as session:
            return [run.id for run in records.running_runs(session)]

    def _not_running(self, run: Run) -> Words:
        if not run.run_state.is_final:
            return wording.not_running(run.label, run.state)
        return self.core.queries.ended_sentence(run)

    def close(self) -> None:
        """Refuse new reads; a read in flight gets ``READ_DEADLINE_SECONDS`` to finish."""
        self._reads.close(deadline_seconds=READ_DEADLINE_SECONDS)
