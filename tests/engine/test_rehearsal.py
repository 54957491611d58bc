"""Dry runs rehearse: a probe that cannot be evaluated is recorded but not acted on; a real breach still is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.engine import SteadyStateNotMet
from bot.errors import InvalidInput
from bot.records import service as records
from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.lab import Lab, make_experiment, wait_for

UNSET_PROBE = {
    "name": "portal health",
    "probe": {"kind": "http", "url": "${CHAOSBOT_TEST_UNSET_PORTAL}/healthz", "max_latency_ms": 500},
}


@pytest.fixture
def unset_world(
    sqlite_db: Database, make_world: Callable[..., World], lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> World:
    monkeypatch.delenv("CHAOSBOT_TEST_UNSET_PORTAL", raising=False)
    return make_world(sqlite_db, make_experiment(lab, conditions=[UNSET_PROBE], environments=("staging", "production")))


def test_a_dry_run_starts_and_ends_although_its_probe_cannot_be_evaluated(unset_world: World) -> None:
    engine = unset_world.engine()
    run_id = unset_world.approved()

    run = engine.start(OWNER, run_id, dry_run=True)

    assert run.run_state is RunState.RUNNING and run.dry_run
    assert not unset_world.lab.fault_on  # a rehearsal injects nothing
    wait_for(lambda: unset_world.run(run_id).run_state is RunState.COMPLETED, what="the rehearsal to complete")
    with unset_world.db.transaction() as session:
        samples = records.measurements(session, run_id=run_id)
        outcome = records.outcome(session, run_id=run_id)
    assert samples and all(not s.ok and "CHAOSBOT_TEST_UNSET_PORTAL" in s.detail for s in samples)
    assert outcome is not None and outcome.hypothesis_held is None  # nothing was tested, nothing refuted
    assert "could not be evaluated" in unset_world.events(run_id)


def test_a_real_start_with_a_probe_that_cannot_be_evaluated_is_refused(unset_world: World) -> None:
    engine = unset_world.engine()
    run_id = unset_world.approved()

    with pytest.raises(SteadyStateNotMet, match="CHAOSBOT_TEST_UNSET_PORTAL"):
        engine.start(OWNER, run_id)

    assert unset_world.run(run_id).run_state is RunState.APPROVED
    assert not unset_world.lab.fault_on


def test_a_production_dry_run_still_needs_its_probes(unset_world: World) -> None:
    engine = unset_world.engine()
    run_id = unset_world.approved_in("production")

    with pytest.raises(SteadyStateNotMet):
        engine.start(OWNER, run_id, dry_run=True)


def test_a_dry_run_whose_steady_state_is_really_broken_is_refused(world: World) -> None:
    world.lab.target_status = 503  # the target answers, and it is unhealthy: a breach, not an unknown
    engine = world.engine()
    run_id = world.approved()

    with pytest.raises(SteadyStateNotMet):
        engine.start(OWNER, run_id, dry_run=True)


def test_a_rehearsal_can_be_shorter_than_the_experiment(sqlite_db: Database, make_world, lab: Lab) -> None:  # type: ignore[no-untyped-def]
    world = make_world(sqlite_db, make_experiment(lab, max_duration=60, conditions=[]))
    engine = world.engine()
    run_id = world.approved()

    engine.start(OWNER, run_id, dry_run=True, duration=timedelta(seconds=1))

    assert world.run(run_id).max_duration_seconds == 1
    progress = engine.progress(run_id)
    assert progress is None or progress.max_duration == timedelta(seconds=1)
    wait_for(lambda: world.run(run_id).run_state is RunState.COMPLETED, what="the 1 s rehearsal to complete")


def test_a_real_run_keeps_the_experiments_maximum_and_cannot_be_shortened(world: World) -> None:
    engine = world.engine()
    run_id = world.approved()

    with pytest.raises(InvalidInput, match="Only a rehearsal"):
        engine.start(OWNER, run_id, duration=timedelta(seconds=1))
    with pytest.raises(InvalidInput, match="from 1s to its maximum"):
        engine.start(OWNER, run_id, dry_run=True, duration=timedelta(minutes=10))
    assert world.run(run_id).run_state is RunState.APPROVED and not world.lab.fault_on

    engine.start(OWNER, run_id)
    assert world.run(run_id).max_duration_seconds == 2  # the lab experiment's maximum
