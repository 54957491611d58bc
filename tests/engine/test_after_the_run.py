"""What the engine tells the rest after a run: ``on_ended`` once each run's end is recorded (every way it ends,
in the replica that recorded it), and the dashboards' fault window marked at the inject and the revert, without
Grafana ever holding a start or an abort back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import datetime, timedelta

import pytest

from bot.dashboards.grafana import GrafanaAnnotations
from bot.engine import InjectFailed
from bot.runs.models import RunState
from tests.adapters.servers import running
from tests.dashboards.test_grafana import TOKEN, FakeGrafana
from tests.engine.conftest import OWNER, World
from tests.engine.lab import wait_for


class RecordingMarker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []
        self.lock = threading.Lock()

    def fault_started(self, run_id: int, *, label: str, experiment_id: str, at: datetime, text: str) -> Future[None]:
        with self.lock:
            self.calls.append(("started", run_id, f"{label} {experiment_id}"))
        return _done()

    def fault_ended(self, run_id: int, *, at: datetime) -> Future[None]:
        with self.lock:
            self.calls.append(("ended", run_id, ""))
        return _done()

    def resend_ends(self) -> Future[None]:
        return _done()

    def close(self) -> None:
        pass


def _done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


@pytest.fixture
def told() -> list[int]:
    return []


def test_a_breach_abort_tells_once_and_marks_the_window(world: World, told: list[int]) -> None:
    world.lab.when_faulted = "slow"
    marker = RecordingMarker()
    engine = world.engine(on_ended=told.append, marker=marker)
    run_id = world.approved()
    engine.start(OWNER, run_id)
    wait_for(lambda: told, what="the end told")
    assert world.run(run_id).run_state is RunState.ABORTED and told == [run_id]
    wait_for(lambda: len(marker.calls) == 2, what="the window's end")
    assert marker.calls == [("started", run_id, f"RUN-{run_id} CE-90"), ("ended", run_id, "")]


def test_completion_and_a_persons_abort_are_told(world: World, told: list[int]) -> None:
    engine = world.engine(on_ended=told.append)
    completed = world.approved()
    engine.start(OWNER, completed)
    wait_for(lambda: told == [completed], timeout=10, what="completion told")
    aborted = world.approved()
    engine.start(OWNER, aborted)
    engine.abort("rita", aborted, "enough")
    assert told == [completed, aborted]  # told before the abort returns: the record is written by then


def test_a_failed_start_is_told_and_never_marked_started(world: World, told: list[int]) -> None:
    world.lab.inject_status = 500
    marker = RecordingMarker()
    engine = world.engine(on_ended=told.append, marker=marker)
    run_id = world.approved()
    with pytest.raises(InjectFailed):
        engine.start(OWNER, run_id)
    assert told == [run_id] and world.run(run_id).run_state is RunState.FAILED
    assert ("started", run_id, f"RUN-{run_id} CE-90") not in marker.calls


def test_controller_lost_is_told_by_the_replica_that_recovers_it(world: World, told: list[int]) -> None:
    first = world.engine(lease_ttl=timedelta(seconds=1))
    run_id = world.approved()
    first.start(OWNER, run_id)
    first.close()  # stops watching without reverting: the lease lapses
    other = world.engine(lease_ttl=timedelta(seconds=1), on_ended=told.append)
    wait_for(other.recover_orphans, timeout=6, what="the lapsed lease noticed")
    assert told == [run_id]
    assert (world.run(run_id).end_reason or "").startswith("controller lost")


@pytest.fixture
def slow_grafana() -> Iterator[tuple[str, FakeGrafana]]:
    backend = FakeGrafana()
    backend.hold.clear()  # the create is answered only when the test says so
    with running(backend) as server:
        yield server.url, backend
    backend.hold.set()


def test_a_slow_grafana_never_holds_a_start_or_an_abort_back(
    world: World, slow_grafana: tuple[str, FakeGrafana]
) -> None:
    url, grafana = slow_grafana
    marker = GrafanaAnnotations(world.db, url, lambda: TOKEN)
    try:
        engine = world.engine(marker=marker)
        run_id = world.approved()
        began = time.monotonic()
        engine.start(OWNER, run_id)
        engine.abort("rita", run_id, "quick one")
        assert time.monotonic() - began < 3.0  # Grafana has not answered the create yet
        assert grafana.annotations == {}
        grafana.hold.set()
        wait_for(lambda: any("timeEnd" in a for a in grafana.annotations.values()), what="the region ended")
        (annotation,) = grafana.annotations.values()
        assert annotation["tags"] == ["chaosbot", f"RUN-{run_id}", "CE-90"]
        assert annotation["time"] <= annotation["timeEnd"]
    finally:
        grafana.hold.set()
        marker.close()
