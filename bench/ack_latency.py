"""Ack latency and idle footprint: a bare Bolt app (the product's reference) against the real ``chaosbot serve``.

(a) ``bench/bare_app.py``: slack-bolt whose listeners only ack, gunicorn gthread 1 worker x 4 threads, Bolt's
    WSGI adapter, ``process_before_response`` at Bolt's default. The target (issue 10): chaosbot's p99 no worse
    than the bare app's in the same run (ratio <= 1.0), sequential and concurrent, on both databases.
(b) ``chaosbot serve`` with default settings (1 worker x 8 threads), doing its real work: the ack, then in its
    pool the delivery ledger, an audit record and an ephemeral reply (``/chaos help``, ``/chaos status``), or a
    refused ``run.approve`` click (a database transaction, then an ephemeral reply).

Measured: the HTTP response time seen by the client (connect, send, ack received), each request signed and
on a new connection like Slack's. Sequential (``--sequential`` requests) and concurrent (``--clients`` threads
x ``--per-client`` requests each). Each phase runs in ``--blocks`` interleaved turns (bare, chaosbot, ...),
and after each turn the bench waits until both servers and the fake Slack are idle (no CPU used).

Before the requests, after start-up and 5 s idle: the resident memory (VmRSS) of each server's gunicorn
master plus workers, summed; the target is under 120 MB for chaosbot.

``--tracing off,on`` runs two chaosbot servers side by side, interleaved like the rest (each with its own
database): one with tracing off (no ``OTEL_EXPORTER_OTLP_ENDPOINT``), one exporting every span over OTLP/HTTP
to a local collector in its own process (``chaosbot+otel``), and prints on over off.

    .venv/bin/python bench/ack_latency.py [--database sqlite|postgres] [--sequential 300]
        [--clients 20] [--per-client 30] [--blocks 10] [--env NAME=VALUE ...] [--tracing off|on|off,on]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import _harness as h

from bot.catalogue.service import load_catalogue
from bot.interface.metadata import RunRef
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from bot.runs.rules import PlanRequest
from storage.db import Database
from tests.fakeslack import identity, wire

REDIS_BENCH_URL = "redis://127.0.0.1:6379/14"  # above the tests' 4-13
TARGET_RATIO = 1.0  # issue 10: p99 no worse than the bare Bolt app in the same run
TARGET_RSS_MB = 120.0
IDLE_SECONDS = 5.0
REFERENCE = {"sequential": 16.0, "concurrent": 79.0}  # the bare app's p99 (ms) quoted in the product target

CATALOGUE = """\
experiments:
  - id: CE-90
    title: Rehearsed flag flip
    hypothesis: The portal keeps serving when the share-token flag flips.
    method: Flip the share-token flag (rehearsed by the dry_run adapter, nothing is contacted).
    expected_outcome: No user-visible errors.
    safeguards: [Dry run only.]
    rollback_steps: ["Run `/chaos abort`."]
    environments: [staging]
    fault:
      adapter: dry_run
      params:
        would_use: http
        params:
          inject: {method: PUT, url: "http://127.0.0.1:9/flags/x", json: {enabled: true}}
          revert: {method: PUT, url: "http://127.0.0.1:9/flags/x", json: {enabled: false}}
    max_duration: 45s
    rto: 10s
"""


@dataclass
class Workload:
    target: str  # bare | chaosbot
    kind: str  # help | status | approve
    url: str
    pid: int  # the server's gunicorn master: its CPU (and its worker's) is counted per request
    build: Callable[[], wire.SignedRequest]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


# -- process CPU, to wait for idle servers ----------------------------------------------------------------


def tree_cpu_ticks(pid: int) -> int:
    """utime + stime of a process and all its descendants, in clock ticks."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def settle(pids: list[int], timeout: float = 30.0) -> float:
    """Wait until the processes use (almost) no CPU for 0.3 s; returns the seconds waited."""
    started = time.monotonic()
    quiet_ticks = 2  # 20 ms of CPU in 300 ms: timers and scheduler jobs, not request work
    while time.monotonic() - started < timeout:
        before = sum(tree_cpu_ticks(pid) for pid in pids)
        time.sleep(0.3)
        if sum(tree_cpu_ticks(pid) for pid in pids) - before <= quiet_ticks:
            break
    return time.monotonic() - started


def tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory (VmRSS) of a process and its descendants, in MB: each process and their sum.

    The sum counts pages shared after fork twice, like ``ps`` and container memory figures built from RSS do."""
    sizes: dict[str, float] = {}
    stack = [pid]
    while stack:
        current = stack.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            status = Path(f"/proc/{current}/status").read_text()
            kb = next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]
            sizes[str(current)] = round(int(kb) / 1024, 1)
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(child) for child in (task / "children").read_text().split()]
    return {
        "processes": len(sizes),
        "sum_mb": round(sum(sizes.values()), 1),
        **{f"pid_{k}": v for k, v in sizes.items()},
    }


# -- load generation ---------------------------------------------------------------------------------------


def timed(url: str, request: wire.SignedRequest) -> tuple[float, bool]:
    try:
        status, elapsed = h.send(url, request, timeout=15)
    except OSError:
        return float("nan"), False
    return elapsed, status == 200


def sequential(workload: Workload, count: int) -> tuple[list[float], int, float]:
    latencies, errors = [], 0
    began = time.perf_counter()
    for _ in range(count):
        elapsed, ok = timed(workload.url, workload.build())
        if ok:
            latencies.append(elapsed)
        else:
            errors += 1
    return latencies, errors, time.perf_counter() - began


def concurrent(workload: Workload, clients: int, per_client: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        mine, failed = [], 0
        barrier.wait(timeout=30)
        for _ in range(per_client):
            elapsed, ok = timed(workload.url, workload.build())
            if ok:
                mine.append(elapsed)
            else:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = h.Threads()
    for i in range(clients):
        threads.spawn(client, f"client-{i}")
    barrier.wait(timeout=30)
    began = time.perf_counter()
    threads.join(timeout=clients * per_client * 15)
    return latencies, errors[0], time.perf_counter() - began


def shares(total: int, blocks: int) -> list[int]:
    """``total`` split into ``blocks`` near-equal parts (the first parts take the remainder)."""
    size, extra = divmod(total, blocks)
    return [size + (1 if i < extra else 0) for i in range(blocks)]


def measure(workloads: list[Workload], args: argparse.Namespace, pids: list[int]) -> None:
    """Each phase in ``args.blocks`` blocks; in every block each workload takes its turn (the order rotates).

    Interleaving spreads whatever else the machine does over every workload alike, instead of letting a
    burst of someone else's work land on one app's whole phase. After each turn the bench waits until the
    servers are idle, so no app's background work overlaps another's turn."""
    for workload in workloads:
        sequential(workload, args.warmup)
    settle(pids)
    tick = 1000 / os.sysconf("SC_CLK_TCK")
    for phase in ("sequential", "concurrent"):
        latencies: dict[int, list[float]] = {id(w): [] for w in workloads}
        totals = {id(w): {"errors": 0, "wall": 0.0, "cpu_ms": 0.0, "settle": 0.0} for w in workloads}
        counts = shares(args.sequential if phase == "sequential" else args.per_client, args.blocks)
        for block, count in enumerate(counts):
            turn = workloads[block % len(workloads) :] + workloads[: block % len(workloads)]
            for workload in turn:
                if count == 0:
                    continue
                cpu_before = tree_cpu_ticks(workload.pid)
                if phase == "sequential":
                    got, errors, wall = sequential(workload, count)
                else:
                    got, errors, wall = concurrent(workload, args.clients, count)
                waited = settle(pids)  # the server's background work for these requests is done after this
                mine = totals[id(workload)]
                mine["cpu_ms"] += (tree_cpu_ticks(workload.pid) - cpu_before) * tick
                mine["errors"] += errors
                mine["wall"] += wall
                mine["settle"] += waited
                latencies[id(workload)] += got
        for workload in workloads:
            got, mine = latencies[id(workload)], totals[id(workload)]
            sent = len(got) + int(mine["errors"])
            stats = h.summary_ms(got) if got else {"count": 0}
            workload.results[phase] = {
                **stats,
                "p50_ms": stats.get("median_ms"),
                "errors": int(mine["errors"]),
                "requests_per_second": round(sent / max(mine["wall"], 1e-9), 1),
                "server_cpu_ms_per_request": round(mine["cpu_ms"] / max(1, sent), 2),
                "settle_seconds_after": round(mine["settle"], 2),
            }
            print(
                f"  {workload.target:8} {workload.kind:8} {phase:10} p50 {stats.get('median_ms')} ms, "
                f"p99 {stats.get('p99_ms')} ms, {int(mine['errors'])} errors, "
                f"{workload.results[phase]['server_cpu_ms_per_request']} ms server CPU/request"
            )


# -- servers -----------------------------------------------------------------------------------------------


def start_bare(stack: contextlib.ExitStack, workdir: Path, slack_url: str) -> tuple[h.Process, str]:
    port = h.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CHAOSBOT_"))}
    env.update(
        SLACK_BOT_TOKEN=identity.BOT_TOKEN, SLACK_SIGNING_SECRET=identity.SIGNING_SECRET, SLACK_API_URL=slack_url
    )
    argv = [
        str(h.BIN / "gunicorn"),
        "--worker-class",
        "gthread",
        "--workers",
        "1",
        "--threads",
        "4",
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(h.ROOT / "bench"),
        "bare_app:app",
    ]
    process = h.Process("bare bolt app", argv, env=env, log=workdir / "bare.log")
    stack.callback(process.stop)
    url = f"http://127.0.0.1:{port}/slack/events"

    def answers() -> bool:
        if not process.alive():
            raise RuntimeError(f"the bare app exited:\n{process.tail()}")
        with contextlib.suppress(OSError):
            return h.send(url, wire.slash_command("help"), timeout=2)[0] == 200
        return False

    h.wait_until(answers, 45, "the bare app to answer", interval=0.1)
    return process, url


def start_server(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    workdir: Path,
    slack_url: str,
    endpoint: str | None,
    tracing: str,
) -> h.Chaosbot:
    """``chaosbot serve`` on a database of its own, with tracing off or exporting to ``endpoint``."""
    workdir.mkdir(parents=True, exist_ok=True)
    if args.database == "postgres":
        database_url = stack.enter_context(h.scratch_postgres())
    else:
        database_url = f"sqlite:///{workdir / 'chaosbot.db'}"
    return h.start_chaosbot(
        stack,
        workdir,
        slack_url=slack_url,
        database_url=database_url,
        catalogue=CATALOGUE,
        redis_url=h.redis_url_for(args.redis_url, tracing),
        extra_env={**dict(item.split("=", 1) for item in args.env), **h.tracing_env(tracing, endpoint)},
    )


def requests_to(*, run_id: int) -> dict[str, Callable[[], wire.SignedRequest]]:
    """The signed requests each workload sends; ``run_id``: the planned run a refused approve click names."""
    value = RunRef(run=run_id).dump()
    return {
        "help": lambda: wire.slash_command("help", h.OWNER, channel_id=h.CHANNEL),
        "status": lambda: wire.slash_command("status", h.OWNER, channel_id=h.CHANNEL),
        "approve": lambda: wire.block_action("run.approve", value, h.OUTSIDER, channel_id=h.CHANNEL),
    }


def planned_run(database_url: str, workdir: Path) -> int:
    """A planned run for the refused approve clicks (planned directly through the core: not measured)."""
    db = Database(database_url)
    try:
        core = RunCore.build(
            db, load_catalogue(workdir / "catalogue.yml"), load_policy(workdir / "policy.yml"), zone=ZoneInfo("UTC")
        )
        start = datetime.now(UTC) + timedelta(hours=1)
        return core.transitions.plan(h.OWNER, PlanRequest("CE-90", "staging", planned_start=start)).id
    finally:
        db.dispose()


# -- report ------------------------------------------------------------------------------------------------


def report(
    args: argparse.Namespace, workloads: list[Workload], footprint: dict[str, dict[str, float]], complete: bool
) -> None:
    rows = []
    for w in workloads:
        for phase, r in w.results.items():
            rows.append(
                [
                    w.target,
                    w.kind,
                    phase,
                    r.get("count", 0),
                    r.get("median_ms", "-"),
                    r.get("p90_ms", "-"),
                    r.get("p99_ms", "-"),
                    r.get("max_ms", "-"),
                    r["requests_per_second"],
                    r["server_cpu_ms_per_request"],
                    r["errors"],
                ]
            )
    by_key = {(w.target, w.kind): w for w in workloads}
    ratios, ratio_rows = [], []
    for w in workloads:
        if not w.target.startswith("chaosbot"):
            continue
        reference = by_key.get(("bare", "approve" if w.kind == "approve" else "help"))
        if reference is None:
            continue
        for phase in ("sequential", "concurrent"):
            ours, bare = w.results.get(phase, {}), reference.results.get(phase, {})
            if not ours.get("count") or not bare.get("count"):
                continue
            p50 = round(ours["median_ms"] / bare["median_ms"], 2)
            p99 = round(ours["p99_ms"] / bare["p99_ms"], 2)
            within = p99 <= TARGET_RATIO
            ratios.append(
                {
                    "target": w.target,
                    "kind": w.kind,
                    "phase": phase,
                    "versus": f"bare {reference.kind}",
                    "p50": p50,
                    "p99": p99,
                }
            )
            ratio_rows.append([w.target, w.kind, phase, f"bare {reference.kind}", p50, p99, _yes(within)])
    tracing_rows, tracing_ratios = tracing_comparison(workloads)
    document: dict[str, Any] = {
        "benchmark": "ack_latency",
        "complete": complete,
        "machine": h.machine(),
        "settings": {
            "database": args.database,
            "sequential": args.sequential,
            "clients": args.clients,
            "per_client": args.per_client,
            "warmup": args.warmup,
            "blocks": args.blocks,
            "bare": "slack-bolt, gunicorn gthread 1 worker x 4 threads, process_before_response=False (default)",
            "chaosbot": "chaosbot serve, gunicorn gthread 1 worker x 8 threads (defaults)",
        },
        "measured": "client-side HTTP response time of a signed request on a new connection (connect to ack)",
        "reference_bare_p99_ms": REFERENCE,
        "target_ratio": TARGET_RATIO,
        "results": [{"target": w.target, "kind": w.kind, **w.results} for w in workloads],
        "ratios_chaosbot_over_bare": ratios,
        "idle_rss_mb": footprint,
        "target_rss_mb": TARGET_RSS_MB,
        "tracing": {"modes": args.tracing, "on_over_off": tracing_ratios, "spans_collected": args.spans_collected},
    }
    m = document["machine"]
    if not complete:
        print("\nINCOMPLETE (interrupted or failed): partial figures")
    print(
        f"\nack latency ({args.database}): sequential {args.sequential}, concurrent {args.clients} x {args.per_client}"
    )
    print(f"machine: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, {m['date']}\n")
    headers = [
        "app",
        "request",
        "phase",
        "count",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "req/s",
        "CPU ms/req",
        "errors",
    ]
    print(h.markdown_table(headers, rows))
    if ratio_rows:
        print()
        print(
            h.markdown_table(
                ["app", "request", "phase", "versus", "p50 ratio", "p99 ratio", f"p99 <= {TARGET_RATIO}x"],
                ratio_rows,
            )
        )
    if tracing_rows:
        print(f"\ntracing on over off (spans received by the collector: {args.spans_collected})")
        headers = [
            "request",
            "phase",
            "p50 off / on ms",
            "p99 off / on ms",
            "p50 on/off",
            "p99 on/off",
            "CPU ms/req off / on",
        ]
        print(h.markdown_table(headers, tracing_rows))
    if footprint:
        print()
        rss_rows = [
            [name, sizes["processes"], sizes["sum_mb"], "" if name == "bare" else _yes(sizes["sum_mb"] < TARGET_RSS_MB)]
            for name, sizes in footprint.items()
        ]
        print(h.markdown_table(["app", "processes", "idle RSS MB (sum)", f"< {TARGET_RSS_MB:.0f} MB"], rss_rows))
    h.write_json(args.output, document)
    print(f"JSON: {args.output}")


def tracing_comparison(workloads: list[Workload]) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """chaosbot with tracing on over chaosbot with it off, per request and phase (when both ran)."""
    off = {w.kind: w for w in workloads if w.target == target_name("off")}
    rows, ratios = [], []
    for on in (w for w in workloads if w.target == target_name("on") and w.kind in off):
        for phase in ("sequential", "concurrent"):
            a, b = off[on.kind].results.get(phase, {}), on.results.get(phase, {})
            if not a.get("count") or not b.get("count"):
                continue
            p50, p99 = round(b["median_ms"] / a["median_ms"], 2), round(b["p99_ms"] / a["p99_ms"], 2)
            cpu = f"{a['server_cpu_ms_per_request']} / {b['server_cpu_ms_per_request']}"
            rows.append(
                [
                    on.kind,
                    phase,
                    f"{a['median_ms']} / {b['median_ms']}",
                    f"{a['p99_ms']} / {b['p99_ms']}",
                    p50,
                    p99,
                    cpu,
                ]
            )
            ratios.append({"kind": on.kind, "phase": phase, "p50": p50, "p99": p99})
    return rows, ratios


def target_name(tracing: str) -> str:
    return "chaosbot" if tracing == "off" else "chaosbot+otel"


def _yes(met: bool) -> str:
    return "yes" if met else "NO"


# -- main --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--per-client", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=10, help="interleaved turns per phase (see measure)")
    parser.add_argument("--kinds", default="help,status,approve", help="chaosbot requests to measure")
    parser.add_argument("--redis-url", default=REDIS_BENCH_URL, help="REDIS_URL of chaosbot with --database postgres")
    parser.add_argument("--output", type=Path, default=h.RESULTS / "ack_latency.json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, SQLite file)")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra environment for chaosbot serve"
    )
    parser.add_argument("--tracing", default="off", help="off, on, or off,on: chaosbot servers side by side")
    args = parser.parse_args(argv)
    try:
        args.tracing = h.tracing_modes(args.tracing)
    except ValueError as exc:
        parser.error(str(exc))
    args.spans_collected = {}
    if not (1 <= args.sequential <= 2000 and 1 <= args.clients <= 50 and 1 <= args.per_client <= 200):
        parser.error("keep it modest: --sequential <= 2000, --clients <= 50, --per-client <= 200")
    args.kind_list = [k for k in args.kinds.split(",") if k]
    if not set(args.kind_list) <= {"help", "status", "approve"}:
        parser.error("--kinds takes help, status, approve")
    if args.database == "sqlite":
        args.redis_url = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    h.terminate_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="chaosbot-bench-ack-"))
    workloads: list[Workload] = []
    footprint: dict[str, dict[str, float]] = {}
    complete = failed = False
    try:
        with contextlib.ExitStack() as stack:
            slack_url, fake = h.start_fake_slack(stack)
            for redis_url in {h.redis_url_for(args.redis_url, tracing) for tracing in args.tracing} - {None}:
                assert redis_url is not None
                h.clear_redis_keys(redis_url)
                stack.callback(h.clear_redis_keys, redis_url)
            bare, bare_url = start_bare(stack, workdir, slack_url)
            endpoint = h.start_collector(stack) if "on" in args.tracing else None
            servers = {
                target_name(mode): start_server(stack, args, workdir / f"tracing-{mode}", slack_url, endpoint, mode)
                for mode in args.tracing
            }
            pids = [bare.pid, fake.pid, *(server.process.pid for server in servers.values())]
            settle(pids)
            time.sleep(IDLE_SECONDS)  # the scheduler's first jobs and the role refresher have run by then
            footprint["bare"] = tree_rss_mb(bare.pid)
            for name, server in servers.items():
                footprint[name] = tree_rss_mb(server.process.pid)
            print("idle RSS: " + ", ".join(f"{name} {sizes['sum_mb']} MB" for name, sizes in footprint.items()))
            bare_requests = requests_to(run_id=1)  # the bare app only acks: any run will do
            workloads = [
                Workload("bare", kind, bare_url, bare.pid, bare_requests[kind]) for kind in ("help", "approve")
            ]
            for name, server in servers.items():
                requests = requests_to(run_id=planned_run(server.database_url, Path(server.process.log or ".").parent))
                workloads += [
                    Workload(name, kind, server.events_url, server.process.pid, requests[kind])
                    for kind in args.kind_list
                ]
            print(f"servers up; work directory {workdir}")
            measure(workloads, args, pids)
            if endpoint is not None:
                args.spans_collected = h.spans_collected(endpoint)
            complete = True
    except KeyboardInterrupt:
        print("\ninterrupted: every process started was stopped; partial results follow", file=sys.stderr)
        failed = True
    except Exception:
        traceback.print_exc()
        failed = True
    finally:
        report(args, workloads, footprint, complete)
        if failed or args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
