"""The engine's records as data (so they can wait in the spool) and how each is written, exactly once.

Each kind is written in one transaction together with its id in ``spool_applied``; a record whose id is
already there was written before (perhaps by a commit whose answer was lost, or by an interrupted replay)
and is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.base import FaultHandle, RevertStep
from bot.engine.endings import Ending
from bot.engine.models import SpoolApplied
from bot.engine.spool import SpoolRecord
from bot.records import service as records
from bot.records.models import FaultRecord, FaultRecordState
from bot.runs.core import RunCore
from bot.runs.models import Run
from bot.vocabulary import run_label

log = logging.getLogger(__name__)

FAULT_INJECTED = "fault_injected"
FAULTS_REVERTED = "faults_reverted"
RUN_ENDED = "run_ended"
RECOVERY_MEASURED = "recovery_measured"
KILL_SWITCH_ENGAGED = "kill_switch_engaged"


def fault_injected(run_id: int, fault_id: int, handle: FaultHandle, at: datetime) -> SpoolRecord:
    data = {"fault_id": fault_id, "handle": handle.to_json(), "at": at.isoformat()}
    return SpoolRecord(FAULT_INJECTED, data, f"the inject of {run_label(run_id)}: {handle}")


def faults_reverted(
    run_id: int,
    errors: Mapping[int | None, str | None],
    at: datetime,
    steps: Mapping[int | None, Sequence[RevertStep]] | None = None,
) -> SpoolRecord:
    faults = [[fault_id, error] for fault_id, error in errors.items() if fault_id is not None]
    done = {
        str(fault_id): [step.to_json() for step in made]
        for fault_id, made in (steps or {}).items()
        if fault_id is not None
    }
    return SpoolRecord(
        FAULTS_REVERTED,
        {"faults": faults, "steps": done, "at": at.isoformat()},
        f"the revert of {run_label(run_id)} {dict(errors)}",
    )


def run_ended(run_id: int, ending: Ending, at: datetime) -> SpoolRecord:
    data = {
        "run_id": run_id,
        "actor": ending.actor,
        "reason": ending.reason,
        "outcome": ending.outcome(),
        "at": at.isoformat(),
    }
    return SpoolRecord(RUN_ENDED, data, f"the end of {run_label(run_id)} ({ending.result.value}: {ending.reason})")


def recovery_measured(run_id: int, seconds: float | None, at: datetime) -> SpoolRecord:
    data = {"run_id": run_id, "seconds": seconds, "at": at.isoformat()}
    return SpoolRecord(RECOVERY_MEASURED, data, f"the recovery of {run_label(run_id)} after its abort ({seconds})")


def kill_switch_engaged(actor: str, reason: str) -> SpoolRecord:
    return SpoolRecord(KILL_SWITCH_ENGAGED, {"actor": actor, "reason": reason}, f"engaging the kill switch ({reason})")


class RecordWriter:
    """Writes records (``PendingWrites``'s ``apply``). Raises what the database raises; ``IllegalTransition``
    when a run's end cannot be recorded because the run already ended otherwise."""

    def __init__(self, core: RunCore, on_ended: Callable[[int], None] | None = None) -> None:
        self.core = core
        self.db = core.db
        # Told once for each run whose record this process completed (e.g. to post its retrospective): at its
        # end, or when a stop condition aborted it, at the recovery measured after the revert.
        self.on_ended = on_ended

    def __call__(self, record: SpoolRecord) -> None:
        if self._applied(record):
            return
        if record.kind == RUN_ENDED:
            self._end(record)
        elif record.kind == RECOVERY_MEASURED:
            self._recovered(record)
        elif record.kind == KILL_SWITCH_ENGAGED:
            self.core.kill_switch.engage(str(record.data["actor"]), str(record.data["reason"]))
            self._mark_alone(record)
        else:
            with self.db.transaction() as session:
                self._write_fault(session, record)
                _mark(session, record)

    def _applied(self, record: SpoolRecord) -> bool:
        with self.db.transaction() as session:
            return session.get(SpoolApplied, record.id) is not None

    def _write_fault(self, session: Session, record: SpoolRecord) -> None:
        data, at = record.data, datetime.fromisoformat(str(record.data["at"]))
        if record.kind == FAULT_INJECTED:
            fault = session.get_one(FaultRecord, int(data["fault_id"]))
            if fault.fault_state is FaultRecordState.PREPARED:  # replayed late: never undo a revert recorded since
                records.fault_injected(session, fault_id=fault.id, handle=FaultHandle.from_json(data["handle"]), at=at)
            return
        if record.kind != FAULTS_REVERTED:
            raise ValueError(f"unknown spool record kind {record.kind!r}")
        steps = data.get("steps") or {}  # absent from records spooled before steps were kept
        for fault_id, error in data["faults"]:
            if error is None:
                records.fault_reverted(session, fault_id=int(fault_id), at=at)
            else:
                records.fault_failed(session, fault_id=int(fault_id), error=str(error))
            if str(fault_id) in steps:
                records.revert_steps_taken(session, fault_id=int(fault_id), steps=steps[str(fault_id)])

    def _end(self, record: SpoolRecord) -> None:
        data = record.data
        run_id, at = int(data["run_id"]), datetime.fromisoformat(str(data["at"]))
        ending = Ending.from_record(str(data["actor"]), str(data["reason"]), dict(data["outcome"]))

        fields = ending.outcome()
        watch = fields.pop("recovery_watch_seconds", None)
        watch_until = at + timedelta(seconds=watch) if watch is not None else None

        def save(session: Session, _run: Run) -> None:
            records.save_outcome(session, run_id=run_id, at=at, recovery_watch_until=watch_until, **fields)
            _mark(session, record)

        self.core.transitions.finish(ending.actor, run_id, ending.result, ending.reason, also=save, at=at)
        if watch_until is None:  # otherwise its record is complete once its recovery is
            self._tell_ended(run_id)

    def _recovered(self, record: SpoolRecord) -> None:
        """The recovery after a stop condition's abort: stored, then the retrospective may be posted."""
        data = record.data
        run_id, at = int(data["run_id"]), datetime.fromisoformat(str(data["at"]))
        seconds = None if data["seconds"] is None else float(data["seconds"])
        with self.db.transaction() as session:
            records.recovery_measured(session, run_id=run_id, seconds=seconds, at=at)
            _mark(session, record)
        self._tell_ended(run_id)

    def _tell_ended(self, run_id: int) -> None:
        if self.on_ended is not None:
            try:
                self.on_ended(run_id)
            except Exception:  # what follows an end must never undo or repeat its record
                log.exception("the run-ended callback failed", extra={"run_id": run_id})

    def _mark_alone(self, record: SpoolRecord) -> None:
        try:
            with self.db.transaction() as session:
                _mark(session, record)
        except IntegrityError:  # marked concurrently
            pass


def _mark(session: Session, record: SpoolRecord) -> None:
    session.add(SpoolApplied(id=record.id, kind=record.kind))
