"""Issue 8 through the real server and the fake Slack: the plan form's automatic start and window check,
the notice and the automatic start, not approved at the start, freezes and "Start anyway", editing a plan,
and /healthz with a stale calendar feed.

These tests use their own server ("sqlite-timing"): its policy announces runs 10 s ahead, gives production
one whole-day window two days from now, and lists a calendar feed that is down.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.schedule.windows import Day
from tests.fakeslack import wire
from tests.fakeslack.server import Call, FakeSlack

from .conftest import (
    CHANNEL,
    EXTRA_ENV,
    OWNER,
    POLICY,
    RELIABILITY,
    SECURITY,
    STAKEHOLDER,
    Bot,
    ChaosbotServer,
    RunHandle,
    ServerRegistry,
    _bot,
    block_text,
    buttons,
    plan_values,
)

ZONE = ZoneInfo("Australia/Sydney")  # the server's default team zone
KIND = "sqlite-timing"


def timing_policy() -> str:
    window_day = Day.of((datetime.now(ZONE) + timedelta(days=2)).date())
    production = "    approvals: [reliability_partner, security_specialist, stakeholder, executive]\n"
    assert production in POLICY
    windowed = POLICY.replace(
        production,
        production + f'    windows:\n      - {{days: [{window_day.value}], start: "00:00", end: "24:00"}}\n',
    )
    return windowed + 'notice: 10s\nfreeze_calendars:\n  - {url: "http://127.0.0.1:9/deliveries.ics", poll: 1m}\n'


# One server for the module, on one worker of a parallel run, stopped after it (its calendar feed is down).
pytestmark = pytest.mark.xdist_group("slack-timing")


@pytest.fixture(scope="module")
def timing_server(
    chaosbot_servers: ServerRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChaosbotServer]:
    path = tmp_path_factory.mktemp("timing-policy") / "policy.yml"
    path.write_text(timing_policy(), encoding="utf-8")
    EXTRA_ENV[KIND] = {"CHAOSBOT_POLICY": str(path)}
    with chaosbot_servers.own(KIND) as server:
        yield server


@pytest.fixture
def bot(timing_server: ChaosbotServer, slack: FakeSlack, request: pytest.FixtureRequest) -> Iterator[Bot]:
    yield from _bot(timing_server, slack, request)


def plan(bot: Bot, *, start_in: int, auto_start: bool, environment: str = "staging") -> RunHandle:
    view = bot.open_plan(OWNER)
    values = plan_values(environment, int(time.time()) + start_in, auto_start=auto_start)
    run = bot.submit_plan(view, values, OWNER)
    bot.runs.append(run)
    return run


def approve_all(bot: Bot, run: RunHandle) -> None:
    for approver in (RELIABILITY, SECURITY, STAKEHOLDER):
        bot.approve(run, approver)


def channel_posts(bot: Bot, containing: str) -> list[Call]:
    return [
        c
        for c in bot.slack.calls("chat.postMessage")
        if c.params.get("channel") == CHANNEL and not c.params.get("thread_ts") and containing in str(c.params["text"])
    ]


def click_in(bot: Bot, message: dict[str, Any], action_id: str, user: str, trigger: str) -> None:
    """Press a button of an ephemeral or a notice (not the run's own message)."""
    request = wire.block_action(action_id, user_id=user, message=message, channel_id=CHANNEL, trigger=trigger)
    assert bot.send(request).status == 200


def opened(bot: Bot, trigger: str) -> dict[str, Any]:
    call = bot.slack.wait_for("views.open", predicate=lambda c: c.params.get("trigger_id") == trigger)[-1]
    assert call.ok, call.response
    return dict(call.response["view"])


def test_the_plan_form_has_the_automatic_start_ticked_and_refuses_a_start_outside_the_windows(bot: Bot) -> None:
    view = bot.open_plan(OWNER)
    box = next(b for b in view["blocks"] if b.get("block_id") == "auto_start")
    assert box["element"]["type"] == "checkboxes"
    assert box["element"]["initial_options"][0]["value"] == "auto_start"  # ticked by default

    answer = bot.submit(view, plan_values("production", int(time.time()) + 3600), OWNER)
    errors = answer.json()["errors"]
    assert answer.json()["response_action"] == "errors" and set(errors) == {"planned_start"}
    assert "is outside production's off-peak windows" in errors["planned_start"]
    assert "The next allowed start is " in errors["planned_start"]


def test_a_run_is_announced_then_starts_by_itself_once(bot: Bot) -> None:
    run = plan(bot, start_in=16, auto_start=True)
    approve_all(bot, run)
    notice = bot.announcement(f"Coming up: {run.label}", timeout=20)
    text = str(notice.params["text"])
    assert f"owned by <@{OWNER}>" in text and "It starts by itself at that time" in text
    assert f"`/chaos abort {run.label}`" in text and "staging" in text
    assert "run.postpone" in buttons(notice.params)
    bot.reply(run, f"Coming up: {run.label}")

    bot.wait_message(run, lambda m: "run.abort" in buttons(m), timeout=25, what="started by itself")
    assert bot.server.query("SELECT started_by FROM runs WHERE id = :id", id=run.id)[0][0] == "chaosbot"
    bot.settle()
    assert len(channel_posts(bot, f"Coming up: {run.label}")) == 1


def test_a_run_not_approved_at_its_start_names_the_missing_roles_and_their_holders(bot: Bot) -> None:
    run = plan(bot, start_in=8, auto_start=True)
    bot.approve(run, RELIABILITY)
    said = bot.reply(run, "did not start by itself", timeout=25).params["text"]
    assert f"<@{SECURITY}>" in said and "security specialist" in said and "stakeholder" in said
    bot.announcement(f"{run.label} did not start by itself")
    assert bot.server.run_state(run.id) == "planned"


def test_a_freeze_refuses_a_start_and_an_approver_starts_anyway_with_a_recorded_reason(bot: Bot) -> None:
    now = datetime.now(ZONE)
    start, end = (
        (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"),
        (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    )
    bot.command(f"freeze add {start} {end} client delivery", OWNER)
    assert "Only approvers can add a freeze." in bot.ephemeral(OWNER, "freeze")
    bot.command(f"freeze add {end} {start} backwards", RELIABILITY)
    assert "before it starts" in bot.ephemeral(RELIABILITY, "before")
    bot.command(f"freeze add {start} {end} client delivery", RELIABILITY)
    added = bot.announcement("added a freeze")
    freeze_id = int(str(added.params["text"]).split("FRZ-")[1].split(" ")[0])
    try:
        bot.command(f"freeze add {start} {end} --env staging again", SECURITY)
        assert f"That freeze overlaps FRZ-{freeze_id}" in bot.ephemeral(SECURITY, "overlaps")
        bot.command("freeze list", OWNER)
        listed = bot.ephemeral(OWNER, f"FRZ-{freeze_id}")
        assert "client delivery" in listed
        # The policy's feed is down: the list says its freezes are not the whole truth, without its URL.
        assert "⚠ The calendar calendar " in listed and "Its last known freezes (0) still hold." in listed
        assert "127.0.0.1:9" not in listed

        run = plan(bot, start_in=60, auto_start=False)
        approve_all(bot, run)
        bot.command(f"start {run.label}", OWNER)
        refused = bot.slack.wait_for(
            "chat.postEphemeral",
            predicate=lambda c: c.params.get("user") == OWNER and "delivery freeze" in str(c.params.get("text")),
        )[-1]
        assert f"FRZ-{freeze_id}" in str(refused.params["text"]) and "start it anyway" in str(refused.params["text"])
        assert "run.start_anyway" in buttons(refused.params)

        trigger = wire.trigger_id()
        click_in(bot, dict(refused.params), "run.start_anyway", OWNER, trigger)
        assert f"Only an approver can start {run.label} inside FRZ-{freeze_id}" in bot.ephemeral(OWNER, "approver")

        trigger = wire.trigger_id()
        click_in(bot, dict(refused.params), "run.start_anyway", RELIABILITY, trigger)
        form = opened(bot, trigger)
        assert form["callback_id"] == "override.submit"
        empty = bot.submit(form, {"reason": {"value": wire.text_value("   ")}}, RELIABILITY)
        assert "Say why" in empty.json()["errors"]["reason"]
        ok = bot.submit(form, {"reason": {"value": wire.text_value("the client agreed in writing")}}, RELIABILITY)
        assert (ok.status, ok.body) == (200, b"")
        bot.wait_message(run, lambda m: "run.abort" in buttons(m), timeout=10, what="started anyway")
        said = bot.reply(run, "Started inside a freeze").params["text"]
        assert f"<@{RELIABILITY}>" in said and "Reason: the client agreed in writing" in said
        (payload,) = bot.server.query(
            "SELECT payload FROM audit_events WHERE action = 'freeze.overridden' AND run_id = :id", id=run.id
        )[0]
        recorded = payload if isinstance(payload, dict) else json.loads(payload)
        assert recorded["override_reason"] == "the client agreed in writing" and recorded["freeze"] == freeze_id
    finally:
        bot.command(f"freeze remove FRZ-{freeze_id}", RELIABILITY)
        bot.announcement(f"removed the freeze FRZ-{freeze_id}")
    assert bot.server.query("SELECT count(*) FROM audit_events WHERE action LIKE 'freeze.%'")[0][0] >= 3


def test_edit_opens_the_form_filled_in_and_resets_every_approval(bot: Bot) -> None:
    run = plan(bot, start_in=600, auto_start=False)
    bot.approve(run, RELIABILITY)
    assert "run.edit" in buttons(bot.message(run))

    trigger = wire.trigger_id()
    assert bot.click("run.edit", run, OWNER, trigger=trigger).status == 200
    form = opened(bot, trigger)
    assert form["title"]["text"] == f"Edit {run.label}" and json.loads(form["private_metadata"])["run"] == run.id
    rollback = next(b for b in form["blocks"] if b.get("block_id") == "rollback_steps")
    assert rollback["element"]["initial_value"] == "1. Run `/chaos abort`."

    values = plan_values("staging", int(time.time()) + 1200, rollback="1. Flip the flag back.")
    assert bot.submit(form, values, OWNER).body == b""
    said = bot.reply(run, "Plan edited by").params["text"]
    assert "planned start" in said and "rollback steps rewritten" in said
    assert f"Every approval was reset (reliability partner by <@{RELIABILITY}>)" in said
    updated = bot.wait_message(run, lambda m: "Flip the flag back" in block_text(m["blocks"]), what="edited")
    assert ":white_check_mark: reliability partner" not in block_text(updated["blocks"])
    assert bot.server.query("SELECT count(*) FROM approvals WHERE run_id = :id", id=run.id)[0][0] == 0

    with_edit = bot.message(run)
    bot.command(f"cancel {run.label}", OWNER)
    bot.wait_message(run, lambda m: "Cancelled" in m["text"], what="cancelled")
    click_in(bot, with_edit, "run.edit", OWNER, wire.trigger_id())  # the button of a message seen before
    assert "An ended run cannot be edited" in bot.ephemeral(OWNER, "cannot be edited")


def test_healthz_reports_a_stale_calendar_as_degraded_not_down(bot: Bot) -> None:
    answer = bot.server.get("/healthz")
    assert answer.status == 200  # degraded, not down: the last known freezes still hold
    report: dict[str, Any] = answer.json()
    assert report["database"] == "ok" and report["calendars"] == "degraded"
    assert any("calendar" in sentence and "stale" in sentence for sentence in report["stale_calendars"])
    assert "127.0.0.1:9" not in json.dumps(report)  # a feed's URL is a secret: named by a label only
