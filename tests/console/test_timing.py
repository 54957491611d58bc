"""Issue 8 in ``chaosbot shell``: a run that starts by itself after its notice, freezes and the override
with a reason, editing a plan (approvals reset), and the off-peak window as a form error."""

from __future__ import annotations

import argparse
import io
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.console import shell
from bot.schedule.windows import Day
from tests.intervals import run_fast

ZONE = ZoneInfo("Australia/Sydney")  # the settings' default team zone
CATALOGUE = """\
experiments:
  - id: CE-90
    title: Rehearsed flag flip
    hypothesis: The portal keeps serving when the share-token flag flips.
    method: Flip the share-token flag (the dry_run adapter contacts nothing).
    expected_outcome: No user-visible errors.
    safeguards: [Dry run only.]
    rollback_steps: ["Run `/chaos abort`."]
    environments: [staging, production]
    fault:
      adapter: dry_run
      params:
        would_use: http
        params:
          inject: {method: PUT, url: "http://127.0.0.1:9/flags/x", json: {enabled: true}}
          revert: {method: PUT, url: "http://127.0.0.1:9/flags/x", json: {enabled: false}}
    max_duration: 4s
    rto: 10s
"""


def policy(window_day: Day) -> str:
    return f"""\
roles:
  reliability_partner: {{users: [rita]}}
  security_specialist: {{users: [sam]}}
  stakeholder: {{users: [stella]}}
  executive: {{users: [eve]}}
environments:
  staging:
    approvals: [reliability_partner, security_specialist, stakeholder]
  production:
    approvals: [reliability_partner, security_specialist, stakeholder, executive]
    windows:
      - {{days: [{window_day.value}], start: "00:00", end: "24:00"}}
plan_expiry: 1h
start_early: 30m
notice: 10s
"""


@pytest.fixture
def timed_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> datetime:
    """A fresh SQLite file, the test catalogue, and a policy whose production window is two days away."""
    now = datetime.now(ZONE)
    window_day = Day.of((now + timedelta(days=2)).date())
    (tmp_path / "policy.yml").write_text(policy(window_day), encoding="utf-8")
    (tmp_path / "catalogue.yml").write_text(CATALOGUE, encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'console.db'}")
    monkeypatch.setenv("CHAOSBOT_POLICY", str(tmp_path / "policy.yml"))
    monkeypatch.setenv("CHAOSBOT_CATALOGUE", str(tmp_path / "catalogue.yml"))
    monkeypatch.setenv("CHAOSBOT_SPOOL_DIR", str(tmp_path / "spool"))
    run_fast(monkeypatch)
    for name in ("REDIS_URL", "CHAOSBOT_CHANNEL", "CHAOSBOT_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    return now


def run_shell(script: str) -> str:
    out = io.StringIO()
    code = shell.main(argparse.Namespace(user="oliver", script=None), stdin=io.StringIO(script), out=out)
    assert code == 0
    return out.getvalue()


def after(transcript: str, marker: str) -> str:
    assert marker in transcript, f"{marker!r} not in transcript:\n{transcript}"
    return transcript[transcript.index(marker) :]


def approvals(run: str) -> str:
    return "".join(f"as {who}\nclick Approve {run}\n" for who in ("rita", "sam", "stella"))


def test_an_approved_run_is_announced_then_starts_by_itself(timed_shell: datetime) -> None:
    script = "/chaos plan CE-90 staging\nset planned_start +12s\nsubmit\n" + approvals("RUN-1") + "wait RUN-1 90\n"
    transcript = run_shell(script)

    form = after(transcript, "oliver> /chaos plan CE-90 staging")
    assert "(5) Scheduled start (optional) [auto_start]: Start automatically at the planned start" in form
    notice = after(transcript, "Coming up: RUN-1 (CE-90")
    assert "owned by @oliver" in notice and "It starts by itself at that time" in notice
    assert "To stop it once it runs: `/chaos abort RUN-1`." in notice
    assert "[1] Postpone" in notice
    started = after(notice, "started by chaosbot")
    assert "Completed" in started
    assert transcript.count("Coming up: RUN-1") == 2  # in the channel and in the run's thread


def test_a_freeze_refuses_a_start_and_an_approver_starts_it_anyway_with_a_reason(timed_shell: datetime) -> None:
    start = (timed_shell - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")
    end = (timed_shell + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    script = (
        f"/chaos freeze add {start} {end} client delivery\n"
        f"as rita\n/chaos freeze add {end} {start} backwards\n"
        f"/chaos freeze add {start} {end} client delivery\n"
        f"/chaos freeze add {start} {end} --env staging again\n"
        "/chaos freeze list\n"
        "as oliver\n/chaos plan CE-90 staging\nset planned_start +20m\nset auto_start no\nsubmit\n"
        + approvals("RUN-1")
        + "as oliver\n/chaos start RUN-1\nclick Start anyway\n"
        + "as rita\n/chaos start RUN-1\nclick Start anyway\nsubmit\nset reason the client agreed in writing\nsubmit\n"
        + "wait RUN-1 30\nshow RUN-1\n/chaos freeze remove FRZ-1\n/chaos freeze list\n"
    )
    transcript = run_shell(script)

    assert "Only approvers can add a freeze." in after(transcript, "oliver> /chaos freeze add")
    assert "before it starts" in after(transcript, "rita> /chaos freeze add")
    added = after(transcript, "rita> /chaos freeze add " + start)
    assert "@rita added a freeze: FRZ-1 · " in added and "client delivery" in added
    assert "That freeze overlaps FRZ-1" in after(added, "again")
    assert "Current and coming freezes:" in after(transcript, "rita> /chaos freeze list")

    refused = after(transcript, "oliver> /chaos start RUN-1")
    assert "RUN-1 may not start now: a delivery freeze holds in staging (FRZ-1" in refused
    assert "[1] Start anyway" in refused
    assert "Only an approver can start RUN-1 inside FRZ-1." in after(refused, "oliver> click Start anyway")

    override = after(transcript, "rita> click Start anyway")
    assert "┌ Start RUN-1 anyway" in override
    assert "Please complete this required field." in after(override, "rita [Start RUN-1 anyway]> submit")
    thread = after(transcript, "rita> show RUN-1")
    assert "Started inside a freeze by @rita (FRZ-1" in thread
    assert "Reason: the client agreed in writing" in thread
    assert "@rita removed the freeze FRZ-1" in after(transcript, "rita> /chaos freeze remove FRZ-1")
    assert "No freeze is in force or coming." in after(transcript, "rita> /chaos freeze remove FRZ-1")


def test_a_rehearsal_started_anyway_inside_a_freeze_stays_a_short_rehearsal(timed_shell: datetime) -> None:
    start = (timed_shell - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")
    end = (timed_shell + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    script = (
        f"as rita\n/chaos freeze add {start} {end} client delivery\n"
        "as oliver\n/chaos plan CE-90 staging\nset planned_start +20m\nset auto_start no\nsubmit\n"
        + approvals("RUN-1")
        + "as rita\n/chaos start RUN-1 --dry-run --for 2s\nclick Start anyway\n"
        + "set reason rehearse the runbook before the delivery\nsubmit\nwait RUN-1 30\nshow RUN-1\n"
    )
    transcript = run_shell(script)

    started = after(transcript, "rita [Start RUN-1 anyway]> submit")
    assert "RUN-1 started by @rita as a dry run" in started  # the override kept --dry-run ...
    assert "for up to 2s" in started  # ... and --for: a rehearsal never becomes a real, full-length fault
    assert "Started inside a freeze by @rita (FRZ-1" in after(transcript, "rita> show RUN-1")


def test_editing_a_plan_resets_its_approvals_and_ended_runs_cannot_be_edited(timed_shell: datetime) -> None:
    script = (
        "/chaos plan CE-90 staging\nset planned_start +2h\nsubmit\n"
        "as rita\nclick Approve RUN-1\n"
        "as bob\nclick Edit RUN-1\n"
        "as oliver\nclick Edit RUN-1\nset notes moved after the release\nset planned_start +3h\nsubmit\n"
        "/chaos cancel RUN-1 not needed\nclick Edit RUN-1\n"
    )
    transcript = run_shell(script)

    assert "Only the owner (@oliver) or an approver can edit RUN-1." in after(transcript, "bob> click Edit RUN-1")
    form = after(transcript, "oliver> click Edit RUN-1")
    assert "┌ Edit RUN-1" in form and "Saving resets every approval" in form
    assert "(3) Rollback steps [rollback_steps]: 1. Run `/chaos abort`." in form
    edited = after(form, "✓ Submitted 'Edit RUN-1'.")
    assert "Plan edited by @oliver: planned start " in edited and "notes rewritten" in edited
    assert "Every approval was reset (reliability partner by @rita)" in edited
    assert "⬜ reliability partner" in edited or "reliability partner (@rita)" in edited
    assert "An ended run cannot be edited" in after(transcript, "not needed")


def test_planning_outside_the_off_peak_windows_names_the_next_allowed_start(timed_shell: datetime) -> None:
    transcript = run_shell("/chaos plan CE-90 production\nset planned_start +1h\nsubmit\ncancel\n")
    error = after(transcript, "oliver [Plan CE-90]> submit")
    assert "is outside production's off-peak windows" in error
    assert "The next allowed start is " in error
