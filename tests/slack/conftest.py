"""The real chaosbot server (``chaosbot db upgrade`` + ``chaosbot serve``) against the fake Slack.

``chaosbot_servers`` starts at most one server per database for the whole session: SQLite (a temporary file)
and PostgreSQL (a scratch database, with Redis db 15). ``bot`` drives the server parametrised over both;
``sqlite_bot`` only the SQLite one. Every request the tests send is signed and in Slack's wire format.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from bot.interface.alarms.messages import alarm_message
from bot.interface.ids import ACKNOWLEDGE_ALARM
from storage.migrate import upgrade
from tests.fakeslack import identity, wire
from tests.fakeslack.server import Call, FakeSlack
from tests.intervals import DEAD_MANS_SWITCH_SECONDS, FAST_INTERVALS, LEASE_SECONDS, TICK_SECONDS
from tests.services import REDIS_TEST_URL, redis_client_or_skip, scratch_postgres_database
from tests.waiting import holds_for, wait_until

# The tests of this folder import these from here.
__all__ = ["DEAD_MANS_SWITCH_SECONDS", "LEASE_SECONDS", "TICK_SECONDS", "holds_for", "wait_until"]

T = TypeVar("T")

CHANNEL = identity.DEFAULT_CHANNEL_ID  # CHAOSBOT_CHANNEL: where run messages go
OWNER = "U0OWNER"  # plans runs; holds no approver role
RELIABILITY = "U0RELIAB"
SECURITY = "U0SECURE"
STAKEHOLDER_GROUP = "S0STAKE"
STAKEHOLDERS = ("U0STAKE1", "U0STAKE2")  # members of the user group, set in the fake for every test
STAKEHOLDER = STAKEHOLDERS[1]
EXECUTIVE = "U0EXEC"
OUTSIDER = "U0NOBODY"  # holds no role at all
EXPERIMENT = "CE-90"
OTHER_EXPERIMENT = "CE-91"
BROKEN_EXPERIMENT = "CE-92"  # http adapter against a closed loopback port: inject and revert fail
MAX_DURATION_SECONDS = 45

POLICY = f"""\
roles:
  reliability_partner: {{users: [{RELIABILITY}]}}
  security_specialist: {{users: [{SECURITY}]}}
  stakeholder: {{groups: [{STAKEHOLDER_GROUP}]}}
  executive: {{users: [{EXECUTIVE}]}}
environments:
  staging:
    approvals: [reliability_partner, security_specialist, stakeholder]
  production:
    approvals: [reliability_partner, security_specialist, stakeholder, executive]
plan_expiry: 24h
start_early: 30m
"""

CATALOGUE = f"""\
experiments:
  - id: {EXPERIMENT}
    title: Rehearsed flag flip
    hypothesis: The portal keeps serving when the share-token flag flips.
    method: Flip the share-token flag (rehearsed by the dry_run adapter, nothing is contacted).
    expected_outcome: No user-visible errors.
    safeguards:
      - Dry run only.
    rollback_steps:
      - "Run `/chaos abort`."
      - Check the dashboard.
    environments: [staging, production]
    fault:
      adapter: dry_run
      params:
        would_use: http
        params:
          inject: {{method: PUT, url: "http://127.0.0.1:9/flags/share-token", json: {{enabled: true}}}}
          revert: {{method: PUT, url: "http://127.0.0.1:9/flags/share-token", json: {{enabled: false}}}}
    max_duration: {MAX_DURATION_SECONDS}s
    rto: 10s
    probe_interval: 1s
  - id: {OTHER_EXPERIMENT}
    title: Rehearsed cache pause
    hypothesis: Share links validate against the database while the cache is paused.
    method: Pause the cache clients (rehearsed).
    expected_outcome: Latency stays under 500 ms.
    safeguards:
      - Dry run only.
    rollback_steps:
      - "Run `/chaos abort`."
    environments: [staging]
    fault:
      adapter: dry_run
      params:
        would_use: redis
        params: {{url: "redis://127.0.0.1:9/0", mode: all}}
    max_duration: 30s
    rto: 10s
  - id: {BROKEN_EXPERIMENT}
    title: Flag flip against a dead flag API
    hypothesis: Nothing; the flag API is down, so injecting and reverting both fail.
    method: Flip a flag through an API that refuses connections.
    expected_outcome: The start fails and the channel is alerted to roll back by hand.
    safeguards:
      - Loopback only.
    rollback_steps:
      - Turn the flag off by hand.
    environments: [staging]
    fault:
      adapter: http
      params:
        timeout_seconds: 1
        retries: 0
        backoff_seconds: 0
        inject: {{method: PUT, url: "http://127.0.0.1:9/flags/dead", json: {{enabled: true}}}}
        revert: {{method: PUT, url: "http://127.0.0.1:9/flags/dead", json: {{enabled: false}}}}
    max_duration: 30s
    rto: 10s
"""

RUN_TITLE = re.compile(r"^RUN-(\d+) · ")
WAITING = "('planned', 'approved')"  # runs whose notice or automatic start is still to come
ROLE_CACHE_SECONDS = 1  # the "sqlite-short-role-cache" server reads user groups again after this long
EXTRA_ENV = {"sqlite-short-role-cache": {"CHAOSBOT_ROLE_CACHE_SECONDS": str(ROLE_CACHE_SECONDS)}}
ALERT_REPEAT_SECONDS = 1  # the "sqlite-fast-alarms" server repeats a revert-failure alert this often
EXTRA_ENV["sqlite-fast-alarms"] = {"CHAOSBOT_ALERT_REPEAT_SECONDS": str(ALERT_REPEAT_SECONDS)}

# -- HTTP ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the server process --------------------------------------------------------------------------------


_sqlite_template: Path | None = None
_template_lock = threading.Lock()


def migrated(database_url: str) -> None:
    """The database at the head revision, as ``chaosbot db upgrade`` leaves it (tests/core/test_storage.py runs
    that command): a new SQLite file is a copy of one migrated once per test process, anything else is upgraded
    here. A server start then costs no extra process and no migration run."""
    global _sqlite_template
    path = Path(database_url.removeprefix("sqlite:///")) if database_url.startswith("sqlite:///") else None
    if path is None or path.exists():
        upgrade(database_url)
        return
    with _template_lock:
        if _sqlite_template is None:
            folder = tempfile.mkdtemp(prefix="chaosbot-template-")
            atexit.register(shutil.rmtree, folder, True)
            template = Path(folder) / "template.db"
            upgrade(f"sqlite:///{template}")
            _sqlite_template = template
    shutil.copy(_sqlite_template, path)


class ChaosbotServer:
    """One ``chaosbot serve`` subprocess, its database and its log file."""

    def __init__(
        self,
        kind: str,
        workdir: Path,
        database_url: str,
        fake: FakeSlack,
        redis_url: str | None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.database_url = database_url
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.events_url = f"{self.url}/slack/events"
        self.log_path = workdir / f"chaosbot-{kind}.log"
        policy, catalogue = workdir / "policy.yml", workdir / "catalogue.yml"
        policy.write_text(POLICY, encoding="utf-8")
        catalogue.write_text(CATALOGUE, encoding="utf-8")
        # OTEL_*: a developer's own collector must not receive the test servers' traces (test_traces.py sets its own).
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CHAOSBOT_", "REDIS_URL", "OTEL_"))}
        env.update(
            DATABASE_URL=database_url,
            PORT=str(self.port),
            CHAOSBOT_BIND_ADDRESS="127.0.0.1",
            SLACK_BOT_TOKEN=identity.BOT_TOKEN,
            SLACK_SIGNING_SECRET=identity.SIGNING_SECRET,
            SLACK_API_URL=fake.url,
            CHAOSBOT_CHANNEL=CHANNEL,
            CHAOSBOT_POLICY=str(policy),
            CHAOSBOT_CATALOGUE=str(catalogue),
            CHAOSBOT_LOG_FORMAT="json",
            CHAOSBOT_LOG_LEVEL="INFO",
            CHAOSBOT_WORKERS="1",
            # half the production pool: three or four test workers share one PostgreSQL's 100 connections
            CHAOSBOT_DB_POOL_SIZE="5",
            # its own spool and charts, not chaosbot-data/ in the working directory other processes share
            CHAOSBOT_SPOOL_DIR=str(workdir / "spool"),
            PYTHONUNBUFFERED="1",
            **FAST_INTERVALS,
        )
        if redis_url:
            env["REDIS_URL"] = redis_url
        env.update(extra_env or {})
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._engine: Engine | None = None

    @staticmethod
    def executable() -> str:
        beside = Path(sys.executable).with_name("chaosbot")
        found = str(beside) if beside.exists() else shutil.which("chaosbot")
        if not found:
            pytest.fail("the chaosbot console script is not installed (pip install -e .)", pytrace=False)
        return found

    def start(self) -> None:
        migrated(self.database_url)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [self.executable(), "serve"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"chaosbot serve ({self.kind}) exited with {self.process.returncode}:\n{self.log_tail()}",
                    pytrace=False,
                )
            with contextlib.suppress(OSError):
                if self.get("/healthz", timeout=1).status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"chaosbot serve ({self.kind}) never answered /healthz:\n{self.log_tail()}", pytrace=False)

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # gunicorn: graceful stop of the master and its worker
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the master and its worker only
            self.process.wait(timeout=5)

    def processes(self) -> dict[int, str]:
        """Its session's live processes (the gunicorn master, its worker, their helpers): pid -> command line."""
        assert self.process is not None
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                state, _, _, session = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:4]
                if int(session) == self.process.pid and state != "Z":
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        return found

    # -- talking to it ---------------------------------------------------------------------------------

    def send(self, request: wire.SignedRequest, timeout: float = 10.0) -> Response:
        started = time.perf_counter()
        status, headers, body = wire.post(self.events_url, request.body, request.headers, timeout=timeout)
        return Response(status, headers, body, time.perf_counter() - started)

    def get(self, path: str, timeout: float = 5.0) -> Response:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as answer:
                body, status, headers = answer.read(), answer.status, dict(answer.headers)
        except urllib.error.HTTPError as error:
            body, status, headers = error.read(), error.code, dict(error.headers)
        lowered = {k.lower(): v for k, v in headers.items()}
        return Response(status, lowered, body, time.perf_counter() - started)

    def log_text(self, start: int = 0) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(start)
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- reading its database (read-only: to check what the bot recorded) ------------------------------

    def query(self, sql: str, **params: Any) -> list[Any]:
        if self._engine is None:
            self._engine = create_engine(self.database_url)
        with self._engine.connect() as connection:
            return list(connection.execute(text(sql), params).all())

    def run_state(self, run_id: int) -> str:
        return str(self.query("SELECT state FROM runs WHERE id = :id", id=run_id)[0][0])


def show_log_on_failure(item: pytest.Item, server: ChaosbotServer) -> None:
    """If ``item`` fails, its report shows what ``server`` logged from now on (see tests/conftest.py)."""
    logs: list[tuple[ChaosbotServer, int]] = item.__dict__.setdefault("chaosbot_logs", [])
    logs.append((server, server.log_size()))


class ServerRegistry:
    """Starts each kind of server the first time a test asks for it; stops them all at the end."""

    def __init__(self, factory: pytest.TempPathFactory, fake: FakeSlack) -> None:
        self.factory = factory
        self.fake = fake
        self.servers: dict[str, ChaosbotServer] = {}
        self.stack = contextlib.ExitStack()
        self.lock = threading.Lock()

    def get(self, kind: str) -> ChaosbotServer:
        with self.lock:
            if kind not in self.servers:
                self.servers[kind] = self._start(kind)
                self.stack.callback(self.servers[kind].stop)
            return self.servers[kind]

    @contextlib.contextmanager
    def own(self, kind: str, extra_env: dict[str, str] | None = None) -> Iterator[ChaosbotServer]:
        """A server for one module, stopped after it: its background work (user-group refreshes every few
        hundred milliseconds, alarm reminders every second) must not reach the fake Slack of later modules."""
        server = self._start(kind, extra_env)
        try:
            yield server
        finally:
            server.stop()

    def _start(self, kind: str, extra_env: dict[str, str] | None = None) -> ChaosbotServer:
        workdir = self.factory.mktemp(f"chaosbot-{kind}")
        if kind.startswith("sqlite"):
            url = f"sqlite:///{workdir / 'chaosbot.db'}"
            server = ChaosbotServer(
                kind, workdir, url, self.fake, None, {**EXTRA_ENV.get(kind, {}), **(extra_env or {})}
            )
        else:
            redis = redis_client_or_skip(REDIS_TEST_URL)
            redis.flushdb()  # leases and delivery keys from earlier sessions must not leak into this one
            redis.close()
            url = self.stack.enter_context(scratch_postgres_database())
            server = ChaosbotServer(kind, workdir, url, self.fake, REDIS_TEST_URL)
        server.start()
        return server

    def close(self, failed: bool) -> None:
        if failed:
            for server in self.servers.values():
                sys.stderr.write(f"\n---- chaosbot serve ({server.kind}) log, last lines ----\n{server.log_tail()}\n")
        self.stack.close()


@pytest.fixture(scope="session")
def chaosbot_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_slack: FakeSlack
) -> Iterator[ServerRegistry]:
    registry = ServerRegistry(tmp_path_factory, fake_slack)
    yield registry
    registry.close(failed=request.session.testsfailed > 0)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, chaosbot_servers: ServerRegistry) -> ChaosbotServer:
    return chaosbot_servers.get(request.param)


@pytest.fixture(scope="session")
def sqlite_server(chaosbot_servers: ServerRegistry) -> ChaosbotServer:
    return chaosbot_servers.get("sqlite")


@pytest.fixture(scope="module")
def short_role_cache_server(chaosbot_servers: ServerRegistry) -> Iterator[ChaosbotServer]:
    """SQLite, with user-group snapshots that go stale after ``ROLE_CACHE_SECONDS``."""
    with chaosbot_servers.own("sqlite-short-role-cache") as server:
        yield server


@pytest.fixture(scope="module")
def fast_alarms_server(chaosbot_servers: ServerRegistry) -> Iterator[ChaosbotServer]:
    """SQLite, with revert-failure alerts repeated every ``ALERT_REPEAT_SECONDS``."""
    with chaosbot_servers.own("sqlite-fast-alarms") as server:
        yield server


# -- the driver tests use --------------------------------------------------------------------------------


@dataclass
class RunHandle:
    """A run as the tests know it: its id and the ts of its one message in the channel."""

    id: int
    ts: str

    @property
    def label(self) -> str:
        return f"RUN-{self.id}"


@dataclass
class Bot:
    """Sends signed Slack requests to one server and reads what the fake Slack received."""

    server: ChaosbotServer
    slack: FakeSlack
    runs: list[RunHandle] = field(default_factory=list)
    sent_at: float = 0.0  # when the latest request was sent: answers to it arrive after this
    planned_at: float = 0.0  # when the latest plan was confirmed to its owner

    # -- raw requests ------------------------------------------------------------------------------------

    def send(self, request: wire.SignedRequest) -> Response:
        self.sent_at = time.time()
        return self.server.send(request)

    def command(self, text_: str, user: str = OWNER, **options: Any) -> Response:
        return self.send(wire.slash_command(text_, user, **options))

    def click(self, action_id: str, run: RunHandle, user: str, **options: Any) -> Response:
        message = self.slack.message(CHANNEL, run.ts)
        return self.send(wire.block_action(action_id, user_id=user, message=message, channel_id=CHANNEL, **options))

    def submit(self, view: dict[str, Any], values: dict[str, Any], user: str, **options: Any) -> Response:
        return self.send(
            wire.view_submission(
                view["callback_id"], values, user, view.get("private_metadata", ""), view=view, **options
            )
        )

    # -- what came back ------------------------------------------------------------------------------------

    def ephemeral(self, user: str, containing: str = "", timeout: float = 5.0) -> str:
        """Wait for an ephemeral to ``user`` containing ``containing``; return its text."""
        calls = self.slack.wait_for(
            "chat.postEphemeral",
            timeout=timeout,
            predicate=lambda c: (
                c.time >= self.sent_at and c.params.get("user") == user and containing in str(c.params.get("text"))
            ),
        )
        assert calls[-1].ok, calls[-1].response
        return str(calls[-1].params["text"])

    def ephemeral_texts(self, user: str | None = None) -> list[str]:
        """Ephemerals since the latest plan was confirmed (to ``user``, or to anyone)."""
        return [
            str(c.params.get("text"))
            for c in self.slack.calls("chat.postEphemeral")
            if user in (None, c.params.get("user")) and c.time >= self.planned_at
        ]

    def announcement(self, containing: str, timeout: float = 5.0) -> Call:
        """A top-level post in the channel (not a run message, not a thread reply)."""
        return self.slack.wait_for(
            "chat.postMessage",
            timeout=timeout,
            predicate=lambda c: (
                c.params.get("channel") == CHANNEL
                and not c.params.get("thread_ts")
                and containing in str(c.params.get("text"))
            ),
        )[-1]

    def reply(self, run: RunHandle, containing: str, timeout: float = 10.0) -> Call:
        """Wait for a timeline reply in the run message's thread."""
        return self.slack.wait_for(
            "chat.postMessage",
            timeout=timeout,
            predicate=lambda c: c.params.get("thread_ts") == run.ts and containing in str(c.params.get("text")),
        )[-1]

    def replies(self, run: RunHandle) -> list[str]:
        return [str(m.get("text")) for m in self.slack.replies(CHANNEL, run.ts)]

    def message(self, run: RunHandle) -> dict[str, Any]:
        return self.slack.message(CHANNEL, run.ts)

    def wait_message(
        self, run: RunHandle, check: Callable[[dict[str, Any]], bool], timeout: float = 5.0, what: str = "update"
    ) -> dict[str, Any]:
        return wait_until(lambda: m if check(m := self.message(run)) else None, timeout, f"{run.label} message: {what}")

    def updates(self, run: RunHandle) -> list[Call]:
        return [c for c in self.slack.calls("chat.update") if c.params.get("ts") == run.ts]

    def settle(self, quiet: float = 0.25, timeout: float = 5.0) -> None:
        """Wait until the fake has received nothing new for ``quiet`` seconds (background work done)."""
        deadline = time.monotonic() + timeout
        seen = len(self.slack.calls())
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = len(self.slack.calls())
            if now == seen and not self.slack.in_flight:
                return
            seen = now

    # -- whole steps -------------------------------------------------------------------------------------

    def open_plan(self, user: str = OWNER, experiment: str = EXPERIMENT, environment: str = "") -> dict[str, Any]:
        """``/chaos plan``: returns the modal the app opened (validated by the fake)."""
        trigger = wire.trigger_id()
        answer = self.command(f"plan {experiment} {environment}".strip(), user, trigger=trigger)
        assert answer.status == 200, answer
        call = self.slack.wait_for("views.open", predicate=lambda c: c.params.get("trigger_id") == trigger)[-1]
        assert call.ok, call.response
        return dict(call.response["view"])

    def plan(
        self, user: str = OWNER, environment: str = "staging", start_in: int = 60, view: dict[str, Any] | None = None
    ) -> RunHandle:
        """Plan a run through the modal; returns once its message is posted and the timeline started."""
        view = view or self.open_plan(user)
        run = self.submit_plan(view, plan_values(environment, int(time.time()) + start_in), user)
        self.runs.append(run)
        self.reply(run, f"Planned by <@{user}>")
        self.ephemeral(user, f"{run.label} is planned")  # the owner is told where the approvals happen
        self.planned_at = time.time()
        return run

    def submit_plan(self, view: dict[str, Any], values: dict[str, Any], user: str) -> RunHandle:
        """Submit the plan form; returns the run it planned."""
        sent = time.time()
        answer = self.submit(view, values, user)
        assert (answer.status, answer.body) == (200, b""), answer
        return self.planned_since(sent, user)

    def planned_since(self, sent: float, user: str = OWNER) -> RunHandle:
        """The run ``user`` planned after ``sent``: the message whose thread got "Planned by <@user>".

        Not just "a new run message": a scheduled notice posts an earlier run's message if that one was never posted.
        """
        planned = self.slack.wait_for(
            "chat.postMessage",
            timeout=10.0,
            predicate=lambda c: (
                c.time >= sent
                and c.ok
                and bool(c.params.get("thread_ts"))
                and f"Planned by <@{user}>" in str(c.params.get("text"))
            ),
        )[-1]
        ts = str(planned.params["thread_ts"])
        posted = next(c for c in self.slack.calls("chat.postMessage") if c.ok and c.response.get("ts") == ts)
        match = RUN_TITLE.match(str(posted.params["text"]))
        assert match is not None, posted.params
        return RunHandle(int(match.group(1)), ts)

    def approve(self, run: RunHandle, user: str) -> None:
        assert self.click("run.approve", run, user).status == 200
        self.reply(run, f"Approved by <@{user}>")

    def approved_run(self, experiment: str = EXPERIMENT) -> RunHandle:
        run = self.plan(view=self.open_plan(OWNER, experiment))
        for approver in (RELIABILITY, SECURITY, STAKEHOLDER):
            self.approve(run, approver)
        self.wait_message(run, lambda m: "run.start" in buttons(m), what="Start button")
        return run

    def start(self, run: RunHandle, user: str = OWNER) -> dict[str, Any]:
        assert self.click("run.start", run, user).status == 200
        return self.wait_message(run, lambda m: "run.abort" in buttons(m), timeout=10, what="Abort button")

    # -- between tests -------------------------------------------------------------------------------------

    def clean_up(self) -> None:
        """Leave no run running or waiting and the kill switch released, so tests do not depend on their order:
        a run left waiting would be announced, or started, or told it missed its start, in a later test."""
        self.slack.heal()  # a Slack failing on purpose would hold up the clean-up's messages and retrospectives
        for (run_id,) in self.server.query("SELECT id FROM runs WHERE state = 'running'"):
            self.command(f"abort RUN-{run_id} test clean-up", RELIABILITY)
        for (run_id,) in self.server.query(f"SELECT id FROM runs WHERE state IN {WAITING}"):
            self.command(f"cancel RUN-{run_id} test clean-up", RELIABILITY)
        if any(engaged for (engaged,) in self.server.query("SELECT engaged FROM kill_switch")):
            self.command("resume", RELIABILITY)
        wait_until(
            lambda: (
                not self.server.query(f"SELECT id FROM runs WHERE state = 'running' OR state IN {WAITING}")
                and not any(engaged for (engaged,) in self.server.query("SELECT engaged FROM kill_switch"))
            ),
            timeout=10,
            what="no running or waiting run and the kill switch released",
        )
        self.acknowledge_alarms()
        self.retrospectives_posted()
        self.settle()

    def acknowledge_alarms(self) -> None:
        """Press Acknowledge on every revert alarm a test left (a target down on purpose): the server is shared,
        and its reminders would otherwise reach later tests' fake Slack every few minutes."""
        unacknowledged = (
            "SELECT DISTINCT run_id FROM faults WHERE state = 'failed' AND run_id NOT IN "
            "(SELECT run_id FROM audit_events WHERE action = 'alarm.acknowledged' AND run_id IS NOT NULL)"
        )
        left = [run_id for (run_id,) in self.server.query(unacknowledged)]
        for run_id in left:
            alert = alarm_message("clean-up", run_id)
            message = {"ts": "1.000001", "text": alert.text, "blocks": alert.blocks}
            self.send(wire.block_action(ACKNOWLEDGE_ALARM, user_id=RELIABILITY, message=message, channel_id=CHANNEL))
        if left:
            wait_until(lambda: not self.server.query(unacknowledged), timeout=10, what="the revert alarms acknowledged")

    def retrospectives_posted(self, timeout: float = 15.0) -> None:
        """Let the retrospectives of ended runs land (chart and channel line too) before the next test looks
        at the channel. Slack is healed first, so one that failed is posted again by the next sweep (every
        half second on the test servers); ``timeout`` only bounds a server that cannot post at all."""
        unposted = (
            "SELECT count(*) FROM runs LEFT JOIN retrospectives ON retrospectives.run_id = runs.id "
            "WHERE runs.state IN ('completed', 'aborted', 'failed') AND retrospectives.run_id IS NULL"
        )
        deadline = time.monotonic() + timeout
        while self.server.query(unposted)[0][0] and time.monotonic() < deadline:
            time.sleep(0.1)


def plan_values(
    environment: str, start: int | None, rollback: str = "1. Run `/chaos abort`.", *, auto_start: bool = False
) -> dict[str, Any]:
    """``view.state.values`` of the plan modal, as Slack submits it. ``auto_start`` is unticked by default here:
    runs of the session-wide servers must not start by themselves in the middle of another test."""
    return {
        "environment": {"value": wire.select_value(environment)},
        "planned_start": {"value": wire.datetime_value(start)},
        "rollback_steps": {"value": wire.text_value(rollback)},
        "notes": {"value": wire.text_value(None)},
        "auto_start": {"value": checkbox_value(auto_start)},
    }


def checkbox_value(ticked: bool) -> dict[str, Any]:
    """The plan form's one checkbox as Slack submits it: its option when ticked, none when not."""
    option = {"text": {"type": "plain_text", "text": "Start automatically at the planned start"}, "value": "auto_start"}
    return {"type": "checkboxes", "selected_options": [option] if ticked else []}


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's buttons by action id."""
    found = {}
    for block in message.get("blocks", []):
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if isinstance(element, dict) and element.get("type") == "button":
                found[element["action_id"]] = element
    return found


def block_text(blocks: list[dict[str, Any]]) -> str:
    """Every text in the blocks, joined: what a person reads."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                parts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return "\n".join(parts)


def _bot(server: ChaosbotServer, slack: FakeSlack, request: pytest.FixtureRequest) -> Iterator[Bot]:
    slack.set_usergroup(STAKEHOLDER_GROUP, STAKEHOLDERS)
    show_log_on_failure(request.node, server)
    bot = Bot(server, slack)
    yield bot
    bot.clean_up()


@pytest.fixture
def bot(server: ChaosbotServer, slack: FakeSlack, request: pytest.FixtureRequest) -> Iterator[Bot]:
    """The server on SQLite, then on PostgreSQL + Redis."""
    yield from _bot(server, slack, request)


@pytest.fixture
def sqlite_bot(sqlite_server: ChaosbotServer, slack: FakeSlack, request: pytest.FixtureRequest) -> Iterator[Bot]:
    yield from _bot(sqlite_server, slack, request)


@pytest.fixture
def short_role_cache_bot(
    short_role_cache_server: ChaosbotServer, slack: FakeSlack, request: pytest.FixtureRequest
) -> Iterator[Bot]:
    yield from _bot(short_role_cache_server, slack, request)


@pytest.fixture
def fast_alarms_bot(
    fast_alarms_server: ChaosbotServer, slack: FakeSlack, request: pytest.FixtureRequest
) -> Iterator[Bot]:
    yield from _bot(fast_alarms_server, slack, request)


def metric(server: ChaosbotServer, name: str, **labels: str) -> float:
    """One sample of the server's /metrics (0 when it has not been recorded yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(server.get("/metrics").body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
