"""One ``chaosbot serve`` replica on PostgreSQL + Redis holding N running runs at once (10, 50, 100, 200).

Every run switches a toggle on over HTTP (the http adapter) and has one HTTP stop condition, probed every
second against a local target (``/probe/<i>``, one path per run). For each N, from an idle server:

1. plan and approve N runs through ``RunCore`` (not measured), start them with signed ``/chaos start``, wait
   until every fault is on and recorded, then let them settle;
2. **probe lag** over a quiet window: a run's next sample is due one interval after its previous one was
   taken, so the time between two probes of one run arriving at the target, minus the interval, is how
   late the second was taken (due → taken). Measured again while step 3 runs;
3. **ack latency at 20 clients**: ``/chaos help`` against chaosbot and against the bare Bolt app
   (``bench/bare_app.py``) in the same run, interleaved in turns (``ack_latency.concurrent``);
4. **RSS and threads** of chaosbot's gunicorn worker (RSS also summed with its master, as ack_latency does),
   above the idle footprint measured after a warm-up (two runs started, aborted and their retrospectives
   drawn, so what a first run loads once is not counted against the runs);
5. **abort all**: one ``/chaos abort all``; the time from the request to the last revert arriving at the
   toggle server, then ``/chaos resume``.

It prints a table and writes ``bench/results/many_runs.json`` and ``many_runs.png`` (the curves against N).

    .venv/bin/python bench/many_runs.py [--levels 10,50,100,200] [--window 10] [--quick]
        [--redis-url redis://127.0.0.1:6379/15] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
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
import abort_latency
import ack_latency
from sqlalchemy import create_engine, text

from bot.catalogue.service import load_catalogue
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from bot.runs.rules import PlanRequest
from storage.db import Database
from tests.fakeslack import wire

REDIS_BENCH_URL = "redis://127.0.0.1:6379/15"
PROBE_INTERVAL = 1.0
TARGETS = {"probe_lag_p99_ms": 200.0, "ack_p99_ratio": 1.0, "rss_mb_per_run": 1.0, "abort_all_ms": 1000.0}
START_CLIENTS = 8  # concurrent /chaos start requests while a level is set up
WARM_UP_RUNS = 2


class ProbeTarget:
    """The stop conditions' target: GET /probe/<i> answers 200 at once and records when each probe arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[int, list[float]] = {}
        self.lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                arrived = time.monotonic()
                parts = self.path.strip("/").split("/")
                if len(parts) == 2 and parts[0] == "probe" and parts[1].isdigit():
                    with target.lock:
                        target.arrivals.setdefault(int(parts[1]), []).append(arrived)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = h.BackendServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="probes", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def lags(self, slots: range, since: float, until: float) -> list[float]:
        """How late each probe of the slots was taken (seconds), for probes arriving in [since, until]: the
        time since the run's previous probe arrived, less the interval."""
        lags = []
        with self.lock:
            series = [list(self.arrivals.get(slot, [])) for slot in slots]
        for arrivals in series:
            for previous, current in itertools.pairwise(arrivals):
                if since <= current <= until:
                    lags.append(max(0.0, current - previous - PROBE_INTERVAL))
        return lags

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def experiment_id(slot: int) -> str:
    return f"CE-{100 + slot}"


def catalogue(toggles: abort_latency.ToggleServer, probes: ProbeTarget, count: int) -> str:
    entries = [
        f"""\
  - id: {experiment_id(slot)}
    title: Many runs {slot}
    hypothesis: Benchmark only.
    method: Benchmark only.
    expected_outcome: Every run is watched on time.
    safeguards: [Loopback only.]
    rollback_steps: ["Run `/chaos abort`."]
    environments: [staging]
    max_duration: 30m
    rto: 1m
    probe_interval: {PROBE_INTERVAL:g}s
    fault:
      adapter: http
      params:
        inject: {{method: PUT, url: "{toggles.url}/flags/{{{{run_id}}}}/on", json: {{enabled: true}}}}
        revert: {{method: PUT, url: "{toggles.url}/flags/{{{{run_id}}}}/off", json: {{enabled: false}}}}
    stop_conditions:
      - name: target answers
        probe: {{kind: http, url: "{probes.url}/probe/{slot}", timeout_seconds: 5}}
"""
        for slot in range(count)
    ]
    return "experiments:\n" + "".join(entries)


# -- the server's footprint --------------------------------------------------------------------------------


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def threads_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


# -- one level ---------------------------------------------------------------------------------------------


@dataclass
class Level:
    n: int
    started_seconds: float = 0.0
    quiet_lags: list[float] = field(default_factory=list)
    busy_lags: list[float] = field(default_factory=list)
    ack: dict[str, list[float]] = field(default_factory=dict)  # bare | chaosbot -> response times
    worker_rss_mb: float = 0.0
    total_rss_mb: float = 0.0
    threads: int = 0
    abort_all_seconds: float | None = None
    samples_stored: int = 0

    def row(self, idle: Level) -> dict[str, Any]:
        def ms(values: list[float], q: float) -> float | None:
            return round(h.percentile(values, q) * 1000, 1) if values else None

        bare, ours = ms(self.ack.get("bare", []), 99), ms(self.ack.get("chaosbot", []), 99)
        per_run = (self.worker_rss_mb - idle.worker_rss_mb) / self.n if self.n else 0.0
        return {
            "n": self.n,
            "start_all_seconds": round(self.started_seconds, 1),
            "probe_lag_quiet_p50_ms": ms(self.quiet_lags, 50),
            "probe_lag_quiet_p99_ms": ms(self.quiet_lags, 99),
            "probe_lag_busy_p50_ms": ms(self.busy_lags, 50),
            "probe_lag_busy_p99_ms": ms(self.busy_lags, 99),
            "probe_lag_samples": len(self.quiet_lags) + len(self.busy_lags),
            "ack_p99_chaosbot_ms": ours,
            "ack_p99_bare_ms": bare,
            "ack_p99_ratio": round(ours / bare, 2) if ours and bare else None,
            "ack_p50_chaosbot_ms": ms(self.ack.get("chaosbot", []), 50),
            "ack_p50_bare_ms": ms(self.ack.get("bare", []), 50),
            "worker_rss_mb": round(self.worker_rss_mb, 1),
            "total_rss_mb": round(self.total_rss_mb, 1),
            "rss_mb_per_run": round(per_run, 3),
            "threads": self.threads,
            "abort_all_ms": round(self.abort_all_seconds * 1000, 1) if self.abort_all_seconds is not None else None,
        }


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        server: h.Chaosbot,
        bare_url: str,
        toggles: abort_latency.ToggleServer,
        probes: ProbeTarget,
    ) -> None:
        self.args, self.server, self.bare_url = args, server, bare_url
        self.toggles, self.probes = toggles, probes
        workdir = Path(server.process.log or ".").parent
        self.db = Database(server.database_url)
        self.core = RunCore.build(
            self.db,
            load_catalogue(workdir / "catalogue.yml"),
            load_policy(workdir / "policy.yml"),
            zone=ZoneInfo("UTC"),
        )
        self.reader = create_engine(server.database_url, pool_size=2, max_overflow=2)
        self.worker = worker_pid(server.process.pid)

    def close(self) -> None:
        self.reader.dispose()
        self.db.dispose()

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.reader.connect() as connection:
            return list(connection.execute(text(sql), params).all())

    def command(self, words: str, user: str) -> None:
        status, _ = h.send(self.server.events_url, wire.slash_command(words, user, channel_id=h.CHANNEL))
        if status != 200:
            raise RuntimeError(f"/chaos {words} answered HTTP {status}")

    def footprint(self, level: Level) -> None:
        level.worker_rss_mb = rss_mb(self.worker)
        level.total_rss_mb = rss_mb(self.worker) + rss_mb(self.server.process.pid)
        level.threads = threads_of(self.worker)

    def idle(self) -> Level:
        """The footprint with no run running, after a warm-up (see ``warm_up``)."""
        self.warm_up()
        ack_latency.settle([self.server.process.pid])
        level = Level(0)
        self.footprint(level)
        return level

    def warm_up(self) -> None:
        """Two runs started and aborted, their retrospectives drawn: what a first run loads once (matplotlib for
        the charts, about 30 MB; the TLS context; the probes' client) is then in the idle footprint, not
        counted against the runs of the first level."""
        self.abort_all(self.start(WARM_UP_RUNS))
        h.wait_until(self.retrospectives_posted, 60, "the warm-up runs' retrospectives", interval=0.2)

    def retrospectives_posted(self) -> bool:
        return bool(self.query("SELECT count(*) FROM retrospectives")[0][0] >= WARM_UP_RUNS)

    def level(self, n: int) -> Level:
        level = Level(n)
        began = time.monotonic()
        run_ids = self.start(n)
        level.started_seconds = time.monotonic() - began
        print(f"  N={n}: {n} runs running after {level.started_seconds:.1f} s")
        time.sleep(self.args.settle)
        quiet_from = time.monotonic()
        time.sleep(self.args.window)
        level.quiet_lags = self.probes.lags(range(n), quiet_from, time.monotonic())
        busy_from = time.monotonic()
        level.ack = self.acks()
        level.busy_lags = self.probes.lags(range(n), busy_from, time.monotonic())
        self.footprint(level)
        level.abort_all_seconds = self.abort_all(run_ids)
        return level

    def start(self, n: int) -> list[int]:
        labels = {}
        for slot in range(n):
            request = PlanRequest(experiment_id(slot), "staging", planned_start=datetime.now(UTC))
            run = self.core.transitions.plan(h.OWNER, request)
            for approver in h.APPROVERS:
                self.core.transitions.approve(approver, run.id)
            labels[run.id] = f"RUN-{run.id}"
        pending = list(labels.values())
        lock = threading.Lock()

        def starter() -> None:
            while True:
                with lock:
                    if not pending:
                        return
                    label = pending.pop()
                self.command(f"start {label}", h.OWNER)

        threads = h.Threads()
        for index in range(START_CLIENTS):
            threads.spawn(starter, f"starter-{index}")
        timeout = 60 + n
        threads.join(timeout)
        for label in labels.values():
            h.wait_until(lambda label=label: self.toggles.at(label, "on"), timeout, f"{label}'s fault to be on")
        ids = ",".join(map(str, labels))
        h.wait_until(
            lambda: self.query(f"SELECT count(*) FROM runs WHERE state = 'running' AND id IN ({ids})")[0][0] == n,
            timeout,
            f"{n} runs recorded running",
        )
        return list(labels)

    def acks(self) -> dict[str, list[float]]:
        """Interleaved turns of 20 clients: bare, chaosbot, bare, chaosbot... (the order rotates)."""
        request = lambda: wire.slash_command("help", h.OWNER, channel_id=h.CHANNEL)  # noqa: E731
        bare = ack_latency.Workload("bare", "help", self.bare_url, 0, request)
        ours = ack_latency.Workload("chaosbot", "help", self.server.events_url, 0, request)
        times: dict[str, list[float]] = {"bare": [], "chaosbot": []}
        for turn, count in enumerate(ack_latency.shares(self.args.per_client, self.args.turns)):
            pair = [bare, ours] if turn % 2 == 0 else [ours, bare]
            for workload in pair:
                got, _errors, _wall = ack_latency.concurrent(workload, self.args.clients, count)
                times[workload.target] += got
        return times

    def abort_all(self, run_ids: list[int]) -> float:
        labels = [f"RUN-{run_id}" for run_id in run_ids]
        began = time.monotonic()
        self.command("abort all many-runs bench", h.RELIABILITY)
        reverted = [
            h.wait_until(lambda label=label: self.toggles.at(label, "off"), 60, f"{label} reverted") for label in labels
        ]
        ids = ",".join(map(str, run_ids))
        h.wait_until(
            lambda: not self.query(f"SELECT id FROM runs WHERE state = 'running' AND id IN ({ids})"),
            60 + len(run_ids),
            "every run recorded aborted",
        )
        self.command("resume", h.RELIABILITY)
        h.wait_until(lambda: not self.query("SELECT 1 FROM kill_switch WHERE engaged"), 30, "the kill switch released")
        return max(reverted) - began


# -- report ------------------------------------------------------------------------------------------------


def report(args: argparse.Namespace, idle: Level | None, levels: list[Level], complete: bool) -> dict[str, Any]:
    rows = [level.row(idle) for level in levels] if idle is not None else []
    document = {
        "benchmark": "many_runs",
        "complete": complete,
        "machine": h.machine(),
        "settings": {
            "database": "postgres + redis",
            "levels": args.levels,
            "probe_interval_seconds": PROBE_INTERVAL,
            "window_seconds": args.window,
            "clients": args.clients,
            "per_client": args.per_client,
            "server": "chaosbot serve, gunicorn gthread 1 worker x 8 threads (defaults)",
            "bare": "slack-bolt, gunicorn gthread 1 worker x 4 threads",
        },
        "targets": TARGETS,
        "idle": {"worker_rss_mb": idle.worker_rss_mb, "threads": idle.threads} if idle else None,
        "results": rows,
    }
    if not complete:
        print("\nINCOMPLETE (interrupted or failed): partial figures")
    m = document["machine"]
    print(f"\nmany running runs, one replica, PostgreSQL + Redis; probes every {PROBE_INTERVAL:g} s")
    print(f"machine: {m['nproc']} CPUs ({m['cpu']}), load {m['loadavg_1m_at_end']}, {m['date']}")
    if idle is not None:
        print(f"idle worker: {idle.worker_rss_mb:.1f} MB RSS, {idle.threads} threads\n")
    headers = [
        "N",
        "probe lag p50 / p99 ms (quiet)",
        "probe lag p50 / p99 ms (acks)",
        "ack p99 ms chaosbot / bare",
        "ratio",
        "worker RSS MB",
        "MB per run",
        "threads",
        "abort all ms",
    ]
    table = [
        [
            r["n"],
            f"{r['probe_lag_quiet_p50_ms']} / {r['probe_lag_quiet_p99_ms']}",
            f"{r['probe_lag_busy_p50_ms']} / {r['probe_lag_busy_p99_ms']}",
            f"{r['ack_p99_chaosbot_ms']} / {r['ack_p99_bare_ms']}",
            r["ack_p99_ratio"],
            r["worker_rss_mb"],
            r["rss_mb_per_run"],
            r["threads"],
            r["abort_all_ms"],
        ]
        for r in rows
    ]
    print(h.markdown_table(headers, table))
    h.write_json(args.output, document)
    print(f"JSON: {args.output}")
    if rows:
        chart(rows, document, args.chart)
        print(f"chart: {args.chart}")
    return document


def chart(rows: list[dict[str, Any]], document: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ns = [r["n"] for r in rows]
    figure = Figure(figsize=(11, 7.5))
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 2)

    def curve(ax: Any, key: str, label: str, style: str = "o-") -> None:
        points = [(n, r[key]) for n, r in zip(ns, rows, strict=True) if r[key] is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], style, label=label)

    ax = axes[0][0]
    curve(ax, "probe_lag_quiet_p50_ms", "p50, quiet")
    curve(ax, "probe_lag_quiet_p99_ms", "p99, quiet")
    curve(ax, "probe_lag_busy_p99_ms", "p99, during the acks", "s--")
    ax.axhline(TARGETS["probe_lag_p99_ms"], color="red", linewidth=0.8, linestyle=":", label="target p99")
    ax.set_title("probe lag (due to taken), ms")
    ax = axes[0][1]
    curve(ax, "ack_p99_chaosbot_ms", "chaosbot p99")
    curve(ax, "ack_p99_bare_ms", "bare Bolt app p99", "s--")
    ax.set_title("ack at 20 clients, ms")
    ax = axes[1][0]
    curve(ax, "worker_rss_mb", "worker RSS MB")
    curve(ax, "threads", "threads", "s--")
    ax.set_title("worker RSS (MB) and threads")
    ax = axes[1][1]
    curve(ax, "abort_all_ms", "abort all: every fault reverted")
    ax.axhline(TARGETS["abort_all_ms"], color="red", linewidth=0.8, linestyle=":", label="target")
    ax.set_title("abort all, ms")
    for row in axes:
        for ax in row:
            ax.set_xlabel("running runs (N)")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    m = document["machine"]
    figure.suptitle(f"chaosbot, one replica, PostgreSQL + Redis ({m['git_head']}, {m['nproc']} CPUs, {m['date']})")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)


# -- main --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="10,50,100,200", help="numbers of running runs, measured in turn")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of quiet probe-lag measurement")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the starts before measuring")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--per-client", type=int, default=40, help="requests per client, per app, per level")
    parser.add_argument("--turns", type=int, default=4, help="interleaved turns of the ack measurement")
    parser.add_argument("--quick", action="store_true", help="levels 10,100, a 5 s window, fewer requests")
    parser.add_argument("--redis-url", default=REDIS_BENCH_URL)
    parser.add_argument("--output", type=Path, default=h.RESULTS / "many_runs.json")
    parser.add_argument("--chart", type=Path, default=h.RESULTS / "many_runs.png")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server log)")
    args = parser.parse_args(argv)
    if args.quick:
        args.levels, args.window, args.settle, args.per_client, args.turns = "10,100", 5.0, 2.0, 10, 2
    args.levels = sorted({int(n) for n in args.levels.split(",")})
    if not args.levels or min(args.levels) < 1 or max(args.levels) > 200:
        parser.error("--levels takes numbers from 1 to 200")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    h.terminate_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="chaosbot-bench-many-"))
    idle: Level | None = None
    levels: list[Level] = []
    complete = failed = False
    began = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            toggles = abort_latency.ToggleServer()
            stack.callback(toggles.close)
            probes = ProbeTarget()
            stack.callback(probes.close)
            slack_url, _fake = h.start_fake_slack(stack)
            database_url = stack.enter_context(h.scratch_postgres())
            h.clear_redis_keys(args.redis_url)
            stack.callback(h.clear_redis_keys, args.redis_url)
            _bare, bare_url = ack_latency.start_bare(stack, workdir, slack_url)
            server = h.start_chaosbot(
                stack,
                workdir,
                slack_url=slack_url,
                database_url=database_url,
                catalogue=catalogue(toggles, probes, max(args.levels)),
                redis_url=args.redis_url,
            )
            bench = Bench(args, server, bare_url, toggles, probes)
            stack.callback(bench.close)
            print(f"servers up in {time.monotonic() - began:.1f} s (log: {workdir / 'chaosbot.log'})")
            idle = bench.idle()
            for n in args.levels:
                levels.append(bench.level(n))
                row = levels[-1].row(idle)
                print(
                    f"  N={n}: probe lag p99 {row['probe_lag_quiet_p99_ms']} ms quiet, "
                    f"{row['probe_lag_busy_p99_ms']} ms during acks; ack p99 ratio {row['ack_p99_ratio']}; "
                    f"{row['threads']} threads; abort all {row['abort_all_ms']} ms"
                )
            complete = True
    except KeyboardInterrupt:
        print("\ninterrupted: every process started was stopped; partial results follow", file=sys.stderr)
        failed = True
    except Exception:
        traceback.print_exc()
        failed = True
    finally:
        report(args, idle, levels, complete)
        print(f"took {time.monotonic() - began:.0f} s")
        if failed or args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
