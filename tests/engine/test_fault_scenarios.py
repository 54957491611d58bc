"""Faults tried on real ``chaosbot serve`` processes against real PostgreSQL and Redis (issue 10, "Faults").

- Redis stopped while the bot runs (its own CE-01): commands still work, delivery dedup and leases fall back
  to the database, /healthz says Redis is down, an abort still reverts within its target, and when Redis is
  back it is used again.
- PostgreSQL restarted mid-run (every connection dropped, new ones refused, through a TCP proxy the test
  cuts and restores): the fault stays under control, an abort during the outage reverts from the cached
  handle, and its record lands after the restart.
- Two replicas, one SIGKILLed mid-run: the other reverts the run's fault once the lease lapses (within the
  lease, one dead man's switch sweep and a second of the kill: 15 s in production) and says "controller lost"
  in the run's thread. A Chaos Toolkit run's controller SIGKILLed while its method blocks: the other replica
  runs the experiment's rollback, and the retrospective it posts lists the rollback's result.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.catalogue.models import Catalogue
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from bot.runs.rules import PlanRequest
from tests.engine.lab import Lab, wait_for
from tests.engine.redis_server import RedisServer
from tests.engine.tcp_proxy import TcpProxy
from tests.engine.test_chaostoolkit_runs import ROLLBACK, TOKEN, ctk_entry, lab_experiment
from tests.engine.test_sigterm import APPROVER, OWNER, Replicas, start_on, thread_texts
from tests.fakeslack import wire
from tests.fakeslack.server import FakeSlack
from tests.intervals import DEAD_MANS_SWITCH_SECONDS, FAST_INTERVALS, LEASE_SECONDS
from tests.services import (
    POSTGRES_ADMIN_URL,
    REPLICAS_REDIS_URL,
    redis_client_or_skip,
    scratch_postgres_database,
)
from tests.slack.conftest import ChaosbotServer
from tests.waiting import holds_for

ABORT_TARGET_SECONDS = 3.0  # from the abort request to the fault off, Redis down included
# Issue 10: a killed replica's fault is reverted within 15 s: the lease lapses (12 s), the next dead man's switch
# sweep (every 2 s) reverts it, with a second to spare. The test servers keep the same shape on shorter intervals
# (tests/intervals.py), and the same second to spare, plus two for a loaded test machine.
TAKEOVER_TARGET_SECONDS = LEASE_SECONDS + DEAD_MANS_SWITCH_SECONDS + 1 + 2


@pytest.fixture
def group(tmp_path: Path, lab: Lab, fake_slack: FakeSlack, request: pytest.FixtureRequest) -> Iterator[Replicas]:
    redis = redis_client_or_skip(REPLICAS_REDIS_URL)
    redis.flushdb()
    redis.close()
    with scratch_postgres_database() as url:
        fake_slack.reset()
        replicas = Replicas(tmp_path, url, lab, fake_slack, request.node)
        try:
            yield replicas
        finally:
            replicas.close()
            fake_slack.reset()  # the session's fake Slack: later tests must not read this one's messages


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def serve_with_redis(group: Replicas, name: str, redis: RedisServer) -> ChaosbotServer:
    server = group._prepared(ChaosbotServer, name)
    server.env["REDIS_URL"] = redis.url
    # Production intervals: with the fast ones, more jobs meet the outage at once, and once Redis is back the
    # lease took longer than this test allows to return to it (seen once in five parallel runs, under load).
    for variable in FAST_INTERVALS:
        del server.env[variable]
    server.start()
    return server


def lease_expiry(server: ChaosbotServer, run_id: int) -> object:
    rows = server.query("SELECT expires_at FROM leases WHERE run_id = :id", id=run_id)
    return rows[0][0] if rows else None


def replies_to(fake: FakeSlack, user: str) -> int:
    return sum(1 for call in fake.calls("chat.postEphemeral") if call.params.get("user") == user)


def test_with_redis_stopped_the_bot_falls_back_to_the_database_and_uses_redis_again_once_it_is_back(
    group: Replicas, own_redis: RedisServer, lab: Lab, fake_slack: FakeSlack
) -> None:
    bot = serve_with_redis(group, "solo", own_redis)
    first = group.approved_run()
    start_on(bot, first, lab)
    wait_for(lambda: own_redis.keys(f"chaosbot:lease:{first}"), what="the lease in Redis")

    own_redis.stop()

    health = bot.get("/healthz")
    assert health.status == 200 and health.json()["redis"].startswith("unreachable")
    assert health.json()["database"] == "ok"

    # Leases: renewed in the database while Redis is gone (the run stays watched, not orphaned).
    before = lease_expiry(bot, first)
    wait_for(lambda: lease_expiry(bot, first) != before, timeout=15, what="the lease renewed in the database")
    assert lab.fault_on and bot.run_state(first) == "running"

    # Commands still work, and a redelivered command is applied once (the ledger is the database now).
    replies = replies_to(fake_slack, OWNER)
    status = wire.slash_command("status", OWNER, trigger="T0REDISDOWN")
    assert bot.send(status).status == 200
    assert bot.send(wire.slash_command("status", OWNER, trigger="T0REDISDOWN", retry_num=1)).status == 200
    wait_for(lambda: replies_to(fake_slack, OWNER) > replies, what="the status answer")
    holds_for(lambda: replies_to(fake_slack, OWNER) == replies + 1, 1.0, "one answer to the redelivered command")
    assert bot.query("SELECT count(*) FROM processed_requests WHERE key = 'command:T0REDISDOWN'")[0][0] == 1

    # The kill switch: an abort reverts within its target.
    asked = time.monotonic()
    assert bot.send(wire.slash_command(f"abort RUN-{first} redis is down", OWNER)).status == 200
    wait_for(lambda: not lab.fault_on, timeout=ABORT_TARGET_SECONDS, what="the abort's revert")
    assert time.monotonic() - asked < ABORT_TARGET_SECONDS
    wait_for(lambda: bot.run_state(first) == "aborted", what="the abort's record")

    # Redis back: the next run's lease and the deliveries go to Redis again.
    own_redis.start()
    wait_for(lambda: bot.get("/healthz").json()["redis"] == "ok", what="/healthz to see Redis again")
    second = group.approved_run()
    start_on(bot, second, lab)
    # A lease taken in Redis's cool-down (5 s) returns at the next renewal (every 4 s): 9 s, three times over on a
    # loaded machine (seen past 15 s once in five full runs with the workers and mypy on 2 CPUs).
    wait_for(lambda: own_redis.keys(f"chaosbot:lease:{second}"), timeout=30, what="the lease back in Redis")
    assert bot.send(wire.slash_command("status", OWNER, trigger="T0REDISBACK")).status == 200
    wait_for(lambda: own_redis.keys("chaosbot:seen:command:T0REDISBACK"), what="the delivery ledger in Redis")
    assert bot.send(wire.slash_command(f"abort RUN-{second} done", OWNER)).status == 200
    wait_for(lambda: not lab.fault_on, timeout=ABORT_TARGET_SECONDS, what="the second abort's revert")


def test_when_one_replica_is_killed_the_other_reverts_its_run_and_says_controller_lost(
    group: Replicas, lab: Lab, fake_slack: FakeSlack
) -> None:
    doomed, survivor = group.serve("doomed"), group.serve("survivor")
    run_id = group.approved_run()
    start_on(doomed, run_id, lab)

    assert doomed.process is not None
    os.killpg(doomed.process.pid, signal.SIGKILL)  # master and worker at once: no chance to hand over
    killed = time.monotonic()
    doomed.process.wait(timeout=5)

    wait_for(lambda: not lab.fault_on, timeout=TAKEOVER_TARGET_SECONDS + 5, what="the survivor's revert")
    took = time.monotonic() - killed
    assert took <= TAKEOVER_TARGET_SECONDS, f"reverted {took:.1f} s after the kill"
    wait_for(lambda: "controller lost" in thread_texts(fake_slack), what="'controller lost' in the thread")
    state, reason = survivor.query("SELECT state, end_reason FROM runs WHERE id = :id", id=run_id)[0]
    assert state == "aborted" and str(reason).startswith("controller lost")
    assert len(lab.times("revert")) == 1


def test_when_a_chaos_toolkit_run_s_controller_is_killed_the_other_replica_runs_its_rollback(
    group: Replicas, lab: Lab, fake_slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTK_LAB_URL", lab.url)
    monkeypatch.setenv("CTK_LAB_TOKEN", TOKEN)
    lab_experiment(tmp_path, block_seconds=60)  # the method blocks in `sleep 60` when the controller dies
    experiment = ctk_entry(tmp_path)
    group.catalogue = json.dumps({"experiments": [experiment.snapshot()]})
    core = RunCore.build(
        group.db, Catalogue(experiments=[experiment]), load_policy(tmp_path / "policy.yml"), zone=ZoneInfo("UTC")
    )
    doomed, survivor = group.serve("doomed"), group.serve("survivor")
    run_id = core.transitions.plan(OWNER, PlanRequest(experiment_id=experiment.id)).id
    core.transitions.approve(APPROVER, run_id)
    start_on(doomed, run_id, lab)

    assert doomed.process is not None
    os.killpg(doomed.process.pid, signal.SIGKILL)  # master, worker and the method's `sleep`: nothing runs on
    killed = time.monotonic()
    doomed.process.wait(timeout=5)

    wait_for(lambda: not lab.fault_on, timeout=TAKEOVER_TARGET_SECONDS + 5, what="the survivor's rollback")
    assert time.monotonic() - killed <= TAKEOVER_TARGET_SECONDS
    assert len(lab.times("revert")) == 1 and len(lab.times("inject")) == 1

    def retrospective() -> str:
        posted = [json.dumps(call.params.get("blocks")) for call in fake_slack.calls("chat.postMessage")]
        return next((blocks for blocks in posted if "Rollbacks" in blocks), "")

    blocks = wait_for(retrospective, timeout=15, what="the retrospective in the run's thread")
    assert f":white_check_mark: {ROLLBACK}: succeeded in" in blocks and "controller lost" in blocks
    assert TOKEN not in json.dumps([call.params for call in fake_slack.calls()])
    state, reason = survivor.query("SELECT state, end_reason FROM runs WHERE id = :id", id=run_id)[0]
    assert state == "aborted" and str(reason).startswith("controller lost")


def test_an_abort_while_postgresql_restarts_reverts_from_the_cached_handle_and_lands_afterwards(
    group: Replicas, lab: Lab, fake_slack: FakeSlack
) -> None:
    port = int(POSTGRES_ADMIN_URL.rsplit(":", 1)[1].split("/", 1)[0])
    proxy = TcpProxy(port)
    try:
        bot = group._prepared(ChaosbotServer, "behind-proxy")
        bot.env["DATABASE_URL"] = group.url.replace(f":{port}/", f":{proxy.port}/")  # the bot sees only the proxy
        # The production lease, longer than this outage: the abort releases the run's lease in Redis, so its
        # database lease is all that tells the dead man's switch the run is not orphaned until the spooled
        # abort lands. A lease shorter than the outage would have the sweep record "controller lost" first.
        bot.env.update(CHAOSBOT_LEASE_SECONDS="12", CHAOSBOT_LEASE_RENEW_SECONDS="4")
        bot.start()
        run_id = group.approved_run()
        start_on(bot, run_id, lab)

        proxy.cut()
        # The watcher and the lease renewal meet the outage: still under control, no false abort, no lost fault.
        holds_for(lambda: lab.fault_on, 3, "the fault on through the outage")
        asked = time.monotonic()
        assert bot.send(wire.slash_command(f"abort RUN-{run_id} database restarting", OWNER)).status == 200
        wait_for(lambda: not lab.fault_on, timeout=ABORT_TARGET_SECONDS, what="the revert from the cached handle")
        assert time.monotonic() - asked < ABORT_TARGET_SECONDS
        # Read past the proxy: only the spool knows yet.
        holds_for(lambda: bot.run_state(run_id) == "running", 2, "the run's record waiting in the spool")

        proxy.restore()
        wait_for(lambda: bot.run_state(run_id) == "aborted", timeout=30, what="the record after the restart")
        reason, ended_by = bot.query("SELECT end_reason, ended_by FROM runs WHERE id = :id", id=run_id)[0]
        assert (reason, ended_by) == ("database restarting", OWNER)
        aborted = bot.query(
            "SELECT count(*) FROM audit_events WHERE run_id = :id AND action = 'run.aborted'", id=run_id
        )
        assert aborted[0][0] == 1 and len(lab.times("revert")) == 1
        assert bot.get("/healthz").status == 200
    finally:
        proxy.close()
