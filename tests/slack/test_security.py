"""Request verification, ack speed, health and metrics, and secrets kept out of logs and messages."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import psycopg
import pytest

from tests.fakeslack import FakeSlack, identity, wire
from tests.services import POSTGRES_ADMIN_URL, scratch_postgres_database

from .conftest import (
    OWNER,
    RELIABILITY,
    SECURITY,
    Bot,
    ChaosbotServer,
    metric,
    plan_values,
)
from .hostile import said

SLOW_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.open", "views.publish")


def test_a_bad_signature_is_refused_and_nothing_happens(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    forged = wire.slash_command("help", OWNER, secret="not-the-signing-secret")
    assert bot.send(forged).status == 401
    tampered = wire.slash_command("help", OWNER)
    tampered = wire.SignedRequest(tampered.body.replace(b"help", b"list"), tampered.headers)
    assert bot.send(tampered).status == 401
    unsigned = wire.slash_command("help", OWNER)
    headers = {k: v for k, v in unsigned.headers.items() if not k.startswith("X-Slack")}
    assert bot.send(wire.SignedRequest(unsigned.body, headers)).status == 401
    bot.settle(quiet=0.5)
    assert said(bot.slack) == []


def test_a_stale_timestamp_is_refused_even_when_correctly_signed(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.plan()
    before = len(said(bot.slack))
    ten_minutes_ago = int(time.time()) - 600
    stale_click = wire.block_action(
        "run.approve", user_id=RELIABILITY, message=bot.message(run), timestamp=ten_minutes_ago
    )
    assert bot.send(stale_click).status == 401
    assert bot.command("help", OWNER, timestamp=ten_minutes_ago).status == 401
    bot.settle(quiet=0.5)
    assert len(said(bot.slack)) == before
    assert bot.server.query("SELECT count(*) FROM approvals WHERE run_id = :id", id=run.id)[0][0] == 0
    # The same click, fresh, works: the refusal was about the timestamp only.
    bot.approve(run, RELIABILITY)


def test_every_request_is_acked_quickly_even_when_slack_is_slow(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.plan()
    view = bot.open_plan(OWNER)
    try:
        for method in SLOW_METHODS:
            bot.slack.set_latency(2.0, method)
        answers = {
            "command help": bot.command("help", OWNER),
            "command plan": bot.command("plan CE-90", OWNER),
            "command status": bot.command("status", SECURITY),
            "approve click": bot.click("run.approve", run, RELIABILITY),
            "plan submission": bot.submit(view, plan_values("staging", int(time.time()) + 120), OWNER),
            "app_home_opened": bot.send(wire.event_callback(wire.app_home_opened(SECURITY))),
        }
        for name, answer in answers.items():
            assert answer.status == 200, name
            assert answer.elapsed < 1.5, f"{name} took {answer.elapsed:.2f}s to ack"
        # The work happened after the acks, at Slack's pace.
        bot.ephemeral(OWNER, "/chaos list", timeout=10)
        bot.slack.wait_for("views.open", count=2, timeout=10)
        bot.reply(run, f"Approved by <@{RELIABILITY}>", timeout=10)
        bot.slack.wait_for("views.publish", timeout=10)
    finally:
        bot.slack.heal()  # the calls still held back answer now
        bot.settle(timeout=15)
    assert metric(bot.server, "chaosbot_ack_seconds_bucket", le="3.0") == metric(
        bot.server, "chaosbot_ack_seconds_count"
    ), "an ack took longer than Slack's 3 s limit"


def test_healthz_reports_the_database(server: ChaosbotServer) -> None:
    answer = server.get("/healthz")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    expected_redis = "ok" if server.kind == "postgres" else "not configured"
    assert answer.json() == {"database": "ok", "redis": expected_redis}


def test_metrics_count_requests_and_ack_time(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    before = metric(bot.server, "chaosbot_requests_total", kind="command", outcome="handled")
    bot.command("help", OWNER)
    bot.ephemeral(OWNER, "/chaos list")
    answer = bot.server.get("/metrics")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/plain")
    body = answer.body.decode()
    assert "chaosbot_requests_total" in body and "chaosbot_ack_seconds" in body
    assert metric(bot.server, "chaosbot_requests_total", kind="command", outcome="handled") == before + 1
    assert metric(bot.server, "chaosbot_ack_seconds_count") >= 1
    assert bot.server.get("/nope").status == 404


def test_tokens_never_reach_the_logs_or_slack(sqlite_bot: Bot) -> None:
    """Runs after the other tests of the session on this server, so the log holds all of their traffic."""
    bot = sqlite_bot
    run = bot.plan()
    bot.slack.fail_next("chat.postEphemeral", status=200, error="channel_not_found")
    bot.command("bogus", OWNER)  # a failed ephemeral: logged, then answered by DM
    bot.slack.wait_for("chat.postMessage", predicate=lambda c: c.params.get("channel") == OWNER)
    bot.slack.fail_next("chat.update", status=500, times=5)
    bot.click("run.approve", run, RELIABILITY)  # the update fails after retries: logged with its error
    bot.reply(run, f"Approved by <@{RELIABILITY}>", timeout=15)
    bot.send(wire.slash_command("help", OWNER, secret="wrong"))
    bot.settle()

    secrets = {"bot token": identity.BOT_TOKEN, "signing secret": identity.SIGNING_SECRET}
    log = bot.server.log_text()
    assert "could not update the run message" in log  # the log did capture this test's failures
    # Bolt logs the whole body of a request whose signature is wrong: its verification token is redacted.
    assert "Invalid request signature" in log and "token=[redacted]" in log
    assert identity.VERIFICATION_TOKEN not in log, "the payloads' verification token appears in the server log"
    for name, secret in secrets.items():
        assert secret not in log, f"the {name} appears in the server log"
    for call in bot.slack.calls():
        sent = json.dumps(call.params)
        for name, secret in secrets.items():
            assert secret not in sent, f"the {name} was sent to Slack in {call.method}"
        assert call.headers.get("authorization") == f"Bearer {identity.BOT_TOKEN}"
    for line in log.splitlines():
        if '"logger": "bot.' in line:
            json.loads(line)  # CHAOSBOT_LOG_FORMAT=json: the app's own lines are JSON


def test_url_verification_answers_the_challenge(sqlite_bot: Bot) -> None:
    answer = sqlite_bot.send(wire.url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"))
    assert answer.status == 200
    assert answer.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_healthz_is_503_when_the_database_is_unreachable(
    tmp_path: Path, fake_slack: FakeSlack, request: pytest.FixtureRequest
) -> None:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(scratch_postgres_database())
        server = ChaosbotServer("postgres-doomed", tmp_path, url, fake_slack, None)
        server.start()
        stack.callback(server.stop)
        assert server.get("/healthz").json()["database"] == "ok"
        name = url.rsplit("/", 1)[1]
        admin = psycopg.connect(POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        with admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        answer = server.get("/healthz")
        assert answer.status == 503, answer
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["database"].startswith("unreachable: ")


def _listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP port listens on, read from the kernel's socket table (state 0A: LISTEN)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table, encoding="ascii") as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                address, hex_port = local.rsplit(":", 1)
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def test_the_test_servers_listen_on_loopback_only(server: ChaosbotServer) -> None:
    assert _listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, as CHAOSBOT_BIND_ADDRESS says
