"""The demo breaks something real: the share-link portal's latency, measured by a real probe, undone for real."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from bot.demo.target import demo_target
from bot.retro.chart import Chart, draw
from bot.retro.service import build
from storage.db import Database

ROOT = Path(__file__).resolve().parents[2]


def accepts_connections(url: str) -> bool:
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def test_the_portal_slows_and_fails_when_its_fault_switch_says_so_and_is_gone_afterwards() -> None:
    before = os.environ.get("PORTAL_URL")
    with demo_target(with_redis=False) as target, httpx.Client(base_url=target.portal_url, timeout=5) as client:
        assert os.environ["PORTAL_URL"] == target.portal_url
        assert client.get("/api/share/health").json()["ms"] < 150
        assert client.put("/faults/slow-database", json={"enabled": True, "ms": 200}).status_code == 200
        assert client.get("/api/share/health").json()["ms"] >= 200
        assert client.put("/faults/failing-database", json={"enabled": True}).status_code == 200
        assert client.get("/api/share/health").status_code == 503
        assert client.get("/faults").json().keys() == {"slow-database", "failing-database"}
        for name in ("slow-database", "failing-database"):
            client.put(f"/faults/{name}", json={"enabled": False})
        assert client.get("/api/share/health").status_code == 200
        assert client.put("/faults/unknown", json={"enabled": True}).status_code == 404
    assert not accepts_connections(target.portal_url)
    assert os.environ.get("PORTAL_URL") == before


def drawn(database: Path, *, run_id: int) -> Chart:
    """The chart of a demo run, drawn again from the demo's own database, with what it plotted."""
    db = Database(f"sqlite:///{database}")
    try:
        return draw(build(db, run_id, zone=ZoneInfo("UTC")))
    finally:
        db.dispose()


def test_make_demo_plays_a_run_that_holds_and_one_that_breaches_then_stops_everything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAOSBOT_", "REDIS_URL", "PORTAL_URL"))}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.db'}"
    env["PYTHONPATH"] = str(ROOT)  # this checkout's code, as `make demo` runs it
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "shell", "--demo-target", "--script", str(ROOT / "bot/console/demo.txt")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    transcript = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in transcript and "Sorry, that failed" not in transcript

    held = transcript[transcript.index("oliver> wait RUN-1") : transcript.index("oliver> show RUN-1")]
    assert "hypothesis held" in held and "🟢 Hypothesis held" in held

    breached = transcript[transcript.index("oliver> wait RUN-2") :]
    assert re.search(
        r"RUN-2 aborted by chaosbot: stop condition share-link latency: value \d+ ms > threshold", breached
    )
    assert "Fault reverted" in breached and "🔴 Hypothesis refuted" in breached
    # The probe keeps sampling after the revert until the recovery is measured, as after a completion.
    assert "RUN-2 recovered: the steady state was back" in breached
    assert re.search(r"Recovered: steady state back [\d.]+ s after the revert", breached)
    assert re.search(r"Recovered in [\d.]+ s after the revert: within the RTO of 10s", breached)
    for run in ("RUN-1", "RUN-2"):
        assert (tmp_path / "chaosbot-data" / "charts" / f"{run}-retrospective.png").stat().st_size > 10_000
    chart = drawn(tmp_path / "demo.db", run_id=2)
    assert {"injected", "breach", "aborted", "recovered"} <= chart.marks.keys()
    [latency] = chart.series
    after_revert = [at for at in latency.times if at > chart.marks["aborted"]]
    assert len(after_revert) >= 2 and max(latency.times) >= chart.marks["recovered"]

    urls = re.findall(r"http://127\.0\.0\.1:\d+|redis://127\.0\.0\.1:\d+", transcript.splitlines()[0])
    assert urls, "the demo names its portal on its first line"
    for url in urls:
        assert not accepts_connections(url.replace("redis://", "http://")), f"{url} still running after the demo"


@pytest.mark.parametrize("script", ["demo.txt", "rehearsal.txt"])
def test_the_walkthroughs_name_only_experiments_their_catalogue_has(script: str) -> None:
    text = (ROOT / "bot/console" / script).read_text(encoding="utf-8")
    catalogue = ROOT / ("bot/demo/catalogue.yml" if script == "demo.txt" else "bot/catalogue/experiments.yml")
    for experiment in set(re.findall(r"/chaos plan (\S+)", text)):
        assert f"id: {experiment}" in catalogue.read_text(encoding="utf-8")
