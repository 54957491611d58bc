"""Migration 0003 moves each run's message coordinates to run_messages without losing anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from storage.db import create_db_engine
from storage.migrate import alembic_config, upgrade
from tests.services import scratch_postgres_database

RUN = (
    "INSERT INTO runs (id, experiment_id, experiment, experiment_hash, environment, owner, planned_start,"
    " rollback_steps, notes, state, version, created_at, updated_at, dry_run, channel_id, message_ts)"
    " VALUES (:id, 'CE-01', '{}', 'h', 'staging', 'oliver', :at, '1. undo', '', 'planned', 1, :at, :at, false,"
    " :channel, :ts)"
)
APPROVAL = "INSERT INTO approvals (run_id, role, user_id, at) VALUES (:id, 'stakeholder', 'stella', :at)"
AT = "2026-12-02 10:00:00+00:00"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    with scratch_postgres_database() as url:
        yield url


def test_coordinates_move_to_run_messages_and_back(database_url: str) -> None:
    from alembic import command

    upgrade(database_url, "0002")
    engine = create_db_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(RUN), {"id": 1, "at": AT, "channel": "C0RELIAB", "ts": "1712.0001"})
        connection.execute(text(RUN), {"id": 2, "at": AT, "channel": None, "ts": None})  # never posted
        connection.execute(text(APPROVAL), {"id": 1, "at": AT})
    engine.dispose()

    upgrade(database_url, "0003")

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        moved = connection.execute(text("SELECT run_id, channel_id, message_ts FROM run_messages")).all()
        approvals = connection.execute(text("SELECT run_id, user_id FROM approvals")).all()
        runs = connection.execute(text("SELECT id FROM runs ORDER BY id")).all()
    columns = {column["name"] for column in inspect(engine).get_columns("runs")}
    engine.dispose()
    assert [tuple(row) for row in moved] == [(1, "C0RELIAB", "1712.0001")]
    assert [tuple(row) for row in approvals] == [(1, "stella")]  # rebuilding runs must not cascade
    assert [row[0] for row in runs] == [1, 2]
    assert not {"channel_id", "message_ts"} & columns

    command.downgrade(alembic_config(database_url), "0002")
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        back = connection.execute(text("SELECT id, channel_id, message_ts FROM runs ORDER BY id")).all()
    engine.dispose()
    assert [tuple(row) for row in back] == [(1, "C0RELIAB", "1712.0001"), (2, None, None)]
