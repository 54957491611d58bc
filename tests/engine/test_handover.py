"""Hand-over at shutdown, in process on both databases: adopted by a live replica's sweep (the fault stays on
and watched), or, when the live replica never adopts it, taken back, reverted and aborted before exiting."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.lab import Lab, handed_over, make_experiment


@pytest.fixture
def world(db: Database, lab: Lab, make_world: Callable[..., World]) -> World:
    """Runs of a minute: long enough that only a hand-over or an abort ends them here."""
    return make_world(db, make_experiment(lab, max_duration=60))


def fault_on(world: World) -> bool:
    return world.lab.fault_on


def test_a_handed_over_run_is_adopted_by_the_other_replica_and_still_ends_through_it(world: World) -> None:
    a, b = world.engine(), world.engine()
    run_id = world.approved()
    a.start(OWNER, run_id)

    stopping = handed_over(a, b, run_id)

    assert not stopping.is_alive() and a.running() == []
    assert world.run(run_id).max_duration_seconds == 60
    assert world.lab.fault_on and world.run(run_id).run_state is RunState.RUNNING
    assert f"RUN-{run_id} is now watched by {b.holder}: {a.holder} shut down" in world.events(run_id)
    assert b.abort(OWNER, run_id, "seen enough").reverted
    assert not fault_on(world) and world.run(run_id).run_state is RunState.ABORTED


def test_a_run_nobody_adopts_in_time_is_reverted_and_aborted_before_exit(world: World) -> None:
    a, silent = world.engine(), world.engine()
    run_id = world.approved()
    a.start(OWNER, run_id)
    silent.heartbeat()  # alive in the registry, but its sweep never runs

    a.shut_down(handover_seconds=0.5)

    assert not world.lab.fault_on
    run = world.run(run_id)
    assert run.run_state is RunState.ABORTED and run.end_reason == "chaosbot was shut down"


def test_alone_a_shutdown_reverts_and_aborts(world: World) -> None:
    alone = world.engine()
    run_id = world.approved()
    alone.start(OWNER, run_id)
    alone.heartbeat()

    alone.shut_down()

    assert not world.lab.fault_on and world.run(run_id).end_reason == "chaosbot was shut down"
    assert "handing" not in world.events(run_id)
