"""Secrets never leave the process: after a run whose adapter carries ``${VAR}`` secrets fails to revert, a
forged request and Slack errors, none of the bot token, the signing secret, the ``${VAR}`` values or the
database password appears in anything observable: the server's output, every body the fake Slack received,
``chaosbot export``, ``/healthz`` and ``/metrics``.

The server here is its own (PostgreSQL, with a password in DATABASE_URL; the test cluster trusts local
connections, so the password is carried and never checked). It runs without Redis: a Redis URL with a password
would need a Redis that requires one, and the shared test Redis does not.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fakeslack import FakeSlack, identity, wire
from tests.services import scratch_postgres_database

from .conftest import (
    CATALOGUE,
    OWNER,
    RELIABILITY,
    SECURITY,
    STAKEHOLDER,
    STAKEHOLDER_GROUP,
    STAKEHOLDERS,
    Bot,
    ChaosbotServer,
    wait_until,
)

FLAG_KEY = "flagkey-5b1d0c9e7a"  # ${CHAOS_FLAG_KEY}, in the adapter's URLs
FLAG_TOKEN = "flagtoken-8f2e4a61c3"  # ${CHAOS_FLAG_TOKEN}, in its Authorization header
DB_PASSWORD = "dbpass-3c9a77e0d2"
SECRET_EXPERIMENT = "CE-93"


@dataclass
class FlagService:
    """The adapter's backend: turning the flag on works, turning it off answers 500 (the revert fails)."""

    server: ThreadingHTTPServer
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization header)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def flag_service() -> Iterator[FlagService]:
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.path, self.headers.get("Authorization", "")))
            status, body = (200, b"{}") if self.path.startswith("/flags/on") else (500, b"flag service down")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield FlagService(server, seen)
    server.shutdown()
    server.server_close()


def secret_catalogue(flag_url: str) -> str:
    request = (
        '{{method: PUT, url: "{url}/flags/{step}?key=${{CHAOS_FLAG_KEY}}", '
        'headers: {{Authorization: "Bearer ${{CHAOS_FLAG_TOKEN}}"}}}}'
    )
    return CATALOGUE + (
        f"""\
  - id: {SECRET_EXPERIMENT}
    title: Flag flip behind a token
    hypothesis: The portal keeps serving when the flag flips.
    method: Flip the flag through its token-protected API.
    expected_outcome: No user-visible errors.
    safeguards: [Loopback only.]
    rollback_steps: [Turn the flag off by hand.]
    environments: [staging]
    fault:
      adapter: http
      params:
        timeout_seconds: 2
        retries: 1
        backoff_seconds: 0
        inject: {request.format(url=flag_url, step="on")}
        revert: {request.format(url=flag_url, step="off")}
    max_duration: 30s
    rto: 10s
"""
    )


@pytest.fixture
def secret_bot(tmp_path: Path, slack: FakeSlack, flag_service: FlagService) -> Iterator[Bot]:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(scratch_postgres_database())
        user, _, rest = url.partition("@")
        url = f"{user}:{DB_PASSWORD}@{rest}"
        server = ChaosbotServer("postgres-secrets", tmp_path, url, slack, None)
        server.env.update(CHAOS_FLAG_KEY=FLAG_KEY, CHAOS_FLAG_TOKEN=FLAG_TOKEN)
        (tmp_path / "catalogue.yml").write_text(secret_catalogue(flag_service.url), encoding="utf-8")
        server.start()
        stack.callback(server.stop)
        slack.set_usergroup(STAKEHOLDER_GROUP, STAKEHOLDERS)
        yield Bot(server, slack)


SECRETS = {
    "the bot token": identity.BOT_TOKEN,
    "the signing secret": identity.SIGNING_SECRET,
    "the ${CHAOS_FLAG_KEY} value": FLAG_KEY,
    "the ${CHAOS_FLAG_TOKEN} value": FLAG_TOKEN,
    "the database password": DB_PASSWORD,
}


def run_the_scenarios(bot: Bot, flag_service: FlagService) -> None:
    # A run whose adapter carries secrets: planned, approved, started, aborted; its revert fails.
    run = bot.plan(view=bot.open_plan(OWNER, SECRET_EXPERIMENT))
    for approver in (RELIABILITY, SECURITY, STAKEHOLDER):
        bot.approve(run, approver)
    bot.start(run)
    assert bot.command(f"abort {run.label} done testing", RELIABILITY).status == 200
    wait_until(lambda: bot.server.run_state(run.id) != "running", timeout=30, what=f"{run.label} to end")
    assert ("/flags/on?key=" + FLAG_KEY, f"Bearer {FLAG_TOKEN}") in flag_service.seen, flag_service.seen
    assert any(path.startswith("/flags/off") for path, _ in flag_service.seen), "the revert was never tried"
    # A forged request, and Slack failing in two ways.
    assert bot.send(wire.slash_command("abort all", OWNER, secret="guessed")).status == 401
    bot.slack.fail_next("chat.postEphemeral", status=200, error="channel_not_found")
    bot.command("bogus", OWNER)
    other = bot.plan()
    bot.slack.fail_next("chat.update", status=500, times=5)
    bot.click("run.approve", other, RELIABILITY)
    bot.reply(other, f"Approved by <@{RELIABILITY}>", timeout=15)
    bot.settle(timeout=20)


def observable(bot: Bot) -> dict[str, str]:
    """Everything someone other than the bot's own process can read."""
    server = bot.server
    slack_bodies = "\n".join(
        json.dumps({"method": c.method, "params": c.params, "response": c.response}) for c in bot.slack.calls()
    )
    exports = {}
    for what in ("runs", "events"):
        for form in ("jsonl", "csv"):
            done = subprocess.run(
                [server.executable(), "export", what, "--format", form],
                env=server.env,
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr.decode(errors="replace")
            assert done.stdout, f"chaosbot export {what} wrote nothing"
            exports[f"chaosbot export {what} --format {form}"] = (done.stdout + done.stderr).decode(errors="replace")
    return {
        "the server's output": server.log_text(),
        "the bodies the fake Slack received": slack_bodies,
        **exports,
        "/healthz": server.get("/healthz").body.decode(),
        "/metrics": server.get("/metrics").body.decode(),
    }


def test_secrets_never_appear_in_logs_posts_exports_or_endpoints(secret_bot: Bot, flag_service: FlagService) -> None:
    run_the_scenarios(secret_bot, flag_service)
    seen = observable(secret_bot)
    assert len(seen["the server's output"].splitlines()) > 10, "the server's output was not captured"
    leaks = [
        f"{secret} in {where}" for where, text in seen.items() for secret, value in SECRETS.items() if value in text
    ]
    assert not leaks, leaks
    # The token was sent where it belongs: the Authorization header of every Web API call, never a parameter.
    for call in secret_bot.slack.calls():
        if call.method not in (FakeSlack.RESPONSE_URL, FakeSlack.UPLOAD):
            assert call.headers.get("authorization") == f"Bearer {identity.BOT_TOKEN}", call.method
