"""Many runs in one process: a run's hanging probe never delays another run's samples, and ``abort all`` takes
every fault out before it records or tells anything (bench/many_runs.py measures how far this scales)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.records import service as records
from bot.records.models import MeasurementPhase
from bot.words import Words
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.lab import Lab, http_condition, make_experiment, wait_for
from tests.engine.recording import RecordingNotifier


@dataclass
class TimedNotifier(RecordingNotifier):
    """Also notes when (``time.monotonic()``) each timeline event was told."""

    told_at: list[float] = field(default_factory=list)
    _clock_lock: threading.Lock = field(default_factory=threading.Lock)

    def timeline(self, run_id: int, text: Words) -> None:
        with self._clock_lock:
            self.told_at.append(time.monotonic())
        super().timeline(run_id, text)


def samples_taken(world: World, run_id: int) -> int:
    with world.db.transaction() as session:
        measured = records.measurements(session, run_id=run_id)
        return sum(1 for m in measured if m.phase == MeasurementPhase.FAULT.value)


def prometheus_condition(lab: Lab) -> dict[str, Any]:
    probe = {"kind": "prometheus", "url": f"{lab.url}/prom", "query": "up", "max": 10}
    return {"name": "lab prometheus", "probe": probe}


def test_a_hanging_probe_never_delays_another_runs_samples(
    sqlite_db: Database, make_world: Callable[..., World]
) -> None:
    lab_world = make_world(sqlite_db)
    lab = lab_world.lab
    hanging = make_experiment(lab, experiment_id="CE-91", max_duration=30, conditions=[http_condition(lab, timeout=5)])
    steady = make_experiment(lab, experiment_id="CE-92", max_duration=30, conditions=[prometheus_condition(lab)])
    world = make_world(sqlite_db, hanging, steady)
    world.lab.when_faulted = "hang"
    engine = world.engine()
    hung, watched = world.approved("CE-91"), world.approved("CE-92")
    engine.start(OWNER, hung)
    wait_for(lambda: world.lab.in_flight > 0, what="the first run's probe hanging on its target")
    engine.start(OWNER, watched)

    # Probed every second: three samples while the other run's probe hangs for 5 s (its timeout).
    wait_for(lambda: samples_taken(world, watched) >= 3, timeout=4.5, what="the second run's samples")
    assert world.lab.in_flight > 0 and samples_taken(world, hung) == 0
    engine.abort(OWNER, hung, "done")
    engine.abort(OWNER, watched, "done")


def test_abort_all_reverts_every_fault_before_it_records_or_tells_anyone(
    sqlite_db: Database, make_world: Callable[..., World]
) -> None:
    world = make_world(sqlite_db)
    world = make_world(sqlite_db, make_experiment(world.lab, max_duration=30, conditions=[]))
    world.notifier = TimedNotifier()
    engine = world.engine()
    running = [world.approved() for _ in range(8)]
    for run_id in running:
        engine.start(OWNER, run_id)
    notifier = world.notifier
    assert isinstance(notifier, TimedNotifier)
    told_before = len(notifier.told_at)

    results = engine.abort_all("sam", "incident in progress")

    assert sorted(r.run_id for r in results) == running and all(r.reverted for r in results)
    reverts = world.lab.times("revert")
    assert len(reverts) == len(running)
    assert max(reverts) < min(notifier.told_at[told_before:]), "a run was told aborted before every fault was out"
    assert all(world.run(run_id).run_state.value == "aborted" for run_id in running)
