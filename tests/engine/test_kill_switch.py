"""Abort, abort all and the global kill switch: immediate reverts from any replica, whatever else is down."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bot.engine import build_coordination
from bot.errors import IllegalTransition, KillSwitchEngaged, NotPermitted
from bot.records import service as records
from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.lab import http_condition, make_experiment, wait_for
from tests.services import REDIS_TEST_URL

REVERT_BUDGET = 1.0  # seconds from the abort request to the revert call arriving (the benchmark target)


def fault_states(world: World, run_id: int) -> list[str]:
    with world.db.transaction() as session:
        return [fault.state for fault in records.faults(session, run_id=run_id)]


def test_abort_during_a_slow_probe_reverts_at_once(sqlite_db: Database, make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(sqlite_db)
    slow_probe = http_condition(world.lab, timeout=5.0)
    world = make_world(sqlite_db, make_experiment(world.lab, max_duration=30, conditions=[slow_probe]))
    world.lab.when_faulted = "hang"
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)
    wait_for(lambda: world.lab.in_flight > 0, what="a probe hanging on the target")

    asked = time.monotonic()
    result = engine.abort(OWNER, run_id, "too slow")
    answered = time.monotonic()

    assert result.reverted and str(result.detail).startswith("Fault reverted")
    assert world.lab.times("revert")[0] - asked < 0.5, "the revert waited for the probe in flight"
    assert answered - asked < REVERT_BUDGET
    assert world.run(run_id).run_state is RunState.ABORTED and world.run(run_id).end_reason == "too slow"
    assert engine.running() == []


def test_abort_from_another_replica_reverts_and_stops_the_first_watcher(world: World) -> None:
    first, second = world.engine(), world.engine()
    run_id = world.approved()
    first.start(OWNER, run_id)
    assert first.running() == [run_id] and second.running() == []
    progress = second.progress(run_id)  # any replica renders progress from the database
    assert progress is not None and progress.phase == "fault"

    asked = time.monotonic()
    result = second.abort("rita", run_id, "seen enough")

    assert result.reverted and world.lab.times("revert")[0] - asked < REVERT_BUDGET
    assert not world.lab.fault_on
    wait_for(lambda: first.running() == [], timeout=3, what="the first replica's watcher to stop")
    run = world.run(run_id)
    assert run.run_state is RunState.ABORTED and run.ended_by == "rita"
    assert fault_states(world, run_id) == ["reverted"]
    assert len(world.lab.times("revert")) == 1  # the first replica did not revert again


def test_aborting_a_run_that_ended_says_how_it_ended(sqlite_db: Database, make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(sqlite_db)
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)
    engine.abort(OWNER, run_id, "first")

    with pytest.raises(IllegalTransition, match=r"RUN-\d+ already ended: aborted by @owen at .* \(first\)\."):
        engine.abort("rita", run_id)


def test_two_aborts_of_one_run_at_once_revert_it_once_and_the_second_is_told_how_it_ended(world: World) -> None:
    """SIGTERM aborting a run while its stop condition breaches, or two people pressing Abort: one revert."""
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)
    world.lab.revert_gate = threading.Event()

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(engine.abort, OWNER, run_id, "first")
        wait_for(lambda: len(world.lab.times("revert")) == 1, what="the first abort's revert on its way")
        second = pool.submit(engine.abort, "rita", run_id, "second")
        world.lab.revert_gate.set()
        assert first.result(timeout=10).reverted
        with pytest.raises(IllegalTransition, match=r"already ended: aborted by @owen"):
            second.result(timeout=10)

    assert len(world.lab.times("revert")) == 1
    assert world.run(run_id).end_reason == "first"


def test_abort_all_engages_the_kill_switch_until_an_approver_resumes(world: World) -> None:
    engine = world.engine()
    running = [world.approved() for _ in range(4)]
    later = world.approved()
    for run_id in running:
        engine.start(OWNER, run_id)

    asked = time.monotonic()
    results = engine.abort_all("sam", "incident in progress")

    assert sorted(r.run_id for r in results) == running and all(r.reverted for r in results)
    reverts = world.lab.times("revert")
    assert len(reverts) == 4 and max(reverts) - asked < REVERT_BUDGET
    assert world.core.kill_switch.engaged()
    assert {world.run(r).run_state for r in running} == {RunState.ABORTED}
    with pytest.raises(KillSwitchEngaged, match="/chaos resume"):
        engine.start(OWNER, later)
    with pytest.raises(NotPermitted):
        engine.resume(OWNER)
    assert engine.resume("rita") is True
    assert engine.start(OWNER, later).run_state is RunState.RUNNING
    engine.abort(OWNER, later)


def test_a_revert_that_keeps_failing_alerts_the_channel_with_the_rollback_steps(
    sqlite_db: Database,
    make_world: Callable[..., World],
) -> None:
    world = make_world(sqlite_db)
    engine = world.engine(revert_attempts=3)
    run_id = world.approved()
    engine.start(OWNER, run_id)
    world.lab.revert_status = 500

    result = engine.abort(OWNER, run_id, "stop")

    assert not result.reverted and "REVERT FAILED" in str(result.detail)
    assert len(world.lab.times("revert")) == 3
    [(alert_run, words)] = world.notifier.alerts
    alert = str(words)
    assert alert_run == run_id and alert.startswith(f"RUN-{run_id}: the fault could NOT")  # the publisher adds @here
    assert "could NOT be reverted after 3 attempts" in alert and "HTTP 500" in alert
    assert "1. Switch the lab toggle off by hand.\n2. Tell the lab owner." in alert
    assert fault_states(world, run_id) == ["failed"]
    assert world.run(run_id).run_state is RunState.ABORTED


def test_abort_works_while_redis_is_down(sqlite_db: Database, make_world, closed_port: int) -> None:  # type: ignore[no-untyped-def]
    world = make_world(sqlite_db)
    coordination = build_coordination(f"redis://127.0.0.1:{closed_port}/0", sqlite_db)
    engine = world.engine(coordination)
    run_id = world.approved()
    engine.start(OWNER, run_id)
    assert not coordination.expired([run_id])  # the lease fell back to the database

    asked = time.monotonic()
    result = engine.abort(OWNER, run_id)

    assert result.reverted and world.lab.times("revert")[0] - asked < REVERT_BUDGET
    assert world.run(run_id).run_state is RunState.ABORTED


def database_down(monkeypatch: pytest.MonkeyPatch, db: Database) -> None:
    def refuse():  # type: ignore[no-untyped-def]
        raise OperationalError("BEGIN", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(db, "transaction", refuse)


def test_abort_reverts_from_cached_handles_while_the_database_is_down(
    sqlite_db: Database,
    make_world: Callable[..., World],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = make_world(sqlite_db)
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)
    database_down(monkeypatch, sqlite_db)

    result = engine.abort(OWNER, run_id, "db outage drill")

    assert result.reverted and not world.lab.fault_on
    assert "database is unreachable" in str(result.detail)
    monkeypatch.undo()
    wait_for(lambda: world.run(run_id).run_state is RunState.ABORTED, what="the record written after the outage")
    wait_for(lambda: fault_states(world, run_id) == ["reverted"], what="the fault record")


@pytest.mark.redis
def test_another_replica_reverts_from_the_redis_mirror_while_the_database_is_down(
    sqlite_db: Database,
    make_world: Callable[..., World],
    redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = make_world(sqlite_db)
    first = world.engine(build_coordination(REDIS_TEST_URL, sqlite_db))
    second = world.engine(build_coordination(REDIS_TEST_URL, sqlite_db), lease_ttl=timedelta(seconds=3))
    run_id = world.approved()
    first.start(OWNER, run_id)
    assert redis_client.get(f"chaosbot:lease:{run_id}") == first.holder.encode()
    assert redis_client.get(f"chaosbot:faults:{run_id}") is not None
    database_down(monkeypatch, sqlite_db)

    result = second.abort("rita", run_id)

    assert result.reverted and not world.lab.fault_on
    monkeypatch.undo()
    wait_for(lambda: world.run(run_id).run_state is RunState.ABORTED, what="the record written after the outage")
    assert world.run(run_id).ended_by == "rita"
    assert redis_client.get(f"chaosbot:faults:{run_id}") is None
