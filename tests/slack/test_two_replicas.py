"""Exactly once across replicas: two real ``chaosbot serve`` processes (gunicorn) share one PostgreSQL
database and Redis. A run planned ~15 s ahead with the automatic start is announced once and injected
once; then one process is killed before a second run's start and the other one fires it.

The fault is the http adapter against a local flag API that counts its calls: an inject is a PUT.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.servers import Call, FakeBackend, Reply, RunningServer, running
from tests.fakeslack.server import FakeSlack
from tests.services import REPLICAS_REDIS_URL, redis_client_or_skip, scratch_postgres_database

from .conftest import (
    CATALOGUE,
    CHANNEL,
    OWNER,
    POLICY,
    RELIABILITY,
    SECURITY,
    STAKEHOLDER,
    TICK_SECONDS,
    Bot,
    ChaosbotServer,
    RunHandle,
    buttons,
    holds_for,
    plan_values,
    show_log_on_failure,
    wait_until,
)

REDIS_URL = REPLICAS_REDIS_URL  # the replicas share it, as production replicas share Redis, with no other server
EXPERIMENT = "CE-95"
# Planned this far ahead, the run is approved well before its notice (NOTICE_SECONDS before the start) is due,
# and a replica is killed well before it too: on a loaded machine, approving takes a few seconds.
START_IN_SECONDS = 15
NOTICE_SECONDS = 7


class FlagApi(FakeBackend):
    def route(self, call: Call) -> Reply:
        return Reply(200, {"ok": True})

    def injects(self) -> int:
        return len([c for c in self.calls_to("PUT", "/flags/") if (c.body or {}).get("enabled") is True])


def catalogue(flag_url: str) -> str:
    return CATALOGUE + (
        f"  - id: {EXPERIMENT}\n"
        "    title: Flag flip against the lab flag API\n"
        "    hypothesis: The portal keeps serving while the flag is on.\n"
        "    method: Turn the share-token flag on through the lab flag API.\n"
        "    expected_outcome: No user-visible errors.\n"
        "    safeguards: [Loopback only.]\n"
        "    rollback_steps: [Turn the flag off.]\n"
        "    environments: [staging]\n"
        "    fault:\n"
        "      adapter: http\n"
        "      params:\n"
        "        timeout_seconds: 2\n"
        f'        inject: {{method: PUT, url: "{flag_url}/flags/share", json: {{enabled: true}}}}\n'
        f'        revert: {{method: PUT, url: "{flag_url}/flags/share", json: {{enabled: false}}}}\n'
        "    max_duration: 30s\n"
        "    rto: 10s\n"
    )


@pytest.fixture
def flag_api() -> Iterator[RunningServer]:
    with running(FlagApi()) as server:
        yield server


@pytest.fixture
def replicas(
    tmp_path: Path, slack: FakeSlack, flag_api: RunningServer, request: pytest.FixtureRequest
) -> Iterator[tuple[ChaosbotServer, ChaosbotServer]]:
    redis = redis_client_or_skip(REDIS_URL)
    redis.flushdb()
    redis.close()
    files = tmp_path / "config"
    files.mkdir()
    (files / "policy.yml").write_text(POLICY + f"notice: {NOTICE_SECONDS}s\n", encoding="utf-8")
    (files / "catalogue.yml").write_text(catalogue(flag_api.url), encoding="utf-8")
    env = {"CHAOSBOT_POLICY": str(files / "policy.yml"), "CHAOSBOT_CATALOGUE": str(files / "catalogue.yml")}
    with scratch_postgres_database() as url:
        servers = []
        try:
            for name in ("a", "b"):
                workdir = tmp_path / name
                workdir.mkdir()
                extra = {**env, "CHAOSBOT_SPOOL_DIR": str(workdir / "spool")}
                server = ChaosbotServer(f"replica-{name}", workdir, url, slack, REDIS_URL, extra)
                server.start()
                servers.append(server)
                show_log_on_failure(request.node, server)
            yield servers[0], servers[1]
        finally:
            for server in servers:
                server.stop()


def plan_approved(first: Bot, second: Bot, start_in: int) -> RunHandle:
    """Planned through one replica, approved through the other, with the automatic start ticked."""
    view = first.open_plan(OWNER, EXPERIMENT)
    values = plan_values("staging", int(time.time()) + start_in, auto_start=True)
    run = first.submit_plan(view, values, OWNER)
    for approver in (RELIABILITY, SECURITY, STAKEHOLDER):
        second.approve(run, approver)
    second.wait_message(run, lambda m: "run.start" in buttons(m), what="approved")
    return run


def notices(slack: FakeSlack, run: RunHandle) -> int:
    return len(
        [
            c
            for c in slack.calls("chat.postMessage")
            if c.params.get("channel") == CHANNEL
            and not c.params.get("thread_ts")
            and f"Coming up: {run.label}" in str(c.params.get("text"))
        ]
    )


def test_two_replicas_announce_and_start_a_run_once_and_a_survivor_fires_the_next(
    replicas: tuple[ChaosbotServer, ChaosbotServer], slack: FakeSlack, flag_api: RunningServer
) -> None:
    a, b = replicas
    via_a, via_b = Bot(a, slack), Bot(b, slack)
    slack.set_usergroup("S0STAKE", ("U0STAKE1", STAKEHOLDER))
    api: FlagApi = flag_api.backend

    first = plan_approved(via_a, via_b, start_in=START_IN_SECONDS)
    wait_until(lambda: a.run_state(first.id) == "running", timeout=40, what=f"{first.label} started by itself")
    wait_until(lambda: api.injects() == 1, timeout=10, what="the inject")
    # A second replica's tick would have fired by now: each replica ticks every TICK_SECONDS.
    holds_for(lambda: api.injects() == 1, 8 * TICK_SECONDS, "one inject")
    assert notices(slack, first) == 1
    fired = a.query("SELECT kind, outcome, attempts FROM firings WHERE run_id = :id ORDER BY kind", id=first.id)
    assert [(kind, outcome) for kind, outcome, _ in fired] == [("run.auto_start", "started"), ("run.notice", "done")]
    via_b.command(f"abort {first.label} done", RELIABILITY)
    wait_until(lambda: b.run_state(first.id) == "aborted", timeout=15, what="aborted")

    second = plan_approved(via_b, via_a, start_in=START_IN_SECONDS)
    assert a.process is not None
    os.killpg(a.process.pid, signal.SIGKILL)  # no goodbye: its jobs just stop
    a.process.wait(timeout=10)
    wait_until(lambda: b.run_state(second.id) == "running", timeout=45, what=f"{second.label} fired by the survivor")
    wait_until(lambda: api.injects() == 2, timeout=10, what="the second inject")
    assert notices(slack, second) == 1
    via_b.command(f"abort {second.label} done", RELIABILITY)
    wait_until(lambda: b.run_state(second.id) == "aborted", timeout=15, what="aborted")
