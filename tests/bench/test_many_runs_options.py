"""``bench/many_runs.py``: every run is its own catalogue entry with an HTTP stop condition probed every second,
and ``--quick`` keeps the bench to two levels."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from bot.catalogue.service import load_catalogue

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))  # the bench scripts import their harness as a top-level module
    try:
        yield importlib.import_module("many_runs")
    finally:
        sys.path.remove(str(BENCH))


def test_each_run_probes_its_own_path_every_second(bench: ModuleType, tmp_path: Path) -> None:
    toggles, probes = bench.abort_latency.ToggleServer(), bench.ProbeTarget()
    try:
        (tmp_path / "catalogue.yml").write_text(bench.catalogue(toggles, probes, 3), encoding="utf-8")
        entries = {e.id: e for e in load_catalogue(tmp_path / "catalogue.yml").experiments}
    finally:
        toggles.close()
        probes.close()

    third = entries[bench.experiment_id(2)]
    assert third.fault.adapter == "http" and third.probe_interval.total_seconds() == 1
    [condition] = third.stop_conditions
    assert str(getattr(condition.probe, "url", "")).endswith("/probe/2")


def test_quick_measures_two_levels(bench: ModuleType) -> None:
    assert bench.parse_args(["--quick"]).levels == [10, 100]
    assert bench.parse_args([]).levels == [10, 50, 100, 200]
    with pytest.raises(SystemExit):
        bench.parse_args(["--levels", "201"])
