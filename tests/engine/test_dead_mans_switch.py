"""The dead man's switch: a run whose controlling process dies is reverted by another process; leases keep
two processes from running the same run."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from bot.engine import DatabaseCoordination
from bot.errors import IllegalTransition
from bot.records import service as records
from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.lab import Lab, fault_is_on, killed_controller, make_experiment, wait_for
from tests.waiting import holds_for, wait_until

TTL = timedelta(seconds=1)


def test_a_run_whose_process_was_killed_is_reverted_by_a_new_process(db: Database, lab: Lab, make_world) -> None:  # type: ignore[no-untyped-def]
    long_run = make_experiment(lab, max_duration=60)
    world: World = make_world(db, long_run)
    run_id = world.approved()
    killed_controller(world.lab, world.db.url, long_run, run_id)
    killed = time.monotonic()
    assert world.lab.fault_on and world.lab.times("revert") == []

    engine = world.engine(lease_ttl=TTL)
    recovered = wait_for(engine.recover_orphans, timeout=5, what="the lapsed lease to be noticed")

    assert recovered == [run_id]
    assert time.monotonic() - killed < TTL.total_seconds() + 1.5
    assert not fault_is_on(world.lab) and len(world.lab.times("revert")) == 1
    run = world.run(run_id)
    assert run.run_state is RunState.ABORTED and (run.end_reason or "").startswith("controller lost")
    with world.db.transaction() as session:
        assert [f.state for f in records.faults(session, run_id=run_id)] == ["reverted"]
    assert "controller lost" in world.events(run_id)
    assert [rid for rid, _ in world.notifier.alerts] == [run_id]
    assert engine.recover_orphans() == []


def test_a_live_lease_keeps_other_processes_away_until_its_holder_stops(db: Database, lab: Lab, make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = make_world(db, make_experiment(lab, max_duration=60))
    holder, other = world.engine(lease_ttl=TTL), world.engine(lease_ttl=TTL)
    run_id = world.approved()
    holder.start(OWNER, run_id)

    with pytest.raises(IllegalTransition, match="already running"):
        other.start(OWNER, run_id)
    # Longer than the TTL: only renewal keeps the lease.
    holds_for(
        lambda: other.recover_orphans() == [] and world.lab.times("revert") == [],
        TTL.total_seconds() * 1.5,
        "the other process kept away by the live lease",
    )

    holder.close()  # stops renewing without reverting
    assert world.lab.fault_on
    recovered = wait_for(other.recover_orphans, timeout=4, what="the lease to lapse after close()")
    assert recovered == [run_id] and not world.lab.fault_on


def test_a_lease_has_one_holder_and_lapses_without_renewal(world: World) -> None:
    coordination = DatabaseCoordination(world.db)
    run_id = world.approved()

    assert coordination.acquire(run_id, "a", TTL)
    assert not coordination.acquire(run_id, "b", TTL)
    assert not coordination.renew(run_id, "b", TTL)
    assert coordination.renew(run_id, "a", TTL)
    assert coordination.expired([run_id]) == []
    wait_until(lambda: coordination.expired([run_id]) == [run_id], TTL.total_seconds() + 0.1, "the lease to lapse")
    assert coordination.acquire(run_id, "b", TTL)
    assert not coordination.renew(run_id, "a", TTL)
