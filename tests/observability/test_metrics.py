"""/metrics counts runs per state at scrape time, per web app, and never reports a database outage as zero runs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from sqlalchemy.exc import OperationalError

from bot.observability import REVERTS, metrics_registry
from bot.runs.models import Run, RunState
from storage.db import Database, utcnow


@pytest.fixture
def sqlite_db_copy(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "other.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


def add_run(db: Database, state: RunState) -> None:
    with db.transaction() as session:
        session.add(
            Run(
                experiment_id="CE-01",
                experiment={},
                experiment_hash="x",
                environment="staging",
                owner="owen",
                planned_start=utcnow(),
                rollback_steps="1. Undo.",
                state=state.value,
            )
        )


def scrape(db: Database) -> str:
    return generate_latest(metrics_registry(db)).decode()


def test_runs_are_counted_per_state_with_the_process_metrics(db: Database) -> None:
    add_run(db, RunState.RUNNING)
    add_run(db, RunState.RUNNING)
    add_run(db, RunState.COMPLETED)
    REVERTS.labels("http").inc(0)

    text = scrape(db)

    assert 'chaosbot_runs{state="running"} 2.0' in text and 'chaosbot_runs{state="completed"} 1.0' in text
    assert "chaosbot_runs_count_ok 1.0" in text and "chaosbot_reverts_total" in text


def test_two_web_apps_in_one_process_each_count_their_own_database(db: Database, sqlite_db_copy: Database) -> None:
    add_run(db, RunState.RUNNING)
    assert 'chaosbot_runs{state="running"} 1.0' in scrape(db)
    assert 'chaosbot_runs{state="running"}' not in scrape(sqlite_db_copy)


def test_a_database_outage_is_no_sample_and_a_zero_ok_gauge(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    add_run(db, RunState.RUNNING)

    def refuse():  # type: ignore[no-untyped-def]
        raise OperationalError("SELECT", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(db.engine, "connect", refuse)
    text = scrape(db)

    assert "chaosbot_runs{" not in text and "chaosbot_runs_count_ok 0.0" in text
