"""Exactly once across OS processes on one PostgreSQL database, including a replica killed mid-firing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.schedule import firings
from bot.schedule.service import NOTICE, firing_key
from storage.db import Database, utcnow
from tests.schedule.factories import add_run

ROOT = Path(__file__).resolve().parents[2]


def replica(db: Database, out: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.schedule.worker", db.url, str(out), *extra]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", process.stderr.read() if process.stderr else ""
    return process


def records(out: Path) -> list[dict[str, str]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.mark.postgres
def test_two_processes_fire_every_notice_and_start_exactly_once(pg_db: Database, tmp_path: Path) -> None:
    out = tmp_path / "fired.jsonl"
    processes = [replica(pg_db, out, "--seconds", "8", "--work", "0.1") for _ in range(2)]
    # Both replicas are ticking: every notice is due at once, the starts over the next three seconds.
    now = utcnow()
    runs = [add_run(pg_db, planned_start=now + timedelta(seconds=1 + index % 3)) for index in range(12)]
    for process in processes:
        assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""
    fired = Counter((record["kind"], int(record["run"])) for record in records(out))
    expected = {(kind, run.id) for run in runs for kind in ("notice", "auto_start")}
    assert set(fired) == expected
    assert all(count == 1 for count in fired.values()), fired
    assert len({record["holder"] for record in records(out)}) == 2, "both replicas should have won some firings"


@pytest.mark.postgres
def test_a_replica_killed_after_claiming_is_replaced_after_the_lease(pg_db: Database, tmp_path: Path) -> None:
    # The notice (15 minutes before the start) is due now; no automatic start, to keep one firing in play.
    run = add_run(pg_db, planned_start=utcnow() + timedelta(minutes=14), auto_start=False)
    planned_start = run.planned_start
    out = tmp_path / "fired.jsonl"
    frozen = replica(pg_db, out, "--hang", "--lease", "3", "--seconds", "60")
    wait_for(lambda: len(records(out)) == 1)
    claimed = firings.get(pg_db, kind=NOTICE, key=firing_key(run.id, planned_start))
    assert claimed is not None and claimed.claimed_by == records(out)[0]["holder"] and claimed.done_at is None
    os.kill(frozen.pid, signal.SIGKILL)
    frozen.wait(timeout=10)

    survivor = replica(pg_db, out, "--lease", "3", "--seconds", "8")
    assert survivor.wait(timeout=30) == 0
    first, second = records(out)
    assert first["kind"] == second["kind"] == "notice" and first["holder"] != second["holder"]
    # The survivor waited for the dead replica's lease to run out.
    assert claimed.claimed_until is not None
    assert datetime.fromisoformat(second["at"]) >= claimed.claimed_until
    done = firings.get(pg_db, kind=NOTICE, key=firing_key(run.id, planned_start))
    assert done is not None and done.outcome == "done" and done.claimed_by == second["holder"] and done.attempts == 2
