"""Reads and writes of a run's records: fault handles, measurements and outcomes.

Each function works inside the caller's session (one ``Database.transaction()``), so a caller decides what
is atomic. The engine writes; the retrospectives, the reports and the alarms read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from adapters.base import FaultHandle
from bot.records.models import FaultRecord, FaultRecordState, Measurement, MeasurementPhase, Outcome
from bot.runs.models import Run, RunState


class Sampled(Protocol):
    """One probe result as stored (the engine's ``Sample``)."""

    @property
    def condition(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def ok(self) -> bool: ...
    @property
    def detail(self) -> str: ...


def add_fault(session: Session, *, run_id: int, handle: FaultHandle) -> int:
    """Persist a prepared handle (before the backend is touched); returns the fault id."""
    record = FaultRecord(
        run_id=run_id, adapter=handle.adapter, handle=handle.to_json(), state=FaultRecordState.PREPARED.value
    )
    session.add(record)
    session.flush()
    return record.id


def fault_injected(session: Session, *, fault_id: int, handle: FaultHandle, at: datetime) -> None:
    record = session.get_one(FaultRecord, fault_id)
    record.handle, record.state, record.injected_at = handle.to_json(), FaultRecordState.INJECTED.value, at
    record.expires_at = handle.expires_at


def fault_reverted(session: Session, *, fault_id: int, at: datetime) -> None:
    record = session.get_one(FaultRecord, fault_id)
    record.state, record.reverted_at, record.last_error = FaultRecordState.REVERTED.value, at, None


def fault_failed(session: Session, *, fault_id: int, error: str) -> None:
    record = session.get_one(FaultRecord, fault_id)
    record.state, record.last_error = FaultRecordState.FAILED.value, error


def revert_steps_taken(session: Session, *, fault_id: int, steps: list[dict[str, Any]]) -> None:
    """What the latest revert of a fault did, step by step (``RevertStep.to_json``: no secret values)."""
    session.get_one(FaultRecord, fault_id).revert_steps = steps


def faults(session: Session, *, run_id: int) -> list[FaultRecord]:
    return list(session.scalars(select(FaultRecord).where(FaultRecord.run_id == run_id).order_by(FaultRecord.id)))


def unreverted_faults(session: Session, *, run_ids: Iterable[int]) -> list[FaultRecord]:
    """Faults of these runs that may still be active (prepared, injected, or a revert that failed)."""
    query = (
        select(FaultRecord)
        .where(FaultRecord.run_id.in_(list(run_ids)), FaultRecord.state != FaultRecordState.REVERTED.value)
        .order_by(FaultRecord.id)
    )
    return list(session.scalars(query))


def running_runs(session: Session) -> list[Run]:
    return list(session.scalars(select(Run).where(Run.state == RunState.RUNNING.value).order_by(Run.id)))


def add_samples(
    session: Session, *, run_id: int, phase: MeasurementPhase, samples: Iterable[Sampled], at: datetime
) -> None:
    for sample in samples:
        session.add(
            Measurement(
                run_id=run_id,
                condition=sample.condition,
                phase=phase.value,
                at=at,
                value=sample.value,
                ok=sample.ok,
                detail=sample.detail,
            )
        )


def latest_samples(session: Session, *, run_id: int) -> dict[str, Measurement]:
    """The newest measurement of each condition of a run."""
    newest = (
        select(func.max(Measurement.id)).where(Measurement.run_id == run_id).group_by(Measurement.condition)
    ).scalar_subquery()
    rows = session.scalars(select(Measurement).where(Measurement.id.in_(newest)))
    return {row.condition: row for row in rows}


def measurements(session: Session, *, run_id: int, phase: MeasurementPhase | str | None = None) -> list[Measurement]:
    query = select(Measurement).where(Measurement.run_id == run_id).order_by(Measurement.id)
    if phase is not None:
        query = query.where(Measurement.phase == str(phase))
    return list(session.scalars(query))


def save_outcome(session: Session, *, run_id: int, at: datetime, **fields: Any) -> None:
    """Insert or replace the run's outcome (result, hypothesis_held, recovery_seconds, rto_seconds, breach, summary)."""
    outcome = session.get(Outcome, run_id)
    if outcome is None:
        session.add(Outcome(run_id=run_id, recorded_at=at, **fields))
        return
    for name, value in fields.items():
        setattr(outcome, name, value)
    outcome.recorded_at = at


def recovery_measured(session: Session, *, run_id: int, seconds: float | None, at: datetime) -> None:
    """The recovery after a stop condition's abort was measured (None: not back within the watch)."""
    row = session.get(Outcome, run_id)
    if row is not None:
        row.recovery_seconds, row.recovery_watch_until = seconds, at


def recovery_settled(now: datetime) -> ColumnElement[bool]:
    """Runs with no outcome, or whose recovery is not being measured any more (for retrospective sweeps)."""
    return or_(Outcome.recovery_watch_until.is_(None), Outcome.recovery_watch_until <= now)


def outcome(session: Session, *, run_id: int) -> Outcome | None:
    return session.get(Outcome, run_id, populate_existing=True)
