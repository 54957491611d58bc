"""Faults injected in self-healing slices are renewed while the run lasts, and never once an abort begins."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from adapters import registry
from adapters.base import Adapter, AdapterParams, FaultHandle, FaultState, FaultStatus, Preflight
from bot.catalogue.models import Experiment
from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.lab import make_experiment, wait_for

RENEW_EVERY = timedelta(milliseconds=50)


class SlicedParams(AdapterParams):
    target: str = "lab"


class SlicedAdapter(Adapter):
    """A fault in slices: remembers when each renewal and each revert arrived."""

    name = "sliced"
    Params = SlicedParams
    self_expiring = True
    renew_every = RENEW_EVERY
    calls: ClassVar[list[tuple[str, float, timedelta | None]]] = []
    lock = threading.Lock()

    def _note(self, call: str, duration: timedelta | None = None) -> None:
        with self.lock:
            self.calls.append((call, time.monotonic(), duration))

    def preflight(self, params: AdapterParams) -> Preflight:
        return Preflight(ok=True, detail="sliced: ready")

    def prepare(self, params: AdapterParams, *, run_id: str, duration: timedelta) -> FaultHandle:
        return FaultHandle(adapter=self.name, run_id=run_id)

    def inject(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> FaultHandle:
        self._note("inject", duration)
        return handle

    def renew(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> None:
        self._note("renew", duration)

    def revert(self, params: AdapterParams, handle: FaultHandle) -> None:
        self._note("revert")

    def status(self, params: AdapterParams, handle: FaultHandle) -> FaultStatus:
        return FaultStatus(FaultState.UNKNOWN)

    @classmethod
    def times(cls, call: str) -> list[float]:
        with cls.lock:
            return [at for name, at, _ in cls.calls if name == call]


@pytest.fixture
def sliced(monkeypatch: pytest.MonkeyPatch) -> type[SlicedAdapter]:
    known: Callable[[], dict[str, type[Adapter]]] = registry._classes
    monkeypatch.setattr(registry, "_classes", lambda: {**known(), SlicedAdapter.name: SlicedAdapter})
    SlicedAdapter.calls = []
    return SlicedAdapter


def sliced_experiment(lab: Any, *, max_duration: int) -> Experiment:
    raw = make_experiment(lab, max_duration=max_duration, conditions=[]).model_dump(mode="json")
    raw["fault"] = {"adapter": SlicedAdapter.name, "params": {"target": "lab"}}
    return Experiment.model_validate(raw)


def test_renewals_run_while_injected_and_stop_at_the_abort(
    sqlite_db: Database,
    make_world: Callable[..., World],
    sliced: type[SlicedAdapter],
) -> None:
    world = make_world(sqlite_db)
    world = make_world(sqlite_db, sliced_experiment(world.lab, max_duration=30))
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)
    wait_for(lambda: len(sliced.times("renew")) >= 3, timeout=3, what="a few renewals")

    result = engine.abort(OWNER, run_id, "enough")
    time.sleep(6 * RENEW_EVERY.total_seconds())

    [reverted_at] = sliced.times("revert")
    assert result.reverted and world.run(run_id).run_state is RunState.ABORTED
    assert all(at < reverted_at for at in sliced.times("renew")), "a renewal arrived after the revert began"
    durations = [duration for name, _, duration in sliced.calls if name == "renew"]
    assert all(d is not None and timedelta(0) < d <= timedelta(seconds=30) for d in durations)


def test_renewals_stop_at_the_maximum_duration(
    sqlite_db: Database,
    make_world: Callable[..., World],
    sliced: type[SlicedAdapter],
) -> None:
    world = make_world(sqlite_db)
    world = make_world(sqlite_db, sliced_experiment(world.lab, max_duration=1))
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)

    wait_for(lambda: world.run(run_id).run_state.is_final, what="the run to end")

    [reverted_at] = sliced.times("revert")
    assert len(sliced.times("renew")) >= 5
    assert all(at < reverted_at for at in sliced.times("renew"))
