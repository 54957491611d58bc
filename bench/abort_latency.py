"""Abort-to-reverted latency of ``chaosbot serve`` for N concurrent runs on the http and redis adapters, or on
Chaos Toolkit experiments (``--adapter chaostoolkit``).

For each (mode, N) and each round: plan and approve N runs directly through ``RunCore`` (not measured),
start them with signed ``/chaos start RUN-n`` requests, wait until every fault is really on, then abort:

- ``each``: N concurrent ``/chaos abort RUN-i`` requests; t0 of run i is taken just before its request is sent.
- ``all``: one ``/chaos abort all``; t0 is taken just before it is sent (then an approver runs ``/chaos resume``).

A fault counts as reverted when the revert reaches its backend: for http, the arrival of the revert request
at the bench's toggle server; for redis (``CLIENT PAUSE ... WRITE`` on a dedicated redis-server per run), the
moment a ``SET`` that a bench client issued before the abort (and that the server held back) returns.
Latency = reverted - t0, on the bench process's monotonic clock.

``--adapter chaostoolkit``: each run is a Chaos Toolkit experiment (one file per concurrent slot) whose method
switches the slot's toggle on over HTTP, then blocks in a process action (``sleep 30``), and whose rollback
switches it off. The abort comes while the method blocks; the fault counts as reverted when the rollback's
request arrives at the toggle server: abort to rollback done, without waiting for the blocking action.

``--n`` goes up to 200 with the http adapter (50 with chaostoolkit; redis needs one server per run and stays
at 10, mixed at 20). With several N the bench ends with the growth table: median and p99 per mode against N.
Above N=10 a configuration runs fewer rounds (``rounds_for``): one round already gives N samples.

    .venv/bin/python bench/abort_latency.py [--database sqlite|postgres] [--mode each|all|both]
        [--n 1,5,10] [--adapter mixed|http|redis|chaostoolkit] [--rounds 5] [--max-seconds 900]
    .venv/bin/python bench/abort_latency.py --database postgres --adapter http --n 1,10,50,100,200
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import _harness as h
import ack_latency
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from bot.catalogue.service import load_catalogue
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from bot.runs.rules import PlanRequest
from storage.db import Database
from tests.fakeslack import wire

HTTP_EXPERIMENT = "CE-10"
TARGET_P99_MS = 1000.0
STEP_TIMEOUT = 30.0  # seconds to wait for any one step of a round (start, revert, record), plus STEP_PER_RUN
STEP_PER_RUN = 0.3  # more runs take longer to start and to record
WAITER_TIMEOUT = 30.0  # socket timeout of the blocked SET: a revert that never comes fails the round
REDIS_BENCH_URL = "redis://127.0.0.1:6379/14"  # above the tests' 4-13


BLOCKING_SECONDS = 30  # the Chaos Toolkit method's blocking action: the abort must not wait for it
# The largest N per adapter: a redis run needs a redis-server of its own (mixed: one for every other run), a
# Chaos Toolkit run a blocked process.
MAX_N = {"http": 200, "chaostoolkit": 50, "mixed": 20, "redis": 10}
FULL_ROUNDS_UP_TO = 10


def step_timeout(n: int) -> float:
    return STEP_TIMEOUT + STEP_PER_RUN * n


def redis_experiment(index: int) -> str:
    return f"CE-{11 + index}"


def ctk_experiment(index: int) -> str:
    return f"CE-{31 + index}"


def ctk_slot(index: int) -> str:
    return f"ctk-{index}"


# -- the fault backends the bench controls ----------------------------------------------------------------


class ToggleServer:
    """The http adapter's backend: PUT /flags/RUN-n/on and /off; records the monotonic arrival of each."""

    def __init__(self) -> None:
        self.arrivals: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()
        bench = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                arrived = time.monotonic()
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.strip("/").split("/")
                if len(parts) == 3 and parts[0] == "flags" and parts[2] in ("on", "off"):
                    with bench.lock:
                        bench.arrivals.setdefault((parts[1], parts[2]), arrived)
                    body, status = b"{}", 200
                else:
                    body, status = b"not found", 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = h.BackendServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="toggles", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def at(self, label: str, step: str) -> float | None:
        with self.lock:
            return self.arrivals.get((label, step))

    def forget(self, label: str) -> None:
        """A Chaos Toolkit slot's toggle is used again in the next round: its earlier arrivals do not count."""
        with self.lock:
            for step in ("on", "off"):
                self.arrivals.pop((label, step), None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RedisTarget:
    """One dedicated redis-server: the backend of one redis run at a time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    def client(self, timeout: float) -> redis.Redis:
        # No client-side retries: a retry would silently wait out the pause or re-send the write.
        return redis.Redis(
            port=self.port, socket_timeout=timeout, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )

    def writes_blocked(self) -> bool:
        """True when a SET from a new connection is held back (the server is paused for writes)."""
        client = self.client(0.2)
        try:
            client.set("bench:probe", 1)
            return False
        except redis.TimeoutError:
            return True
        finally:
            client.close()

    def blocked_clients(self) -> set[str]:
        client = self.client(2)
        try:
            return {
                str(entry.get("name"))
                for entry in client.client_list()
                if "b" in str(entry.get("flags", "")) and str(entry.get("cmd", "")) == "set"
            }
        finally:
            client.close()

    def unpause(self) -> None:
        with contextlib.suppress(redis.RedisError):
            client = self.client(2)
            client.execute_command("CLIENT", "UNPAUSE")
            client.close()


class Waiter:
    """A client blocked on a SET that the paused server holds back; ``done`` is when the SET returned."""

    def __init__(self, target: RedisTarget, label: str) -> None:
        self.target = target
        self.name = f"bench-waiter-{label}"
        self.done: float | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        client = self.target.client(WAITER_TIMEOUT)
        try:
            client.client_setname(self.name)
            client.set(f"bench:{self.name}", 1)
            self.done = time.monotonic()
        except BaseException as exc:
            self.error = exc
        finally:
            client.close()


# -- one benchmark session ---------------------------------------------------------------------------------


@dataclass
class BenchRun:
    id: int
    adapter: str
    target: RedisTarget | None = None
    waiter: Waiter | None = None
    slot: str | None = None  # a Chaos Toolkit run's toggle (its experiment cannot know the run's label)

    @property
    def label(self) -> str:
        return f"RUN-{self.id}"

    @property
    def toggle(self) -> str:
        return self.slot or self.label


@dataclass
class Config:
    mode: str
    n: int
    samples: list[float] = field(default_factory=list)  # seconds, one per fault
    rounds_all_reverted: list[float] = field(default_factory=list)  # first request sent -> last fault reverted
    ack: list[float] = field(default_factory=list)  # HTTP response time of the abort request(s)
    by_adapter: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    skipped_rounds: int = 0


def write_ctk_experiments(toggles: ToggleServer, workdir: Path, count: int) -> list[Path]:
    """One Chaos Toolkit experiment per concurrent slot: toggle on, block, (never reached) toggle on again."""
    paths = []
    for index in range(count):

        def put(name: str, step: str, index: int = index) -> dict[str, Any]:
            url = f"{toggles.url}/flags/{ctk_slot(index)}/{step}"
            provider = {"type": "http", "url": url, "method": "PUT", "timeout": 5, "arguments": {}}
            return {"type": "action", "name": name, "provider": provider}

        experiment = {
            "title": f"Benchmark Chaos Toolkit toggle {index}",
            "description": "Switch a toggle on, block in a long action; the rollback switches it off.",
            "method": [
                put("switch-on", "on"),
                {
                    "type": "action",
                    "name": "block",
                    "provider": {"type": "process", "path": "sleep", "arguments": str(BLOCKING_SECONDS)},
                },
                put("switch-on-again", "on"),
            ],
            "rollbacks": [put("switch-off", "off")],
        }
        path = workdir / f"ctk-{index}.json"
        path.write_text(json.dumps(experiment), encoding="utf-8")
        paths.append(path)
    return paths


def catalogue(toggles: ToggleServer, targets: list[RedisTarget], ctk: list[Path] | None = None) -> str:
    common = """\
    hypothesis: Benchmark only.
    method: Benchmark only.
    expected_outcome: The abort reverts the fault at once.
    safeguards: [Loopback only.]
    rollback_steps: ["Run `/chaos abort`."]
    environments: [staging]
    max_duration: 10m
    rto: 1m
"""
    entries = [
        f"""\
  - id: {HTTP_EXPERIMENT}
    title: Benchmark toggle
{common}    fault:
      adapter: http
      params:
        inject: {{method: PUT, url: "{toggles.url}/flags/{{{{run_id}}}}/on", json: {{enabled: true}}}}
        revert: {{method: PUT, url: "{toggles.url}/flags/{{{{run_id}}}}/off", json: {{enabled: false}}}}
"""
    ]
    for index, target in enumerate(targets):
        entries.append(
            f"""\
  - id: {redis_experiment(index)}
    title: Benchmark redis pause {index}
{common}    fault:
      adapter: redis
      params: {{url: "{target.url}", mode: write}}
"""
        )
    for index, path in enumerate(ctk or []):
        entries.append(
            f"""\
  - id: {ctk_experiment(index)}
    title: Benchmark Chaos Toolkit experiment {index}
{common}    fault:
      adapter: chaostoolkit
      params: {{experiment: "{path}"}}
"""
        )
    return "experiments:\n" + "".join(entries)


class Session:
    def __init__(
        self, args: argparse.Namespace, server: h.Chaosbot, toggles: ToggleServer, targets: list[RedisTarget]
    ) -> None:
        self.args = args
        self.server = server
        self.toggles = toggles
        self.targets = targets
        self.workdir = Path(server.process.log or ".").parent
        db = Database(server.database_url)
        self.core = RunCore.build(
            db,
            load_catalogue(self.workdir / "catalogue.yml"),
            load_policy(self.workdir / "policy.yml"),
            zone=ZoneInfo("UTC"),
        )
        # Plain reads (no BEGIN IMMEDIATE on SQLite) so polling never takes the server's write lock.
        self.reader: Engine = create_engine(server.database_url, pool_size=2, max_overflow=2)

    def close(self) -> None:
        self.reader.dispose()
        self.core.db.dispose()

    # -- requests ----------------------------------------------------------------------------------------

    def command(self, text_: str, user: str) -> tuple[int, float]:
        status, elapsed = h.send(self.server.events_url, wire.slash_command(text_, user, channel_id=h.CHANNEL))
        if status != 200:
            raise RuntimeError(f"/chaos {text_} answered HTTP {status}")
        return status, elapsed

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.reader.connect() as connection:
            return list(connection.execute(text(sql), params).all())

    # -- a round -----------------------------------------------------------------------------------------

    def plan(self, n: int, round_index: int) -> list[BenchRun]:
        runs: list[BenchRun] = []
        redis_used = 0
        for i in range(n):
            adapter = self.adapter_for(i, round_index)
            target, slot = None, None
            experiment = HTTP_EXPERIMENT
            if adapter == "redis":
                target, experiment = self.targets[redis_used], redis_experiment(redis_used)
                redis_used += 1
            elif adapter == "chaostoolkit":
                slot, experiment = ctk_slot(i), ctk_experiment(i)
                self.toggles.forget(slot)
            request = PlanRequest(experiment, "staging", planned_start=datetime.now(UTC))
            run = self.core.transitions.plan(h.OWNER, request)
            for approver in h.APPROVERS:
                self.core.transitions.approve(approver, run.id)
            runs.append(BenchRun(run.id, adapter, target, slot=slot))
        return runs

    def adapter_for(self, index: int, round_index: int) -> str:
        if self.args.adapter != "mixed":
            return str(self.args.adapter)
        return "http" if (index + round_index) % 2 == 0 else "redis"  # rotates, so N=1 alternates by round

    def start(self, runs: list[BenchRun]) -> None:
        threads = h.Threads()
        for run in runs:
            threads.spawn(lambda run=run: self.command(f"start {run.label}", h.OWNER), f"start-{run.label}")
        timeout = step_timeout(len(runs))
        threads.join(timeout)
        for run in runs:
            h.wait_until(lambda run=run: self.fault_on(run), timeout, f"{run.label}'s fault to be on")
            h.wait_until(lambda run=run: self.recorded_injected(run), timeout, f"{run.label} recorded injected")
        time.sleep(self.args.settle)
        # Measure an idle server: the starts' Slack posts and records, and the previous round's retrospectives
        # (a chart each, about a quarter of a second of the interpreter), are done by then.
        ack_latency.settle([self.server.process.pid])
        for run in runs:
            if run.target is not None:
                run.waiter = Waiter(run.target, run.label)
        for run in runs:
            if run.waiter is not None and run.target is not None:
                h.wait_until(
                    lambda waiter=run.waiter, target=run.target: waiter.name in target.blocked_clients(),
                    10,
                    f"{run.waiter.name} blocked on SET",
                )

    def fault_on(self, run: BenchRun) -> bool:
        if run.adapter in ("http", "chaostoolkit"):
            return self.toggles.at(run.toggle, "on") is not None
        assert run.target is not None
        return run.target.writes_blocked()

    def recorded_injected(self, run: BenchRun) -> bool:
        rows = self.query(
            "SELECT r.state, f.state FROM runs r JOIN faults f ON f.run_id = r.id WHERE r.id = :id", id=run.id
        )
        return bool(rows) and all(state == "running" and fault == "injected" for state, fault in rows)

    def reverted_at(self, run: BenchRun) -> float | None:
        if run.adapter in ("http", "chaostoolkit"):
            return self.toggles.at(run.toggle, "off")
        assert run.waiter is not None
        if run.waiter.error is not None:
            raise RuntimeError(f"{run.label}: the blocked SET failed: {run.waiter.error!r}")
        return run.waiter.done

    def abort(self, mode: str, runs: list[BenchRun]) -> tuple[dict[str, float], list[float]]:
        """Send the abort(s); returns t0 per run label and the HTTP response times."""
        t0: dict[str, float] = {}
        acks: list[float] = []
        if mode == "all":
            t0_all = time.monotonic()
            acks.append(self.command("abort all benchmark", h.RELIABILITY)[1])
            return dict.fromkeys((run.label for run in runs), t0_all), acks
        barrier = threading.Barrier(len(runs))
        threads = h.Threads()

        def abort_one(run: BenchRun) -> None:
            request = wire.slash_command(f"abort {run.label} benchmark", h.RELIABILITY, channel_id=h.CHANNEL)
            barrier.wait(timeout=10)
            t0[run.label] = time.monotonic()
            status, elapsed = h.send(self.server.events_url, request)
            if status != 200:
                raise RuntimeError(f"abort {run.label} answered HTTP {status}")
            acks.append(elapsed)

        for run in runs:
            threads.spawn(lambda run=run: abort_one(run), f"abort-{run.label}")
        threads.join(step_timeout(len(runs)))
        return t0, acks

    def round(self, config: Config, round_index: int) -> None:
        runs = self.plan(config.n, round_index)
        try:
            self.start(runs)
            t0, acks = self.abort(config.mode, runs)
            timeout = step_timeout(len(runs))
            reverted = {
                run.label: h.wait_until(
                    lambda run=run: self.reverted_at(run), timeout, f"{run.label}'s fault to be reverted"
                )
                for run in runs
            }
            h.wait_until(lambda: self.all_ended(runs), step_timeout(len(runs)), "every run to be recorded aborted")
            for run in runs:
                latency = reverted[run.label] - t0[run.label]
                config.samples.append(latency)
                config.by_adapter.setdefault(run.adapter, []).append(latency)
            config.rounds_all_reverted.append(max(reverted.values()) - min(t0.values()))
            config.ack.extend(acks)
        finally:
            self.clean_up(runs)

    def all_ended(self, runs: list[BenchRun]) -> bool:
        ids = ",".join(str(run.id) for run in runs)
        rows = self.query(f"SELECT state FROM runs WHERE id IN ({ids})")
        return all(state == "aborted" for (state,) in rows)

    def clean_up(self, runs: list[BenchRun]) -> None:
        """Leave no run running, the kill switch released and every redis server unpaused."""
        for (run_id,) in self.query("SELECT id FROM runs WHERE state = 'running'"):
            with contextlib.suppress(Exception):
                self.command(f"abort RUN-{run_id} benchmark clean-up", h.RELIABILITY)
        for (run_id,) in self.query("SELECT id FROM runs WHERE state IN ('planned', 'approved')"):
            with contextlib.suppress(Exception):
                self.core.transitions.cancel(h.OWNER, run_id, "benchmark clean-up")
        if self.kill_switch_engaged():
            self.command("resume", h.RELIABILITY)
        h.wait_until(
            lambda: not self.kill_switch_engaged() and not self.query("SELECT id FROM runs WHERE state = 'running'"),
            step_timeout(len(runs)),
            "no running run and the kill switch released",
        )
        for run in runs:
            if run.target is not None:
                run.target.unpause()
            if run.waiter is not None:
                run.waiter.thread.join(WAITER_TIMEOUT)

    def kill_switch_engaged(self) -> bool:
        engaged = any(bool(value) for (value,) in self.query("SELECT engaged FROM kill_switch"))
        if self.args.redis_url:
            client = redis.Redis.from_url(self.args.redis_url, socket_timeout=2)
            try:
                engaged = engaged or bool(client.exists("chaosbot:killswitch"))
            finally:
                client.close()
        return engaged


# -- main --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--mode", choices=["each", "all", "both"], default="both")
    parser.add_argument("--n", default="1,5,10", help="comma-separated numbers of concurrent runs (see MAX_N)")
    parser.add_argument("--adapter", choices=["mixed", "http", "redis", "chaostoolkit"], default="mixed")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="skip the remaining rounds after this")
    parser.add_argument(
        "--settle", type=float, default=0.5, help="seconds between 'all faults on' and the abort (then: until idle)"
    )
    parser.add_argument("--redis-url", default=REDIS_BENCH_URL, help="REDIS_URL of chaosbot with --database postgres")
    parser.add_argument("--output", type=Path, default=h.RESULTS / "abort_latency.json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, SQLite file)")
    parser.add_argument(
        "--tracing",
        type=h.tracing_modes,
        default=["off"],
        help="off, on or off,on: with off,on the whole bench runs once per mode, each on a server of its own",
    )
    args = parser.parse_args(argv)
    args.ns = sorted({int(n) for n in args.n.split(",")})
    largest = MAX_N[args.adapter]
    if not args.ns or min(args.ns) < 1 or max(args.ns) > largest:
        parser.error(f"--n takes numbers from 1 to {largest} with --adapter {args.adapter}")
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds takes 1 to 50")
    args.modes = ["each", "all"] if args.mode == "both" else [args.mode]
    if args.database == "sqlite":
        args.redis_url = None
    return args


def rounds_for(args: argparse.Namespace, n: int) -> int:
    """``--rounds`` up to N=10; above it fewer (at least 2), since each round gives N samples."""
    if n <= FULL_ROUNDS_UP_TO:
        return int(args.rounds)
    return min(int(args.rounds), max(2, math.ceil(args.rounds * FULL_ROUNDS_UP_TO / n)))


def growth_table(configs: list[Config]) -> str:
    """Median / p99 (ms) per mode against N, and the slowest round's first request to last fault reverted."""
    ns = sorted({config.n for config in configs})
    rows = []
    for mode in dict.fromkeys(config.mode for config in configs):
        by_n = {config.n: config for config in configs if config.mode == mode}
        cells, worst = [], []
        for n in ns:
            config = by_n.get(n)
            if config is None or not config.samples:
                cells.append("-")
                worst.append("-")
                continue
            stats = h.summary_ms(config.samples)
            cells.append(f"{stats['median_ms']:.0f} / {stats['p99_ms']:.0f}")
            worst.append(f"{h.summary_ms(config.rounds_all_reverted)['max_ms']:.0f}")
        rows.append([mode, "median / p99", *cells])
        rows.append([mode, "all reverted, slowest round", *worst])
    return h.markdown_table(["mode", "ms", *(f"N={n}" for n in ns)], rows)


def redis_servers_needed(args: argparse.Namespace) -> int:
    largest = max(args.ns)
    return {"http": 0, "redis": largest, "mixed": math.ceil(largest / 2), "chaostoolkit": 0}[args.adapter]


def report(args: argparse.Namespace, configs: list[Config], complete: bool) -> dict[str, Any]:
    rows, results = [], []
    for config in configs:
        stats = h.summary_ms(config.samples) if config.samples else {"count": 0}
        rounds = h.summary_ms(config.rounds_all_reverted) if config.rounds_all_reverted else {}
        results.append(
            {
                "mode": config.mode,
                "n": config.n,
                **stats,
                "all_reverted": rounds,
                "by_adapter": {a: h.summary_ms(v) for a, v in sorted(config.by_adapter.items())},
                "abort_request_ack": h.summary_ms(config.ack) if config.ack else {},
                "failures": config.failures,
                "skipped_rounds": config.skipped_rounds,
                "samples_ms": [round(s * 1000, 2) for s in config.samples],
            }
        )
        if stats["count"]:
            rows.append(
                [
                    config.mode,
                    config.n,
                    stats["count"],
                    stats["median_ms"],
                    stats["p90_ms"],
                    stats["p99_ms"],
                    stats["max_ms"],
                    rounds.get("median_ms", "-"),
                    rounds.get("max_ms", "-"),
                    len(config.failures),
                ]
            )
        else:
            rows.append([config.mode, config.n, 0, "-", "-", "-", "-", "-", "-", len(config.failures)])
    every = [s for c in configs for s in c.samples]
    overall = h.summary_ms(every) if every else {}
    document = {
        "benchmark": "abort_latency",
        "complete": complete,
        "machine": h.machine(),
        "settings": {
            "database": args.database,
            "adapter": args.adapter,
            "rounds": args.rounds,
            "rounds_per_n": {str(n): rounds_for(args, n) for n in args.ns},
            "n": args.ns,
            "modes": args.modes,
            "settle_seconds": args.settle,
            "server": "chaosbot serve, gunicorn gthread 1 worker x 8 threads (defaults)",
        },
        "measured": "client monotonic time just before the abort request is sent -> revert reaches the backend"
        + (" (the experiment's rollback, while its method blocks)" if args.adapter == "chaostoolkit" else ""),
        "target_p99_ms": TARGET_P99_MS,
        "overall": overall,
        "results": results,
    }
    m = document["machine"]
    if not complete:
        print("\nINCOMPLETE (interrupted or failed): partial figures")
    if args.adapter == "chaostoolkit":
        blocked = f"method blocked in a {BLOCKING_SECONDS} s action"
        print(f"\nabort -> rollback done ({blocked}), Chaos Toolkit experiments, {args.database}, {args.rounds} rounds")
    else:
        print(f"\nabort -> reverted, {args.adapter} adapters, {args.database}, {args.rounds} rounds")
    print(f"machine: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, {m['date']}\n")
    headers = ["mode", "N", "count", "median ms", "p90 ms", "p99 ms", "max ms", "all-reverted median ms"]
    print(h.markdown_table([*headers, "all-reverted max ms", "failed"], rows))
    if len(args.ns) > 1:
        print("\ngrowth with N (rounds per N: " + ", ".join(f"{n}: {rounds_for(args, n)}" for n in args.ns) + ")\n")
        print(growth_table(configs))
    if overall:
        verdict = "met" if overall["p99_ms"] < TARGET_P99_MS else "NOT met"
        print(f"\noverall p99 {overall['p99_ms']} ms over {overall['count']} faults: target < 1000 ms {verdict}")
    h.write_json(args.output, document)
    print(f"JSON: {args.output}")
    return document


def serve(
    stack: contextlib.ExitStack, args: argparse.Namespace, workdir: Path, tracing: str, fixtures: Fixtures
) -> Session:
    """One ``chaosbot serve`` with its own database, Redis database and toggle server, tracing ``tracing``."""
    workdir.mkdir(parents=True, exist_ok=True)
    toggles = ToggleServer()  # its own: both servers number their runs from RUN-1
    stack.callback(toggles.close)
    ctk = write_ctk_experiments(toggles, workdir, max(args.ns) if args.adapter == "chaostoolkit" else 0)
    redis_url = h.redis_url_for(args.redis_url, tracing)
    if args.database == "postgres":
        database_url = stack.enter_context(h.scratch_postgres())
        h.clear_redis_keys(redis_url)
        stack.callback(h.clear_redis_keys, redis_url)
    else:
        database_url = f"sqlite:///{workdir / 'chaosbot.db'}"
    server = h.start_chaosbot(
        stack,
        workdir,
        slack_url=fixtures.slack_url,
        database_url=database_url,
        catalogue=catalogue(toggles, fixtures.targets, ctk),
        redis_url=redis_url,
        extra_env=h.tracing_env(tracing, fixtures.endpoint),
    )
    session = Session(args, server, toggles, fixtures.targets)
    stack.callback(session.close)
    return session


@dataclass
class Fixtures:
    """What every server of the run shares: the Redis targets, the fake Slack, the collector."""

    targets: list[RedisTarget]
    slack_url: str
    endpoint: str | None


def play(args: argparse.Namespace, session: Session, configs: list[Config], began: float) -> bool:
    """Every round of every configuration on one server; False when a round failed."""
    ok = True
    for config in configs:
        for round_index in range(rounds_for(args, config.n)):
            if time.monotonic() - began > args.max_seconds:
                config.skipped_rounds += 1
                continue
            try:
                session.round(config, round_index)
            except Exception as exc:
                ok = False
                config.failures.append(f"round {round_index}: {exc}")
                traceback.print_exc()
            done = len(config.rounds_all_reverted)
            last = config.rounds_all_reverted[-1] * 1000 if done else float("nan")
            print(f"  {config.mode:4} N={config.n:<2} round {round_index + 1}: all reverted in {last:.0f} ms")
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    h.terminate_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="chaosbot-bench-abort-"))
    configs = {tracing: [Config(mode, n) for mode in args.modes for n in args.ns] for tracing in args.tracing}
    complete = False
    failed = False
    began = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            targets = [RedisTarget(h.start_redis_server(stack, workdir)) for _ in range(redis_servers_needed(args))]
            stack.callback(lambda: [target.unpause() for target in targets])
            slack_url, _fake = h.start_fake_slack(stack)
            endpoint = h.start_collector(stack) if "on" in args.tracing else None
            fixtures = Fixtures(targets, slack_url, endpoint)
            for tracing in args.tracing:
                session = serve(stack, args, workdir / f"tracing-{tracing}", tracing, fixtures)
                print(f"chaosbot serve (tracing {tracing}) up after {time.monotonic() - began:.1f} s")
                failed = not play(args, session, configs[tracing], began) or failed
            if endpoint is not None:
                print(f"spans received by the collector: {h.spans_collected(endpoint)}")
            complete = True
    except KeyboardInterrupt:
        print("\ninterrupted: every process started was stopped; partial results follow", file=sys.stderr)
        failed = True
    finally:
        for tracing, measured in configs.items():
            output = (
                args.output
                if len(configs) == 1
                else args.output.with_name(f"{args.output.stem}_tracing_{tracing}.json")
            )
            print(f"\n-- tracing {tracing}")
            report(argparse.Namespace(**{**vars(args), "output": output}), measured, complete)
        if failed or args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if complete and not any(c.failures for measured in configs.values() for c in measured) else 1


if __name__ == "__main__":
    sys.exit(main())
