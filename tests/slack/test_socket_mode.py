"""``chaosbot serve`` in Socket Mode (SLACK_APP_TOKEN set) against a local Socket Mode peer and the fake Web API.

The same end-to-end flow as over HTTP (plan, three approvals, start, abort), delivered as Socket Mode envelopes;
the peer asks the app to reconnect in the middle of the run, and the abort still works afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fakeslack import identity, wire
from tests.fakeslack.server import FakeSlack
from tests.slack.conftest import (
    OWNER,
    RELIABILITY,
    STAKEHOLDER_GROUP,
    STAKEHOLDERS,
    Bot,
    ChaosbotServer,
    Response,
    RunHandle,
    buttons,
    plan_values,
    show_log_on_failure,
)
from tests.slack.socket_mode_peer import SocketModePeer

ACK_LIMIT_SECONDS = 3.0
pytestmark = pytest.mark.xdist_group("socket-mode")  # one worker starts the module's server, not each


class SocketModeServer(ChaosbotServer):
    """``chaosbot serve`` with an app-level token: it connects out to the peer instead of listening for HTTP."""

    def start_socket_mode(self, peer: SocketModePeer) -> None:
        self.env["SLACK_APP_TOKEN"] = identity.APP_TOKEN
        upgrade = subprocess.run(
            [self.executable(), "db", "upgrade"], env=self.env, capture_output=True, timeout=120, check=False
        )
        assert upgrade.returncode == 0, upgrade.stderr.decode(errors="replace")
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
        while not peer.sessions:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"chaosbot serve never connected in Socket Mode:\n{self.log_tail()}", pytrace=False)
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        super().stop()


@dataclass
class SocketBot(Bot):
    """The test driver of tests/slack/conftest.py, delivering every request as a Socket Mode envelope."""

    peer: SocketModePeer | None = None
    last_envelope: str = ""

    def send(self, request: wire.SignedRequest) -> Response:
        assert self.peer is not None
        self.sent_at = time.time()
        payload = request.payload()
        kind = "events_api" if payload.get("type") == "event_callback" else "interactive"
        if "command" in payload:
            kind = "slash_commands"
        envelope_id = self.peer.send(kind, payload, accepts_response_payload=kind != "events_api")
        self.last_envelope = envelope_id
        ack = self.peer.ack(envelope_id, timeout=10)
        body = json.dumps(ack.payload).encode() if ack.payload else b""
        return Response(200, {}, body, ack.latency)


@pytest.fixture(scope="module")
def peer(fake_slack: FakeSlack) -> Iterator[SocketModePeer]:
    served = SocketModePeer()
    fake_slack.socket_mode_url = served.issue_url
    yield served
    fake_slack.socket_mode_url = None
    served.close()


@pytest.fixture(scope="module")
def socket_server(
    peer: SocketModePeer, fake_slack: FakeSlack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SocketModeServer]:
    workdir = tmp_path_factory.mktemp("chaosbot-socket-mode")
    server = SocketModeServer("socket-mode", workdir, f"sqlite:///{workdir / 'chaosbot.db'}", fake_slack, None)
    server.start_socket_mode(peer)
    yield server
    server.stop()


@pytest.fixture
def socket_bot(
    socket_server: SocketModeServer, peer: SocketModePeer, slack: FakeSlack, request: pytest.FixtureRequest
) -> Iterator[SocketBot]:
    slack.set_usergroup(STAKEHOLDER_GROUP, STAKEHOLDERS)
    show_log_on_failure(request.node, socket_server)
    bot = SocketBot(socket_server, slack, peer=peer)
    yield bot
    with contextlib.suppress(AssertionError):
        bot.clean_up()


def acks_within_limit(peer: SocketModePeer, since: float) -> list[float]:
    latencies = [ack.latency for ack in peer.acks() if ack.sent_at >= since]
    assert latencies and max(latencies) < ACK_LIMIT_SECONDS, latencies
    return latencies


def test_the_app_opens_a_socket_with_its_app_token_and_gets_hello(
    socket_bot: SocketBot, peer: SocketModePeer, fake_slack: FakeSlack
) -> None:
    session = peer.current()
    assert session.connection.request is not None and "ticket=" in session.connection.request.path
    assert not peer.refused
    answer = socket_bot.command("help")
    assert answer.status == 200 and answer.elapsed < ACK_LIMIT_SECONDS
    assert "/chaos" in socket_bot.ephemeral(OWNER)


def test_plan_approve_start_disconnect_reconnect_and_abort_over_socket_mode(
    socket_bot: SocketBot, peer: SocketModePeer, slack: FakeSlack
) -> None:
    since = time.time()
    opened_before = slack_connection_opens(slack)
    run = socket_bot.approved_run()
    socket_bot.start(run)
    assert socket_bot.server.run_state(run.id) == "running"

    old = peer.current()
    new = peer.disconnect("refresh_requested")
    assert new is not old
    assert slack_connection_opens(slack) == opened_before + 1  # a new URL for the new connection
    peer.wait_closed(old)  # the app closes the connection it was asked to leave

    message = socket_bot.message(run)
    assert "run.abort" in buttons(message)
    answer = socket_bot.click("run.abort", run, RELIABILITY)
    assert answer.status == 200
    assert any(m.get("envelope_id") == socket_bot.last_envelope for m in new.received)  # acked on the new socket
    ended = socket_bot.wait_message(run, lambda m: "run.abort" not in buttons(m), timeout=15, what="the run ended")
    assert "abort" in json.dumps(ended).lower()
    wait_state(socket_bot, run, "aborted")
    assert socket_bot.reply(run, "borted", timeout=10)
    assert len(acks_within_limit(peer, since)) >= 6


def slack_connection_opens(slack: FakeSlack) -> int:
    return len([c for c in slack.calls("apps.connections.open") if c.ok])


def wait_state(bot: Bot, run: RunHandle, state: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while bot.server.run_state(run.id) != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"{run.label} stayed {bot.server.run_state(run.id)}, expected {state}")
        time.sleep(0.1)


def test_a_form_error_comes_back_as_the_ack_payload(socket_bot: SocketBot, peer: SocketModePeer) -> None:
    view = socket_bot.open_plan(OWNER)
    answer = socket_bot.submit(view, plan_values("staging", int(time.time()) - 3600), OWNER)
    assert answer.elapsed < ACK_LIMIT_SECONDS
    ack = answer.json()
    assert ack["response_action"] == "errors" and set(ack["errors"]) == {"planned_start"}
    assert "is in the past" in ack["errors"]["planned_start"]
    socket_bot.settle()


def test_an_events_api_envelope_is_acked_empty_and_its_retry_applied_once(
    socket_bot: SocketBot, peer: SocketModePeer, slack: FakeSlack
) -> None:
    delivery = wire.event_callback(wire.app_home_opened(OWNER)).payload()
    first = peer.ack(peer.send("events_api", delivery))
    retried = peer.ack(peer.send("events_api", delivery, retry_attempt=1))
    assert first.payload is None and retried.payload is None
    assert max(first.latency, retried.latency) < ACK_LIMIT_SECONDS
    slack.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == OWNER)
    socket_bot.settle()
    assert len([c for c in slack.calls("views.publish") if c.params.get("user_id") == OWNER]) == 1
