"""A running run's progress, read from the database so any replica can render it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.catalogue.models import Experiment
from bot.catalogue.thresholds import threshold_text
from bot.records import service as records
from bot.records.models import FaultRecordState, Outcome
from bot.runs.models import Run, RunState
from storage.db import Database


class ProgressPhase(StrEnum):
    """Where a running run is: its fault prepared (starting), injected (fault), reverted (recovery)."""

    STARTING = "starting"
    FAULT = "fault"
    RECOVERY = "recovery"


@dataclass(frozen=True)
class ConditionProgress:
    """The latest sample of one stop condition (value None: not sampled yet, or the probe errored)."""

    name: str
    threshold: str
    value: float | None
    ok: bool | None
    detail: str
    at: datetime | None


@dataclass(frozen=True)
class Progress:
    """``phase``: see ``ProgressPhase``."""

    run_id: int
    phase: ProgressPhase
    elapsed: timedelta
    max_duration: timedelta
    rto: timedelta
    dry_run: bool
    conditions: tuple[ConditionProgress, ...]


def read_progress(db: Database, run_id: int, now: Callable[[], datetime]) -> Progress | None:
    """Progress of a running run; None when the run is not running (or does not exist)."""
    with db.transaction() as session:
        run = session.get(Run, run_id, populate_existing=True)
        if run is None or run.run_state is not RunState.RUNNING:
            return None
        experiment = Experiment.model_validate(run.experiment)
        faults = records.faults(session, run_id=run_id)
        latest = records.latest_samples(session, run_id=run_id)
        started = next((f.injected_at for f in faults if f.injected_at), None) or run.started_at or now()
        conditions = tuple(
            ConditionProgress(
                name=c.name,
                threshold=threshold_text(c),
                value=latest[c.name].value if c.name in latest else None,
                ok=latest[c.name].ok if c.name in latest else None,
                detail=latest[c.name].detail if c.name in latest else "",
                at=latest[c.name].at if c.name in latest else None,
            )
            for c in experiment.stop_conditions
        )
        return Progress(
            run_id=run_id,
            phase=_phase([f.state for f in faults]),
            elapsed=max(timedelta(0), now() - started),
            max_duration=(
                timedelta(seconds=run.max_duration_seconds) if run.max_duration_seconds else experiment.max_duration
            ),
            rto=experiment.rto,
            dry_run=run.dry_run,
            conditions=conditions,
        )


def _phase(states: list[str]) -> ProgressPhase:
    if not states or FaultRecordState.PREPARED in states:
        return ProgressPhase.STARTING
    if all(state == FaultRecordState.REVERTED for state in states):
        return ProgressPhase.RECOVERY
    return ProgressPhase.FAULT


def read_outcome(db: Database, run_id: int) -> Outcome | None:
    """How a run ended, once the engine has recorded it (what its card shows)."""
    with db.transaction() as session:
        return records.outcome(session, run_id=run_id)
