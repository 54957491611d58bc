"""A local lab for engine tests: a target service whose health the test controls, a recording toggle server
(the fault the real ``http`` adapter switches on and off) and a tiny Prometheus, all on one local port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from bot.catalogue.models import Experiment

if TYPE_CHECKING:
    from bot.engine import RunEngine

HANG_LIMIT_SECONDS = 10.0


class Lab:
    """``when_faulted``: how the target answers while the fault is on: ok, slow, error or hang."""

    def __init__(self) -> None:
        self.fault_on = False
        self.calls: list[tuple[str, float]] = []
        self.when_faulted = "ok"
        self.slow_ms = 800.0
        self.target_status = 200
        self.bad_after_revert = 0.0
        self.inject_status = 200
        self.revert_status = 200
        self.preflight_status = 200
        self.prom_body: dict[str, Any] = vector(0.0)
        self.in_flight = 0
        self.revert_gate: threading.Event | None = None  # when set, a revert is answered only once it opens
        self.target_hits = 0  # probes of /target answered (who watches the run)
        self._reverted_at = 0.0
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def times(self, step: str) -> list[float]:
        """Monotonic times of the toggle calls of one step (inject or revert)."""
        with self._lock:
            return [at for name, at in self.calls if name == step]

    # -- request handling (called from the server's threads) --------------------------------------

    def toggle(self, step: str) -> int:
        with self._lock:
            self.calls.append((step, time.monotonic()))
            status = {"inject": self.inject_status, "revert": self.revert_status}[step]
            if status == 200:
                self.fault_on = step == "inject"
                if step == "revert":
                    self._reverted_at = time.monotonic()
        return status

    def target(self) -> int:
        self.target_hits += 1
        if self.fault_on:
            if self.when_faulted == "slow":
                time.sleep(self.slow_ms / 1000)
            elif self.when_faulted == "hang":
                with self._lock:
                    self.in_flight += 1
                self._release.wait(HANG_LIMIT_SECONDS)
            elif self.when_faulted == "error":
                return 503
        elif self._reverted_at and time.monotonic() - self._reverted_at < self.bad_after_revert:
            return 503
        return self.target_status


def vector(value: float) -> dict[str, Any]:
    result = [{"metric": {}, "value": [time.time(), str(value)]}]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def _handler(lab: Lab) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/target":
                self._answer(lab.target())
            elif path == "/toggle/preflight":
                self._answer(lab.preflight_status)
            elif path == "/prom/api/v1/query":
                query = parse_qs(urlsplit(self.path).query).get("query", [""])[0]
                self._answer(200, {**lab.prom_body, "query": query})
            else:
                self._answer(404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            path = urlsplit(self.path).path
            if path in ("/toggle/inject", "/toggle/revert"):
                step = path.rsplit("/", 1)[1]
                status = lab.toggle(step)
                if step == "revert" and lab.revert_gate is not None:
                    lab.revert_gate.wait(HANG_LIMIT_SECONDS)
                self._answer(status)
            else:
                self._answer(404)

        def _answer(self, status: int, body: dict[str, Any] | None = None) -> None:
            payload = json.dumps(body or {"status": status}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (a probe timeout)

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


def http_condition(
    lab: Lab, *, name: str = "target latency", max_ms: float = 500, timeout: float = 1.5
) -> dict[str, Any]:
    probe = {"kind": "http", "url": f"{lab.url}/target", "timeout_seconds": timeout, "max_latency_ms": max_ms}
    return {"name": name, "probe": probe}


def make_experiment(
    lab: Lab,
    *,
    experiment_id: str = "CE-90",
    max_duration: int = 2,
    rto: int = 2,
    interval: int = 1,
    conditions: list[dict[str, Any]] | None = None,
    environments: tuple[str, ...] = ("staging",),
) -> Experiment:
    """A short experiment whose fault is the lab's toggle, switched by the real ``http`` adapter."""
    toggle = {
        "inject": {"url": f"{lab.url}/toggle/inject?run={{{{run_id}}}}"},
        "revert": {"url": f"{lab.url}/toggle/revert"},
        "preflight": {"url": f"{lab.url}/toggle/preflight"},
        "timeout_seconds": 2,
        "retries": 0,
    }
    return Experiment.model_validate(
        {
            "id": experiment_id,
            "title": "Lab toggle",
            "hypothesis": "The target copes with the toggle.",
            "method": "Switch the lab toggle on.",
            "expected_outcome": "Latency stays low.",
            "safeguards": ["Local lab only."],
            "rollback_steps": ["Switch the lab toggle off by hand.", "Tell the lab owner."],
            "environments": list(environments),
            "fault": {"adapter": "http", "params": toggle},
            "stop_conditions": [http_condition(lab)] if conditions is None else conditions,
            "max_duration": max_duration,
            "rto": rto,
            "probe_interval": interval,
        }
    )


def fault_is_on(lab: Lab) -> bool:
    """Read afresh (a test that asserted it on earlier must not have it narrowed away by the type checker)."""
    return lab.fault_on


def wait_for(predicate: Callable[[], Any], *, timeout: float = 8.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


_CONTROLLER = """
import json, sys, time
from datetime import timedelta
from zoneinfo import ZoneInfo
from bot.catalogue.models import Catalogue
from bot.engine import RunEngine, build_coordination
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from storage.db import Database
from tests.engine.recording import RecordingNotifier

db = Database(sys.argv[1])
catalogue = Catalogue.model_validate({"experiments": [json.loads(sys.argv[2])]})
core = RunCore.build(db, catalogue, load_policy(), zone=ZoneInfo("UTC"))
engine = RunEngine(core, RecordingNotifier(), build_coordination(None, db), lease_ttl=timedelta(seconds=1))
engine.start("owen", int(sys.argv[3]))
print("running", flush=True)
time.sleep(120)
"""


def killed_controller(lab: Lab, database_url: str, experiment: Experiment, run_id: int) -> None:
    """Start ``run_id`` in another process (its own engine, a 1 s lease), then SIGKILL it once the fault is on:
    no chance to revert, roll back or release anything."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CONTROLLER, database_url, json.dumps(experiment.snapshot()), str(run_id)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        wait_for(lambda: lab.fault_on or child.poll() is not None, timeout=20, what="the child's inject")
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def handed_over(a: RunEngine, b: RunEngine, run_id: int) -> threading.Thread:
    """A shuts down (SIGTERM) while B is alive; returns A's shutdown once B has adopted the run and A let go."""
    a.heartbeat()
    b.heartbeat()
    stopping = threading.Thread(target=a.shut_down, kwargs={"handover_seconds": 10})
    stopping.start()
    wait_for(lambda: b.recover_orphans() == [] and b.running() == [run_id], what="B adopting the run")
    stopping.join(timeout=15)
    return stopping
