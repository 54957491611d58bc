"""A run's life in the channel: plan modal, approvals, start, abort; and the approval rules around it."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from bot.runs.rules import NO_REASON
from tests.fakeslack import wire

from .conftest import (
    BROKEN_EXPERIMENT,
    CHANNEL,
    EXECUTIVE,
    OUTSIDER,
    OWNER,
    RELIABILITY,
    SECURITY,
    STAKEHOLDER,
    Bot,
    RunHandle,
    block_text,
    buttons,
    metric,
    plan_values,
    wait_until,
)

UNCHECKED = ":white_square:"
CHECKED = ":white_check_mark:"


def approvals_section(message: dict) -> str:
    return next(
        b["text"]["text"] for b in message["blocks"] if b.get("text", {}).get("text", "").startswith("*Approvals*")
    )


def approvals_in_db(bot: Bot, run: RunHandle) -> list[tuple[str, str]]:
    rows = bot.server.query("SELECT role, user_id FROM approvals WHERE run_id = :id ORDER BY id", id=run.id)
    return [(str(role), str(user)) for role, user in rows]


def test_plan_approve_start_abort_all_in_one_message(bot: Bot) -> None:
    view = bot.open_plan()
    # The fake validated the modal against Block Kit's rules (views.open answered ok).
    assert view["type"] == "modal" and view["callback_id"] == "plan.submit"
    inputs = [b["block_id"] for b in view["blocks"] if b["type"] == "input"]
    assert inputs == ["environment", "planned_start", "rollback_steps", "notes", "auto_start"]
    assert json.loads(view["private_metadata"])["experiment"] == "CE-90"

    run = bot.plan(view=view)
    tops = [
        c
        for c in bot.slack.calls("chat.postMessage")
        if not c.params.get("thread_ts") and str(c.params.get("text")).startswith(f"{run.label} · ")
    ]
    assert len(tops) == 1 and tops[0].params["channel"] == CHANNEL
    planned = bot.message(run)
    assert planned["text"].startswith(f"{run.label} · CE-90 Rehearsed flag flip: Planned: waiting for approval")
    assert {k: v.get("style") for k, v in buttons(planned).items()} == {
        "run.approve": "primary",
        "run.reject": None,
        "run.edit": None,
    }
    checklist = approvals_section(planned)
    assert f"{UNCHECKED} reliability partner (<@{RELIABILITY}>)" in checklist
    assert f"{UNCHECKED} security specialist (<@{SECURITY}>)" in checklist
    assert f"{UNCHECKED} stakeholder (<!subteam^S0STAKE>)" in checklist
    assert "executive" not in checklist  # staging needs no executive

    bot.approve(run, RELIABILITY)
    after_one = bot.message(run)
    assert f"{CHECKED} reliability partner: <@{RELIABILITY}>" in approvals_section(after_one)
    assert set(buttons(after_one)) == {"run.approve", "run.reject", "run.edit"}
    bot.approve(run, SECURITY)
    bot.approve(run, STAKEHOLDER)  # a member of the stakeholder user group
    bot.reply(run, f"{run.label} has every approval it needs and can start.")
    approved = bot.wait_message(run, lambda m: "run.start" in buttons(m), what="Start button")
    assert approved["text"].endswith("Approved: ready to start")
    assert {k: v.get("style") for k, v in buttons(approved).items()} == {
        "run.start": "primary",
        "run.cancel": None,
        "run.edit": None,
    }
    assert f"{CHECKED} stakeholder: <@{STAKEHOLDER}>" in approvals_section(approved)
    assert approvals_in_db(bot, run) == [
        ("reliability_partner", RELIABILITY),
        ("security_specialist", SECURITY),
        ("stakeholder", STAKEHOLDER),
    ]

    running = bot.start(run)
    assert "Running" in running["text"] and f"started by <@{OWNER}>" in running["text"]
    abort = buttons(running)["run.abort"]
    assert abort["style"] == "danger" and abort["confirm"]["style"] == "danger"
    assert set(buttons(running)) == {"run.abort"}
    assert bot.server.run_state(run.id) == "running"

    assert bot.command(f"abort {run.label} game day over", OWNER).status == 200
    told = bot.ephemeral(OWNER, run.label, timeout=10)
    assert told.startswith(f":white_check_mark: {run.label}: "), told  # the fault was reverted
    ended = bot.wait_message(run, lambda m: "Aborted" in m["text"], timeout=10, what="aborted")
    assert buttons(ended) == {}
    assert "game day over" in ended["text"]
    assert bot.server.run_state(run.id) == "aborted"

    # Every change edited the one message in place; the timeline is in its thread.
    updates = bot.updates(run)
    assert len(updates) >= 5 and all(c.ok and c.params["channel"] == CHANNEL for c in updates)
    replies = bot.replies(run)
    for expected in (
        f"Planned by <@{OWNER}>",
        f"Approved by <@{RELIABILITY}> as reliability partner",
        f"Approved by <@{SECURITY}> as security specialist",
        f"Approved by <@{STAKEHOLDER}> as stakeholder",
    ):
        assert any(expected in reply for reply in replies), (expected, replies)
    top_level = [m for m in bot.slack.messages(CHANNEL) if m.get("thread_ts") in (None, m["ts"])]
    assert [m["ts"] for m in top_level if m["text"].startswith(f"{run.label} · ")] == [run.ts]


def test_the_owner_cannot_approve_their_own_run(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.plan()
    assert bot.click("run.approve", run, OWNER).status == 200
    text = bot.ephemeral(OWNER, "cannot approve")
    assert text == f":warning: You own {run.label}, so you cannot approve it: someone else must."
    bot.settle()
    assert bot.updates(run) == []
    assert approvals_in_db(bot, run) == []
    assert [r for r in bot.replies(run) if "Approved" in r] == []


def test_an_approval_without_a_needed_role_is_refused_and_names_the_missing_roles(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.plan()
    bot.click("run.approve", run, OUTSIDER)
    text = bot.ephemeral(OUTSIDER, "Still missing")
    assert f"You hold none of the roles {run.label} (staging) still needs" in text
    assert f"reliability partner (<@{RELIABILITY}>)" in text
    assert f"security specialist (<@{SECURITY}>)" in text
    assert "stakeholder (<!subteam^S0STAKE>)" in text

    bot.approve(run, RELIABILITY)
    before = card(bot.message(run))
    bot.click("run.approve", run, RELIABILITY)  # the same person again
    assert "You already approved" in bot.ephemeral(RELIABILITY, "already approved")
    bot.click("run.approve", run, OUTSIDER)
    text = wait_second_refusal(bot, OUTSIDER)
    assert "reliability partner" not in text.split("Still missing:")[1]
    assert "security specialist" in text and "stakeholder" in text
    bot.settle()
    assert approvals_in_db(bot, run) == [("reliability_partner", RELIABILITY)]
    assert card(bot.message(run)) == before
    assert [r for r in bot.replies(run) if "Approved" in r] == [f"Approved by <@{RELIABILITY}> as reliability partner."]


def card(message: dict) -> dict:
    """The run's message without its thread bookkeeping, which a notice due meanwhile may change."""
    return {k: v for k, v in message.items() if k not in {"reply_count", "latest_reply", "reply_users"}}


def wait_second_refusal(bot: Bot, user: str) -> str:
    calls = bot.slack.wait_for(
        "chat.postEphemeral",
        count=2,
        predicate=lambda c: c.params.get("user") == user and "Still missing" in str(c.params.get("text")),
    )
    return str(calls[-1].params["text"])


def test_an_executive_approving_a_staging_run_is_told_their_role_is_not_needed(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.plan()  # staging: executives are not among its approvers
    bot.click("run.approve", run, EXECUTIVE)
    text = bot.ephemeral(EXECUTIVE, "still needs")
    assert text.startswith(":warning: Staging runs do not need your role (executive).")
    assert f"{run.label} still needs: reliability partner (<@{RELIABILITY}>)" in text
    assert "already approved" not in text
    bot.settle()
    assert approvals_in_db(bot, run) == []


def test_a_double_click_gives_exactly_one_approval(bot: Bot) -> None:
    run = bot.plan()
    message = bot.message(run)
    clicks = [wire.block_action("run.approve", user_id=RELIABILITY, message=message) for _ in range(2)]
    assert clicks[0].payload()["trigger_id"] != clicks[1].payload()["trigger_id"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(bot.send, clicks))
    assert [a.status for a in answers] == [200, 200]
    bot.reply(run, f"Approved by <@{RELIABILITY}>")
    assert "You already approved" in bot.ephemeral(RELIABILITY, "already approved")
    bot.settle()
    assert approvals_in_db(bot, run) == [("reliability_partner", RELIABILITY)]
    assert len([r for r in bot.replies(run) if "Approved by" in r]) == 1
    assert approvals_section(bot.message(run)).count(CHECKED) == 1


def test_a_slack_retry_of_a_click_is_applied_once(bot: Bot) -> None:
    run = bot.plan()
    first = wire.block_action("run.approve", user_id=SECURITY, message=bot.message(run))
    assert bot.send(first).status == 200
    bot.reply(run, f"Approved by <@{SECURITY}>")
    duplicates = metric(bot.server, "chaosbot_requests_total", kind="block_actions", outcome="duplicate")

    # Slack redelivers the same payload (same trigger id), signed afresh, with X-Slack-Retry-Num.
    headers = {
        **first.headers,
        **wire.sign(first.body),
        "X-Slack-Retry-Num": "1",
        "X-Slack-Retry-Reason": "http_timeout",
    }
    retry = bot.send(wire.SignedRequest(first.body, headers))
    assert retry.status == 200
    bot.settle()
    assert metric(bot.server, "chaosbot_requests_total", kind="block_actions", outcome="duplicate") == duplicates + 1
    assert approvals_in_db(bot, run) == [("security_specialist", SECURITY)]
    assert len([r for r in bot.replies(run) if "Approved by" in r]) == 1
    assert bot.ephemeral_texts(SECURITY) == []  # no "you already approved" either: the retry was dropped
    assert len(bot.updates(run)) == 1


def test_reject_asks_for_a_reason_in_a_modal(bot: Bot) -> None:
    run = bot.plan()
    trigger = wire.trigger_id()
    assert bot.click("run.reject", run, SECURITY, trigger=trigger).status == 200
    opened = bot.slack.wait_for("views.open", predicate=lambda c: c.params.get("trigger_id") == trigger)[-1]
    assert opened.ok, opened.response
    view = opened.response["view"]
    assert view["callback_id"] == "reject.submit" and run.label in block_text(view["blocks"])

    for empty in (None, "   "):
        answer = bot.submit(view, {"reason": {"value": wire.text_value(empty)}}, SECURITY)
        assert answer.status == 200
        assert answer.json() == {"response_action": "errors", "errors": {"reason": NO_REASON}}
    bot.settle()
    assert bot.updates(run) == [] and bot.server.run_state(run.id) == "planned"

    answer = bot.submit(view, {"reason": {"value": wire.text_value("Not during the release freeze.")}}, SECURITY)
    assert (answer.status, answer.body) == (200, b"")
    rejected = bot.wait_message(run, lambda m: "Rejected" in m["text"], what="rejected")
    assert f"Rejected by <@{SECURITY}>: Not during the release freeze." in rejected["text"]
    assert buttons(rejected) == {}
    bot.reply(run, f"Rejected by <@{SECURITY}>: Not during the release freeze.")
    assert bot.server.run_state(run.id) == "rejected"


def test_a_rate_limited_update_is_retried_after_retry_after(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.plan()
    retries = metric(bot.server, "chaosbot_slack_api_retries_total", reason="ratelimited")
    bot.slack.fail_next("chat.update", status=429, retry_after=1)
    started = time.monotonic()
    bot.approve(run, RELIABILITY)
    updates = bot.updates(run)
    assert [c.status for c in updates] == [429, 200]
    assert updates[1].time - updates[0].time >= 0.9  # waited for Retry-After
    assert time.monotonic() - started < 5
    assert f"{CHECKED} reliability partner: <@{RELIABILITY}>" in approvals_section(bot.message(run))
    assert metric(bot.server, "chaosbot_slack_api_retries_total", reason="ratelimited") == retries + 1


def test_three_approvers_clicking_at_once_all_count_and_the_run_is_approved_once(bot: Bot) -> None:
    run = bot.plan()
    message = bot.message(run)
    clicks = [
        wire.block_action("run.approve", user_id=u, message=message) for u in (RELIABILITY, SECURITY, STAKEHOLDER)
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        assert [a.status for a in pool.map(bot.send, clicks)] == [200, 200, 200]
    for user in (RELIABILITY, SECURITY, STAKEHOLDER):
        bot.reply(run, f"Approved by <@{user}>")
    bot.reply(run, "has every approval it needs")
    bot.settle()
    assert sorted(approvals_in_db(bot, run)) == [
        ("reliability_partner", RELIABILITY),
        ("security_specialist", SECURITY),
        ("stakeholder", STAKEHOLDER),
    ]
    assert bot.server.run_state(run.id) == "approved"
    assert len([r for r in bot.replies(run) if "has every approval" in r]) == 1
    final = bot.message(run)  # the last update in place shows the final state, not a stale render
    assert set(buttons(final)) == {"run.start", "run.cancel", "run.edit"}
    assert approvals_section(final).count(CHECKED) == 3
    assert bot.ephemeral_texts() == []


def test_start_window_the_abort_button_and_cancel(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    later = bot.plan(start_in=2 * 3600)
    for approver in (RELIABILITY, SECURITY, STAKEHOLDER):
        bot.approve(later, approver)
    bot.command(f"start {later.label}", OWNER)
    early = bot.ephemeral(OWNER, "can start from")
    assert early.startswith(f":warning: {later.label} is planned for ")
    assert bot.server.run_state(later.id) == "approved"

    # Cancel: refused for someone with no role, done by the owner with the button.
    bot.command(f"cancel {later.label}", OUTSIDER)
    assert bot.ephemeral(OUTSIDER) == (
        f":warning: Only the owner (<@{OWNER}>) or an approver can cancel {later.label}."
    )
    assert bot.click("run.cancel", later, OWNER).status == 200
    cancelled = bot.wait_message(later, lambda m: "Cancelled" in m["text"], what="cancelled")
    assert buttons(cancelled) == {}
    bot.reply(later, f"Cancelled by <@{OWNER}>")

    run = bot.approved_run()
    bot.command(f"start {run.label}", SECURITY)  # an approver may start it too
    running = bot.wait_message(run, lambda m: "run.abort" in buttons(m), timeout=10, what="running")
    assert f"started by <@{SECURITY}>" in running["text"]
    assert bot.click("run.abort", run, OUTSIDER).status == 200  # anyone may pull a run's kill switch
    assert run.label in bot.ephemeral(OUTSIDER, run.label, timeout=10)
    ended = bot.wait_message(run, lambda m: "Aborted" in m["text"], timeout=10, what="aborted")
    assert buttons(ended) == {} and f"<@{OUTSIDER}>" in ended["text"]
    assert bot.server.run_state(run.id) == "aborted"


def test_a_plan_that_cannot_be_posted_tells_the_owner_what_happened(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    bot.slack.add_channel(CHANNEL, "chaos-ops", is_member=False)  # nobody invited the bot
    view = bot.open_plan()
    answer = bot.submit(view, plan_values("staging", int(time.time()) + 60), OWNER)
    assert (answer.status, answer.body) == (200, b"")
    refused = bot.slack.wait_for("chat.postMessage", predicate=lambda c: c.params.get("channel") == CHANNEL)[-1]
    assert refused.response["error"] == "not_in_channel"
    told = bot.slack.wait_for("chat.postMessage", predicate=lambda c: c.params.get("channel") == OWNER)[-1]
    (newest,) = bot.server.query("SELECT id, state FROM runs ORDER BY id DESC LIMIT 1")
    left_planned = newest[1] == "planned"
    # Either no run is left behind, or the owner is told which run exists and that the bot needs inviting.
    assert not left_planned or (f"RUN-{newest[0]}" in told.params["text"] and "invite" in told.params["text"])


def test_aborting_a_run_of_a_dry_run_experiment_reverts_it(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.approved_run()  # CE-90's catalogue entry uses the dry_run adapter
    bot.start(run)
    bot.command(f"abort {run.label} enough", OWNER)
    told = bot.ephemeral(OWNER, run.label, timeout=10)
    bot.wait_message(run, lambda m: "Aborted" in m["text"], timeout=10, what="aborted")
    bot.settle()
    assert bot.server.query("SELECT adapter, state FROM faults WHERE run_id = :id", id=run.id) == [
        ("dry_run", "reverted")
    ]
    assert [c for c in bot.slack.calls("chat.postMessage") if "<!here>" in str(c.params.get("text"))] == []
    assert told.startswith(f":white_check_mark: {run.label}: "), told


def test_a_rehearsal_of_a_dry_run_experiment_starts(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.approved_run()
    bot.command(f"start {run.label} --dry-run", OWNER)
    wait_until(lambda: bot.ephemeral_texts(OWNER) or "run.abort" in buttons(bot.message(run)), timeout=10)
    assert bot.ephemeral_texts(OWNER) == []
    assert "Running (dry run)" in bot.wait_message(run, lambda m: "run.abort" in buttons(m), what="running")["text"]


def test_a_failed_revert_alerts_the_channel_once_with_the_rollback_steps(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.approved_run(BROKEN_EXPERIMENT)  # inject and revert both hit a closed port
    assert bot.click("run.start", run, OWNER).status == 200
    told = bot.ephemeral(OWNER, "Could not inject", timeout=15)
    assert f"{run.label} is marked failed" in told
    failed = bot.wait_message(run, lambda m: "Failed" in m["text"], what="failed")
    assert buttons(failed) == {}
    assert bot.server.run_state(run.id) == "failed"
    alert = bot.announcement("could NOT be reverted").params["text"]
    assert "Roll it back by hand now:" in alert and "1. Run `/chaos abort`." in alert
    assert alert.count("<!here>") == 1, alert


def test_production_also_needs_an_executive(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.plan(environment="production", view=bot.open_plan(OWNER, environment="production"))
    planned = bot.message(run)
    assert "*Environment*\nproduction" in block_text(planned["blocks"])
    assert f"{UNCHECKED} executive (<@{EXECUTIVE}>)" in approvals_section(planned)
    for approver in (RELIABILITY, SECURITY, STAKEHOLDER):
        bot.approve(run, approver)
    assert set(buttons(bot.message(run))) == {"run.approve", "run.reject", "run.edit"}
    assert bot.server.run_state(run.id) == "planned"
    bot.approve(run, EXECUTIVE)
    approved = bot.wait_message(run, lambda m: "run.start" in buttons(m), what="Start button")
    assert f"{CHECKED} executive: <@{EXECUTIVE}>" in approvals_section(approved)
