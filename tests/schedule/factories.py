"""Runs written straight into the table (the scheduler reads only the table), and a recording handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text

from bot.runs.models import Run, RunState
from storage.db import Database

SYDNEY = ZoneInfo("Australia/Sydney")
SCHEDULING_TABLES = ["firings", "freezes", "freeze_feeds"]


def clean(db: Database) -> Database:
    """The shared reset in tests/conftest.py does not know the scheduling tables yet: empty them on PostgreSQL."""
    if db.dialect == "postgresql":
        with db.engine.begin() as connection:
            for table in SCHEDULING_TABLES:
                connection.execute(text(f"DELETE FROM {table}"))
    return db


def add_run(
    db: Database,
    *,
    planned_start: datetime,
    environment: str = "staging",
    state: RunState = RunState.APPROVED,
    auto_start: bool = True,
    owner: str = "oliver",
) -> Run:
    with db.transaction() as session:
        run = Run(
            experiment_id="CE-01",
            experiment={"id": "CE-01"},
            experiment_hash="0" * 64,
            environment=environment,
            owner=owner,
            planned_start=planned_start,
            rollback_steps="1. revert",
            state=state.value,
            auto_start=auto_start,
        )
        session.add(run)
        session.flush()
        return run


def set_run(db: Database, run_id: int, **values: object) -> None:
    with db.transaction() as session:
        run = session.get(Run, run_id)
        assert run is not None
        for name, value in values.items():
            setattr(run, name, value)
        run.version += 1


@dataclass
class RecordingHandler:
    """A FiringHandler that remembers every call; ``failures`` makes the next calls raise."""

    calls: list[tuple[str, int]] = field(default_factory=list)
    failures: int = 0
    start_outcome: str | None = None

    def _maybe_fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("slack is down")

    def notice(self, run: Run) -> None:
        self._maybe_fail()
        self.calls.append(("notice", run.id))

    def auto_start(self, run: Run) -> str | None:
        self._maybe_fail()
        self.calls.append(("auto_start", run.id))
        return self.start_outcome

    def missed(self, run: Run, kind: str) -> None:
        self.calls.append((f"missed:{kind}", run.id))
