"""Reverts retry only what may succeed on a retry, and trust the backend when it says the fault is gone."""

from __future__ import annotations

from collections.abc import Callable

from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.test_kill_switch import fault_states


def test_a_revert_refused_for_good_is_not_retried_and_alerts_at_once(
    sqlite_db: Database, make_world: Callable[..., World]
) -> None:
    world = make_world(sqlite_db)
    engine = world.engine(revert_attempts=3)
    run_id = world.approved()
    engine.start(OWNER, run_id)
    world.lab.revert_status = 403  # a client error: asking again changes nothing

    result = engine.abort(OWNER, run_id, "stop")

    assert not result.reverted and len(world.lab.times("revert")) == 1
    [(_, alert)] = world.notifier.alerts
    assert "could NOT be reverted after 1 attempt " in str(alert) and "HTTP 403" in str(alert)
    assert fault_states(world, run_id) == ["failed"] and world.run(run_id).run_state is RunState.ABORTED
