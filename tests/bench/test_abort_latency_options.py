"""``bench/abort_latency.py --adapter chaostoolkit``: its runs are Chaos Toolkit experiments whose method blocks
after switching the toggle on, in a catalogue chaosbot loads (validated by Chaos Toolkit's own library)."""

from __future__ import annotations

import importlib
import json
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
        yield importlib.import_module("abort_latency")
    finally:
        sys.path.remove(str(BENCH))


def test_the_chaostoolkit_option_benches_experiments_whose_method_blocks(bench: ModuleType, tmp_path: Path) -> None:
    args = bench.parse_args(["--adapter", "chaostoolkit", "--n", "1,3"])
    assert args.adapter == "chaostoolkit" and bench.redis_servers_needed(args) == 0

    toggles = bench.ToggleServer()
    try:
        paths = bench.write_ctk_experiments(toggles, tmp_path, 3)
        (tmp_path / "catalogue.yml").write_text(bench.catalogue(toggles, [], paths), encoding="utf-8")
        entries = {e.id: e for e in load_catalogue(tmp_path / "catalogue.yml").experiments}
    finally:
        toggles.close()

    ctk = [entries[bench.ctk_experiment(i)] for i in range(3)]
    assert [e.fault.adapter for e in ctk] == ["chaostoolkit"] * 3
    method = json.loads(paths[2].read_text())["method"]
    assert method[0]["provider"]["url"].endswith("/flags/ctk-2/on")
    assert method[1]["provider"] == {"type": "process", "path": "sleep", "arguments": str(bench.BLOCKING_SECONDS)}
    [rollback] = json.loads(paths[2].read_text())["rollbacks"]
    assert rollback["provider"]["url"].endswith("/flags/ctk-2/off")


def test_the_http_adapter_takes_up_to_200_runs_and_redis_stays_at_10(bench: ModuleType) -> None:
    args = bench.parse_args(["--adapter", "http", "--n", "1,10,50,100,200"])
    assert args.ns == [1, 10, 50, 100, 200] and bench.redis_servers_needed(args) == 0
    assert [bench.rounds_for(args, n) for n in args.ns] == [5, 5, 2, 2, 2]  # each round of N=200 gives 200 samples
    with pytest.raises(SystemExit):
        bench.parse_args(["--adapter", "redis", "--n", "11"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--adapter", "http", "--n", "201"])
