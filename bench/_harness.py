"""Shared plumbing of the benchmarks: processes (fake Slack, ``chaosbot serve``, gunicorn, redis-server),
a scratch PostgreSQL database, signed requests, statistics and reporting.

Every process is started in its own session with ``PR_SET_PDEATHSIG`` (it gets SIGTERM if the bench dies)
and registered on an ``ExitStack``, so it is stopped at the end, on Ctrl-C and on error.

Run as a script (``python bench/_harness.py fakeslack``) it serves a FakeSlack and prints its URL: the
benchmarks run the fake Slack in its own process so its work never competes with the timing threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.fakeslack lives in the repository, not in the installed package

from tests.fakeslack import identity, wire  # noqa: E402

T = TypeVar("T")
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
POSTGRES_ADMIN_URL = os.environ.get(
    "CHAOSBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

# People of the generated policy.
OWNER = "U0OWNER"  # plans and starts runs; holds no approver role
RELIABILITY = "U0RELIAB"
SECURITY = "U0SECURE"
STAKEHOLDER = "U0STAKE1"
EXECUTIVE = "U0EXEC"
OUTSIDER = "U0NOBODY"
CHANNEL = identity.DEFAULT_CHANNEL_ID

POLICY = f"""\
roles:
  reliability_partner: {{users: [{RELIABILITY}]}}
  security_specialist: {{users: [{SECURITY}]}}
  stakeholder: {{users: [{STAKEHOLDER}]}}
  executive: {{users: [{EXECUTIVE}]}}
environments:
  staging:
    approvals: [reliability_partner, security_specialist, stakeholder]
plan_expiry: 24h
start_early: 30m
"""
APPROVERS = (RELIABILITY, SECURITY, STAKEHOLDER)


# -- small utilities ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll ``check`` until it returns something truthy (returned); TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "git_head": head.stdout.strip() or None,  # plus whatever uncommitted edits the tree had
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),  # other work on the machine skews the figures
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); with few samples p99 is close to max."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    return {
        "count": len(ms),
        "median_ms": round(percentile(ms, 50), 1),
        "p90_ms": round(percentile(ms, 90), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1) if ms else float("nan"),
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def terminate_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the ExitStack stops every process we started."""

    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


# -- processes ---------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the bench process goes away, even if it is killed."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Process:
    """A child process in its own session; ``stop`` terminates it (SIGKILL to its group after a grace period)."""

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None):
        self.name = name
        self.log = log
        out = log.open("wb") if log is not None else subprocess.DEVNULL
        try:
            self.popen = subprocess.Popen(
                list(argv),
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out if log is not None else subprocess.PIPE,
                stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # processes are started from the main thread only
            )
        finally:
            if log is not None:
                out.close()  # type: ignore[union-attr]  # the child holds its own descriptor

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.terminate()
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)  # its own session: only it and its children
            self.popen.wait(timeout=5)

    def tail(self, lines: int = 40) -> str:
        if self.log is None:
            return ""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def start_fake_slack(stack: contextlib.ExitStack) -> tuple[str, Process]:
    """A FakeSlack in its own process; returns its Web API URL (``SLACK_API_URL``) and the process."""
    process = Process("fakeslack", [sys.executable, str(Path(__file__).resolve()), "fakeslack"])
    stack.callback(process.stop)
    assert process.popen.stdout is not None
    line = process.popen.stdout.readline().decode().strip()
    if not line.startswith("http://"):
        raise RuntimeError(f"the fake Slack did not start (said {line!r})")
    return line, process


# -- tracing off and on, side by side ----------------------------------------------------------------------

TRACING_MODES = ("off", "on")


def tracing_modes(value: str) -> list[str]:
    """``--tracing off,on``: the modes, in order, each once."""
    modes = list(dict.fromkeys(mode.strip() for mode in value.split(",") if mode.strip()))
    if not modes or not set(modes) <= set(TRACING_MODES):
        raise ValueError("--tracing takes off, on or off,on")
    return modes


def start_collector(stack: contextlib.ExitStack) -> str:
    """A local OTLP/HTTP collector (``tests/otlp.py``) in its own process, so decoding the batches never competes
    with the timing threads; returns its endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    process = Process("otlp collector", [sys.executable, str(Path(__file__).resolve()), "collector"])
    stack.callback(process.stop)
    assert process.popen.stdout is not None
    line = process.popen.stdout.readline().decode().strip()
    if not line.startswith("http://"):
        raise RuntimeError(f"the OTLP collector did not start (said {line!r})")
    return line


def tracing_env(mode: str, endpoint: str | None) -> dict[str, str]:
    """``chaosbot serve``'s environment for a tracing mode: nothing when off; when on, every span exported over
    OTLP/HTTP to ``endpoint`` in the SDK's default batches (every 5 s, or 512 spans), as in production."""
    if mode == "off":
        return {}
    assert endpoint is not None
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "chaosbot-bench"}


def redis_url_for(base: str | None, tracing: str) -> str | None:
    """Each server of a side-by-side run its own Redis database (the next number for tracing on): leases, the
    kill switch's mirror and the replica registry are keyed by run id and replica, and must not be shared."""
    if base is None or tracing == "off":
        return base
    prefix, _, number = base.rpartition("/")
    return f"{prefix}/{int(number or 0) + 1}"


def spans_collected(endpoint: str) -> dict[str, int]:
    status, body = http_get(f"{endpoint}/count")
    return dict(json.loads(body)) if status == 200 else {}


def start_redis_server(stack: contextlib.ExitStack, workdir: Path) -> int:
    """A dedicated, throwaway redis-server on a free port (no persistence); returns the port."""
    port = free_port()
    argv = [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--logfile",
        "",
    ]
    process = Process(f"redis-{port}", argv, log=workdir / f"redis-{port}.log")
    stack.callback(process.stop)
    import redis

    def answers() -> bool:
        with contextlib.suppress(redis.RedisError):
            return bool(redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
        return False

    wait_until(answers, 10, f"redis-server on port {port}", interval=0.05)
    return port


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped at the end; yields its SQLAlchemy URL."""
    import psycopg

    name = f"chaosbot_bench_{uuid.uuid4().hex[:10]}"
    admin_dsn = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clear_redis_keys(url: str, pattern: str = "chaosbot:*") -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=pattern, count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@dataclass
class Chaosbot:
    """``chaosbot db upgrade`` + ``chaosbot serve`` as a subprocess, configured like tests/slack/conftest.py."""

    process: Process
    url: str
    database_url: str

    @property
    def events_url(self) -> str:
        return f"{self.url}/slack/events"


def start_chaosbot(
    stack: contextlib.ExitStack,
    workdir: Path,
    *,
    slack_url: str,
    database_url: str,
    catalogue: str,
    redis_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Chaosbot:
    policy_path, catalogue_path = workdir / "policy.yml", workdir / "catalogue.yml"
    policy_path.write_text(POLICY, encoding="utf-8")
    catalogue_path.write_text(catalogue, encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CHAOSBOT_", "REDIS_URL", "OTEL_"))}
    env.update(
        DATABASE_URL=database_url,
        PORT=str(port),
        CHAOSBOT_BIND_ADDRESS="127.0.0.1",
        SLACK_BOT_TOKEN=identity.BOT_TOKEN,
        SLACK_SIGNING_SECRET=identity.SIGNING_SECRET,
        SLACK_API_URL=slack_url,
        CHAOSBOT_CHANNEL=CHANNEL,
        CHAOSBOT_POLICY=str(policy_path),
        CHAOSBOT_CATALOGUE=str(catalogue_path),
        CHAOSBOT_LOG_FORMAT="json",
        CHAOSBOT_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        **(extra_env or {}),
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    chaosbot = str(BIN / "chaosbot")
    upgrade = subprocess.run([chaosbot, "db", "upgrade"], env=env, capture_output=True, timeout=120, check=False)
    if upgrade.returncode != 0:
        raise RuntimeError(f"chaosbot db upgrade failed:\n{upgrade.stderr.decode(errors='replace')}")
    argv = [chaosbot, "serve"]
    process = Process("chaosbot", argv, env=env, log=workdir / "chaosbot.log")
    stack.callback(process.stop)
    server = Chaosbot(process, f"http://127.0.0.1:{port}", database_url)
    wait_healthy(process, server.url)
    return server


def wait_healthy(process: Process, url: str, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} never answered {url}/healthz:\n{process.tail()}")


class BackendServer(ThreadingHTTPServer):
    """A bench's stand-in backend: a listen backlog for hundreds of simultaneous connections. With the default
    of 5, the sixth of many reverts arriving at once had its SYN dropped and retried a second later, and the
    bench measured that second as the bot's."""

    request_queue_size = 1024
    daemon_threads = True


# -- requests ----------------------------------------------------------------------------------------------


def send(events_url: str, request: wire.SignedRequest, timeout: float = 10.0) -> tuple[int, float]:
    """POST a signed Slack request on a new connection (as Slack does); returns (status, seconds)."""
    started = time.perf_counter()
    status, _headers, _body = wire.post(events_url, request.body, request.headers, timeout=timeout)
    return status, time.perf_counter() - started


class Threads:
    """Start threads now, join them later with a bound; re-raise the first error a thread hit."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def spawn(self, target: Callable[[], None], name: str = "bench") -> None:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                self.errors.append(exc)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self.threads):
            raise TimeoutError(f"{sum(t.is_alive() for t in self.threads)} thread(s) still busy after {timeout} s")
        if self.errors:
            raise self.errors[0]


# -- the fake Slack process --------------------------------------------------------------------------------


def _serve_fake_slack() -> int:
    from tests.fakeslack.server import FakeSlack

    fake = FakeSlack().start()
    for user in (OWNER, RELIABILITY, SECURITY, STAKEHOLDER, EXECUTIVE, OUTSIDER):
        fake.add_user(user)
    print(fake.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    fake.stop()
    return 0


def _serve_collector() -> int:
    from tests.otlp import Collector

    collector = Collector().start()
    print(collector.endpoint, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    collector.stop()
    return 0


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["fakeslack"]:
        sys.exit(_serve_fake_slack())
    if sys.argv[1:] == ["collector"]:
        sys.exit(_serve_collector())
    sys.exit(f"usage: {sys.argv[0]} fakeslack|collector")
