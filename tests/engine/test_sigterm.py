"""SIGTERM never leaves a fault unwatched, tried with real ``chaosbot serve`` processes (gunicorn master and
worker) on one PostgreSQL and Redis: with another replica alive the run is handed over and adopted (the fault
stays on, watched, and ends through the other replica); alone, the process reverts and aborts it before exiting."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest

from bot.catalogue.models import Catalogue
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from bot.runs.rules import PlanRequest
from storage.db import Database
from tests.engine.lab import Lab, make_experiment, wait_for
from tests.fakeslack import wire
from tests.fakeslack.server import FakeSlack
from tests.services import REPLICAS_REDIS_URL, redis_client_or_skip, scratch_postgres_database
from tests.slack.conftest import ChaosbotServer, show_log_on_failure
from tests.slack.socket_mode_peer import SocketModePeer
from tests.slack.test_socket_mode import SocketBot, SocketModeServer

S = TypeVar("S", bound=ChaosbotServer)

OWNER, APPROVER = "U0OWNER", "U0RELIAB"
POLICY = f"""\
roles:
  reliability_partner: {{users: [{APPROVER}]}}
environments:
  staging:
    approvals: [reliability_partner]
plan_expiry: 24h
start_early: 30m
"""
GRACEFUL_SECONDS = 30


class Replicas:
    """Servers on one scratch PostgreSQL and Redis, with the lab experiment in their catalogue."""

    def __init__(self, root: Path, url: str, lab: Lab, fake: FakeSlack, test: pytest.Item) -> None:
        self.root, self.url, self.fake, self.test = root, url, fake, test
        experiment = make_experiment(lab, max_duration=120, rto=2)
        self.catalogue = json.dumps({"experiments": [experiment.snapshot()]})
        self.servers: list[ChaosbotServer] = []
        self.db = Database(url)
        (root / "policy.yml").write_text(POLICY, encoding="utf-8")
        (root / "catalogue.yml").write_text(self.catalogue, encoding="utf-8")
        self.core = RunCore.build(
            self.db,
            Catalogue.model_validate(json.loads(self.catalogue)),
            load_policy(root / "policy.yml"),
            zone=ZoneInfo("UTC"),
        )

    def serve(self, name: str) -> ChaosbotServer:
        server = self._prepared(ChaosbotServer, name)
        server.start()
        return server

    def serve_socket_mode(self, name: str, peer: SocketModePeer) -> SocketModeServer:
        server = self._prepared(SocketModeServer, name)
        server.start_socket_mode(peer)
        return server

    def _prepared(self, kind: type[S], name: str) -> S:
        workdir = self.root / name
        workdir.mkdir()
        server = kind(name, workdir, self.url, self.fake, REPLICAS_REDIS_URL)
        (workdir / "policy.yml").write_text(POLICY, encoding="utf-8")
        (workdir / "catalogue.yml").write_text(self.catalogue, encoding="utf-8")
        server.env["CHAOSBOT_SPOOL_DIR"] = str(workdir / "spool")
        self.servers.append(server)
        show_log_on_failure(self.test, server)
        return server

    def approved_run(self) -> int:
        run = self.core.transitions.plan(OWNER, PlanRequest(experiment_id="CE-90"))
        self.core.transitions.approve(APPROVER, run.id)
        return run.id

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.db.dispose()


@pytest.fixture
def replicas(tmp_path: Path, lab: Lab, fake_slack: FakeSlack, request: pytest.FixtureRequest) -> Iterator[Replicas]:
    redis = redis_client_or_skip(REPLICAS_REDIS_URL)
    redis.flushdb()
    redis.close()
    with scratch_postgres_database() as url:
        group = Replicas(tmp_path, url, lab, fake_slack, request.node)
        try:
            yield group
        finally:
            group.close()


def start_on(server: ChaosbotServer, run_id: int, lab: Lab) -> None:
    assert server.send(wire.slash_command(f"start RUN-{run_id}", OWNER)).status == 200
    wait_for(lambda: lab.fault_on and server.run_state(run_id) == "running", timeout=20, what="the run to start")


def sigterm_and_wait(server: ChaosbotServer, watch: Lab | None = None) -> list[bool]:
    """SIGTERM the main process (the gunicorn master, as docker stop does); the lab's fault state sampled until
    it exits."""
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    seen = []
    deadline = time.monotonic() + GRACEFUL_SECONDS + 5
    while server.process.poll() is None and time.monotonic() < deadline:
        if watch is not None:
            seen.append(watch.fault_on)
        time.sleep(0.05)
    assert server.process.poll() is not None, "the server did not exit within its graceful timeout"
    return seen


def thread_texts(fake: FakeSlack) -> str:
    return "\n".join(str(call.params.get("text")) for call in fake.calls("chat.postMessage"))


def test_sigterm_hands_the_run_over_to_the_other_replica_which_keeps_watching_it(
    replicas: Replicas, lab: Lab, fake_slack: FakeSlack
) -> None:
    a, b = replicas.serve("a"), replicas.serve("b")
    run_id = replicas.approved_run()
    start_on(a, run_id, lab)

    on_while_stopping = sigterm_and_wait(a, watch=lab)

    assert all(on_while_stopping) and lab.fault_on  # not an abort: the fault never went off
    assert a.run_state(run_id) == "running"
    said = f"RUN-{run_id} is now watched by "
    wait_for(lambda: said in thread_texts(fake_slack), what="the adoption message")
    adopter = thread_texts(fake_slack).split(said, 1)[1].split(":", 3)
    holder = b.query("SELECT holder FROM leases WHERE run_id = :id", id=run_id)[0][0]
    assert holder == ":".join(adopter[:3])  # B holds the lease and says so
    assert "controller lost" not in thread_texts(fake_slack)
    probes_before = lab.target_hits
    wait_for(lambda: lab.target_hits > probes_before + 1, what="B probing the stop conditions")

    assert b.send(wire.slash_command(f"abort RUN-{run_id} done watching", OWNER)).status == 200
    wait_for(lambda: not lab.fault_on and b.run_state(run_id) == "aborted", what="the abort through B")
    assert lab.times("revert") and len(lab.times("revert")) == 1


def test_sigterm_with_no_other_replica_reverts_and_aborts_before_exiting(
    replicas: Replicas, lab: Lab, fake_slack: FakeSlack
) -> None:
    alone = replicas.serve("alone")
    run_id = replicas.approved_run()
    start_on(alone, run_id, lab)

    sigterm_and_wait(alone)

    assert not lab.fault_on and len(lab.times("revert")) == 1
    state, reason = alone.query("SELECT state, end_reason FROM runs WHERE id = :id", id=run_id)[0]
    assert (state, reason) == ("aborted", "chaosbot was shut down")


def test_sigterm_in_socket_mode_reverts_and_aborts_before_exiting(
    replicas: Replicas, lab: Lab, fake_slack: FakeSlack
) -> None:
    peer = SocketModePeer()
    fake_slack.socket_mode_url = peer.issue_url
    try:
        server = replicas.serve_socket_mode("socket", peer)
        run_id = replicas.approved_run()
        SocketBot(server, fake_slack, peer=peer).command(f"start RUN-{run_id}", OWNER)
        wait_for(lambda: lab.fault_on and server.run_state(run_id) == "running", timeout=20, what="the start")

        sigterm_and_wait(server)
    finally:
        fake_slack.socket_mode_url = None
        peer.close()

    assert not lab.fault_on and len(lab.times("revert")) == 1
    state, reason = server.query("SELECT state, end_reason FROM runs WHERE id = :id", id=run_id)[0]
    assert (state, reason) == ("aborted", "chaosbot was shut down")
