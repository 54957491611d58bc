"""Dry runs rehearse: a probe that cannot be evaluated is recorded but not acted on; a real breach still is."""

from __future__ import annotations

import pytest

from bot.engine import SteadyStateNotMet, records
from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.lab import Lab, make_experiment, wait_for

UNSET_PROBE = {
    "name": "portal health",
    "probe": {"kind": "http", "url": "${CHAOSBOT_TEST_UNSET_PORTAL}/healthz", "max_latency_ms": 500},
}


@pytest.fixture
def unset_world(sqlite_db: Database, make_world, lab: Lab, monkeypatch: pytest.MonkeyPatch) -> World:  # type: ignore[no-untyped-def]
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
    assert samples and all(not s.ok and "CHAOSBOT_TEST_UNSET_PORTAL" in s.detail for s in samples)


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
