"""``chaosbot shell`` end to end: a script through the real runtime on a fresh SQLite file."""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.console import shell
from bot.console.shell import ConsoleSurface, Shell, echo_reader
from bot.interface import kit
from bot.settings import load_settings
from bot.words import Person, Words
from storage.db import NotMigratedError

DEMO = Path(shell.__file__).with_name("rehearsal.txt")

SESSION = """\
# oliver plans CE-01
/chaos list
/chaos plan CE-01
set planned_start 2020-01-01 10:00
submit
set 2 now
submit
# the owner may not approve his own run
click Approve
as rita
click 1
as sam
click Approve [RUN-1]
as stella
click Approve RUN-1
# bob holds no approver role
as bob
click Start
as rita
/chaos plan CE-01
set notes second plan
submit
as sam
click Reject RUN-2
submit
set reason too close to the release
submit
show RUN-1
frobnicate
quit
"""


@pytest.fixture
def fresh_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "console.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("CHAOSBOT_SPOOL_DIR", str(tmp_path / "spool"))  # charts too: not in the shared cwd
    for name in ("REDIS_URL", "CHAOSBOT_POLICY", "CHAOSBOT_CATALOGUE", "CHAOSBOT_CHANNEL", "CHAOSBOT_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    return path


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def healthy_portal(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local portal whose health checks pass, as ``PORTAL_URL`` (CE-01's stop condition probes it)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("PORTAL_URL", url)
    yield url
    server.shutdown()
    server.server_close()


def run_shell(script: str | Path, *, user: str = "oliver") -> str:
    """Run the shell on a script file, or on text piped to standard input; return the transcript."""
    out = io.StringIO()
    if isinstance(script, Path):
        code = shell.main(argparse.Namespace(user=user, script=script), out=out)
    else:
        code = shell.main(argparse.Namespace(user=user, script=None), stdin=io.StringIO(script), out=out)
    assert code == 0
    return out.getvalue()


def after(transcript: str, marker: str) -> str:
    """The transcript from ``marker`` on (asserting it is there)."""
    assert marker in transcript, f"{marker!r} not in transcript:\n{transcript}"
    return transcript[transcript.index(marker) :]


def test_scripted_session_plans_approves_and_refuses(fresh_db: Path) -> None:
    transcript = run_shell(SESSION)

    assert "Set up the embedded database" in transcript
    catalogue = after(transcript, "oliver> /chaos list")
    assert "(only you) Experiment catalogue" in catalogue
    assert "CE-06 Notification digest burst" in catalogue

    form = after(transcript, "oliver> /chaos plan CE-01")
    assert "┌ Plan CE-01" in form
    assert "(2) Planned start [planned_start]:" in form
    assert "(4) Notes (optional) [notes]: —" in form

    past = after(transcript, "oliver [Plan CE-01]> submit")
    assert "The form has errors:" in past.split("oliver [Plan CE-01]> set 2 now")[0]
    assert "is in the past" in past

    posted = after(transcript, "✓ Submitted 'Plan CE-01'.")
    assert "── #reliability · ts " in posted
    assert "RUN-1 · CE-01 Share token cache outage" in posted
    assert "[1] Approve  [2] Reject" in posted
    assert "↳ RUN-1 thread: Planned by @oliver." in posted

    own = after(transcript, "oliver> click Approve")
    assert "(only you) ⚠️ You own RUN-1, so you cannot approve it: someone else must." in own

    rita = after(transcript, "rita> click 1")
    assert "↻ RUN-1 updated" in rita
    assert "✅ reliability partner: @rita" in rita
    assert "↳ RUN-1 thread: Approved by @rita as reliability partner." in rita

    stella = after(transcript, "stella> click Approve RUN-1")
    assert "✅ Approved: ready to start" in stella
    assert "[1] Start  [2] Cancel" in stella.split("bob>")[0]
    assert "RUN-1 has every approval it needs and can start." in stella

    bob = after(transcript, "bob> click Start")
    assert "(only you) ⚠️ Only the owner (@oliver) or an approver can start RUN-1." in bob.split("as sam")[0]


def test_reject_goes_through_its_form(fresh_db: Path) -> None:
    transcript = run_shell(SESSION)

    reject = after(transcript, "sam> click Reject RUN-2")
    assert "┌ Reject RUN-2" in reject
    assert "Please complete this required field." in reject  # Slack's own check before submitting
    assert "sam [Reject RUN-2]> set reason too close to the release" in reject
    assert "↳ RUN-2 thread: Rejected by @sam: too close to the release" in reject
    assert "🚫 Rejected by @sam: too close to the release" in reject

    assert "Unknown command 'frobnicate'" in transcript
    assert "Traceback" not in transcript


def test_demo_runs_a_rehearsal_to_completion_and_measures_recovery(fresh_db: Path, healthy_portal: str) -> None:
    transcript = run_shell(DEMO)

    assert "Traceback" not in transcript
    assert "Sorry, that failed" not in transcript
    start = after(transcript, "oliver> /chaos start RUN-1 --dry-run --for 10s")
    assert "RUN-1 started by @oliver as a dry run: injecting redis for up to 10s" in start
    assert "🔴 Running (dry run) since" in start
    assert "of 10s" in start  # progress counts against the rehearsal's length, not CE-01's 5 minutes
    assert "[1] Abort" in start
    waited = after(transcript, "oliver> wait RUN-1")
    assert "RUN-1 is completed." in waited
    assert "hypothesis held" in waited  # the portal stayed healthy: recovered within the RTO
    shown = after(transcript, "oliver> show RUN-1")
    assert "🏁 Completed by chaosbot" in shown and "Outcome: completed · hypothesis held" in shown
    assert "── App Home of @oliver ──" in transcript
    assert "Still running" not in transcript


def test_demo_without_a_portal_completes_without_testing_the_hypothesis(
    fresh_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PORTAL_URL", raising=False)
    transcript = run_shell(DEMO)

    start = after(transcript, "oliver> /chaos start RUN-1 --dry-run --for 10s")
    assert "RUN-1 started by @oliver as a dry run" in start
    assert "share-link latency: not evaluated" in start
    assert "PORTAL_URL is not set" in start
    waited = after(transcript, "oliver> wait RUN-1")
    assert "RUN-1 is completed." in waited
    assert "Outcome: completed · hypothesis not evaluated" in waited
    assert "Traceback" not in transcript


def test_a_rehearsal_cannot_outlast_the_experiment_and_only_rehearsals_are_shortened(fresh_db: Path) -> None:
    script = DEMO.read_text(encoding="utf-8").split("/chaos start RUN-1")[0] + (
        "/chaos start RUN-1 --for 10s\n/chaos start RUN-1 --dry-run --for 6m\n/chaos start RUN-1 --dry-run --for\n"
        "/chaos status\n"
    )
    transcript = run_shell(script)

    assert "Only a rehearsal (`--dry-run`) can be shorter" in transcript
    assert "can last from 1s to its maximum, 5m 00s" in transcript
    assert "`--for` needs a duration" in transcript
    assert "RUN-1 CE-01 in staging: approved" in after(transcript, "oliver> /chaos status")


def test_quitting_with_a_running_run_says_what_happens_to_it(fresh_db: Path) -> None:
    script = DEMO.read_text(encoding="utf-8").replace("wait RUN-1", "# (no wait)")
    transcript = run_shell(script)

    assert "Still running: RUN-1." in transcript


class ExplodingHandlers:
    """Handlers whose every entry point fails the way a bug would."""

    def command(self, *_args: Any) -> None:
        raise RuntimeError("database on fire")


def test_unexpected_errors_are_one_line_and_the_shell_continues() -> None:
    out = io.StringIO()
    surface = ConsoleSurface(out, load_settings().zone)
    lines = iter(["/chaos list", "as rita", "quit"])
    code = Shell(ExplodingHandlers(), surface, user="oliver", read=echo_reader(lines, out)).run()  # type: ignore[arg-type]

    assert code == 0
    text = out.getvalue()
    assert "! That failed unexpectedly (RuntimeError: database on fire). The shell continues." in text
    assert "You are now @rita." in text
    assert "Traceback" not in text


def test_thread_replies_sit_under_their_parent_and_buttons_stay_clickable() -> None:
    out = io.StringIO()
    surface = ConsoleSurface(out, load_settings().zone)
    ref = '{"run":7}'
    message = kit.Message(
        text="RUN-7",
        blocks=[
            kit.header("RUN-7 · CE-02 Replay"),
            {"type": "actions", "elements": [kit.button("Approve", "run.approve", ref)]},
        ],
    )
    channel, ts = surface.post("#reliability", message)
    say = surface.renderer
    surface.post(channel, kit.notice(say(Words.of("Planned by ", Person("oliver"), "."))), thread_ts=ts)
    surface.ephemeral("console", "oliver", kit.notice(f"{say.here} hello"))

    text = out.getvalue()
    assert f"── #reliability · ts {ts} ──" in text
    assert "    ↳ RUN-7 thread: Planned by @oliver." in text
    assert "(only you) @here hello" in text
    assert surface.find_run("run-7") is not None
    found = [(b.label, b.value, c) for b, c in surface.buttons_everywhere()]
    assert ("Approve", ref, "#reliability") in found


class UnmigratedPostgres:
    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int) -> None:
        self.url = url

    def check_migrated(self) -> None:
        raise NotMigratedError(self.url, None, "head")

    def dispose(self) -> None:
        pass


def test_postgres_is_never_migrated_behind_your_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell, "Database", UnmigratedPostgres)
    settings = load_settings(DATABASE_URL="postgresql://chaos@db.example/chaos")
    with pytest.raises(NotMigratedError, match="run `chaosbot db upgrade` first"):
        shell.prepare_database(settings, io.StringIO())


def test_every_command_is_audited_and_an_abort_reverts_before_its_record(fresh_db: Path) -> None:
    run_shell(DEMO.read_text(encoding="utf-8").replace("wait RUN-1", "/chaos abort RUN-1 demo over"))

    with sqlite3.connect(fresh_db) as connection:
        actions = connection.execute("SELECT action, payload FROM audit_events ORDER BY seq").fetchall()
    commands = [json.loads(payload)["command"] for action, payload in actions if action == "command"]
    assert "/chaos list" in commands and "/chaos abort RUN-1 demo over" in commands
    order = [action if action != "command" else json.loads(payload)["command"] for action, payload in actions]
    assert order.index("run.aborted") < order.index("/chaos abort RUN-1 demo over")
    assert order.index("/chaos start RUN-1 --dry-run --for 10s") < order.index("run.started")


BROKEN_CATALOGUE = """\
experiments:
  - id: CE-92
    title: Flag flip against a dead flag API
    hypothesis: Nothing; the flag API is down, so injecting and reverting both fail.
    method: Flip a flag through an API that refuses connections.
    expected_outcome: The start fails and the channel is alerted to roll back by hand.
    safeguards: [Loopback only.]
    rollback_steps: [Turn the flag off by hand.]
    environments: [staging]
    fault:
      adapter: http
      params:
        timeout_seconds: 1
        retries: 0
        backoff_seconds: 0
        inject: {method: PUT, url: "http://127.0.0.1:9/flags/dead", json: {enabled: true}}
        revert: {method: PUT, url: "http://127.0.0.1:9/flags/dead", json: {enabled: false}}
    max_duration: 30s
    rto: 10s
"""


def test_the_loud_alert_of_a_failed_revert_can_be_acknowledged_in_the_shell(
    fresh_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogue = tmp_path / "catalogue.yml"
    catalogue.write_text(BROKEN_CATALOGUE, encoding="utf-8")
    monkeypatch.setenv("CHAOSBOT_CATALOGUE", str(catalogue))
    script = """\
/chaos plan CE-92
set 2 now
submit
as rita
click Approve RUN-1
as sam
click Approve RUN-1
as stella
click Approve RUN-1
as oliver
click Start RUN-1
as bob
click Acknowledge
click Acknowledge
quit
"""
    transcript = run_shell(script)

    alert = after(transcript, "could NOT be reverted")
    assert "Turn the flag off by hand." in alert and "Acknowledge" in alert
    acknowledged = after(transcript, "bob> click Acknowledge")
    assert "RUN-1's revert alarm acknowledged by @bob: no more reminders." in acknowledged
    assert "RUN-1 has no alarm waiting for an acknowledgement." in acknowledged


def test_status_and_home_in_the_shell_show_running_runs_first_with_true_counts(fresh_db: Path) -> None:
    from datetime import timedelta

    from bot.catalogue.service import load_catalogue
    from bot.runs.models import RunState
    from storage.db import Database, utcnow
    from storage.migrate import upgrade
    from tests.core.helpers import add_runs

    url = f"sqlite:///{fresh_db}"
    upgrade(url)
    experiment = load_catalogue().get("CE-01")
    assert experiment is not None
    db, now = Database(url), utcnow()
    add_runs(db, experiment, RunState.RUNNING, 50, planned_start=now, leased_to="elsewhere")  # left be by the shell
    add_runs(db, experiment, RunState.PLANNED, 60, planned_start=now + timedelta(days=3))
    db.dispose()

    transcript = run_shell("/chaos status\n/chaos status running\nhome\nclick Show more\nquit\n", user="rita")

    status = after(transcript, "rita> /chaos status")
    assert status.index("Running now: 50") < status.index("Planned or approved: 60")
    assert "… and 30 more running: `/chaos status running`" in status and "… and 20 more planned" in status
    listed = after(transcript, "rita> /chaos status running")
    assert listed.index("1 to 45 of 50") < listed.index("RUN-6 ") < listed.index("46 to 50 of 50")
    assert "Running runs 41 to 50 of 50, newest first." in after(transcript, "pressed Show more")
