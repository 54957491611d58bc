"""Closing the engine: a record still waiting for the database is stored, or stays in the spool for the next process."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.lab import wait_for
from tests.engine.test_kill_switch import database_down, fault_states


def test_a_record_pending_at_shutdown_is_stored_once_the_database_is_back(
    sqlite_db: Database,
    make_world: Callable[..., World],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = make_world(sqlite_db)
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)
    database_down(monkeypatch, sqlite_db)
    engine.abort(OWNER, run_id, "db outage drill")
    monkeypatch.undo()

    engine.close()

    assert world.run(run_id).run_state is RunState.ABORTED
    assert fault_states(world, run_id) == ["reverted"]


def test_a_record_that_still_fails_at_shutdown_stays_spooled_and_the_next_process_stores_it(
    sqlite_db: Database,
    make_world: Callable[..., World],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = make_world(sqlite_db)
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)
    database_down(monkeypatch, sqlite_db)
    engine.abort(OWNER, run_id, "db outage drill")

    with caplog.at_level(logging.WARNING):
        engine.close(deadline_seconds=0.3)

    assert any("records stay spooled" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    assert world.run(run_id).run_state is RunState.RUNNING  # not in the database yet: in the spool
    world.engine()  # the next process replays the spool at start
    wait_for(lambda: world.run(run_id).run_state is RunState.ABORTED, what="the spooled end of the run")
    wait_for(lambda: fault_states(world, run_id) == ["reverted"], what="the spooled revert")
    assert world.run(run_id).end_reason == "db outage drill"
