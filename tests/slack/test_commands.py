"""``/chaos`` sub-commands, their help and error answers, the global kill switch, and App Home."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from tests.fakeslack import wire

from .conftest import (
    CHANNEL,
    EXPERIMENT,
    OTHER_EXPERIMENT,
    OWNER,
    RELIABILITY,
    SECURITY,
    Bot,
    block_text,
    buttons,
    plan_values,
)
from .hostile import on_its_own

USAGE_LINES = ("`/chaos list`", "`/chaos plan CE-03 [staging|production]`", "`/chaos abort [RUN-n|all] [reason]`")


def channel_posts(bot: Bot) -> list[str]:
    """What the bot posted in answer, leaving out what another test's run posts on schedule meanwhile."""
    return [str(c.params.get("text")) for c in bot.slack.calls("chat.postMessage") if not on_its_own(c)]


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", None), ("help", None), ("HELP", None), ("bogus", "`bogus` is not a chaosbot command.")],
    ids=["empty", "help", "upper-case", "unknown"],
)
def test_usage(sqlite_bot: Bot, text: str, problem: str | None) -> None:
    bot = sqlite_bot
    answer = bot.command(text, OWNER)
    assert (answer.status, answer.body) == (200, b"")
    shown = bot.ephemeral(OWNER, "/chaos list")
    for line in USAGE_LINES:
        assert line in shown
    if problem:
        assert shown.startswith(f":warning: {problem}")
    else:
        assert not shown.startswith(":warning:")
    call = bot.slack.last("chat.postEphemeral")
    assert call.params["channel"] == CHANNEL and call.ok
    bot.settle()
    assert channel_posts(bot) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plan", ":warning: Which experiment? Use `/chaos plan CE-03 [environment]`."),
        ("plan CE-99", ":warning: There is no experiment 'CE-99' in the catalogue. Known: CE-90, CE-91, CE-92."),
        ("plan CE-91 production", ":warning: CE-91 may run only in: staging."),
        ("start", ":warning: Which run? Use `/chaos start RUN-n [--dry-run [--for 30s]]`."),
        ("start RUN-999", ":warning: There is no RUN-999."),
        ("start banana", ":warning: 'banana' is not a run id; run ids look like RUN-42."),
        ("abort", ":warning: Nothing is running, so there is nothing to abort."),
        ("cancel", ":warning: Which run? Use `/chaos cancel RUN-n [reason]`."),
        ("cancel RUN-999", ":warning: There is no RUN-999."),
        ("status RUN-999", ":warning: There is no RUN-999."),
        ("resume", ":warning: Only an approver can resume after the global kill switch."),
    ],
)
def test_a_clear_ephemeral_for_every_mistake(sqlite_bot: Bot, text: str, expected: str) -> None:
    bot = sqlite_bot
    answer = bot.command(text, OWNER)
    assert (answer.status, answer.body) == (200, b"")
    assert bot.ephemeral(OWNER) == expected
    bot.settle()
    assert len(bot.slack.calls("chat.postEphemeral")) == 1
    assert channel_posts(bot) == [] and bot.slack.calls("views.open") == []


def test_list_shows_the_catalogue(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    bot.command("list", OWNER)
    bot.ephemeral(OWNER, "experiments in the catalogue")
    call = bot.slack.last("chat.postEphemeral")
    assert call.params["text"] == "3 experiments in the catalogue"
    shown = block_text(call.params["blocks"])
    assert f"*{EXPERIMENT}* Rehearsed flag flip" in shown and f"*{OTHER_EXPERIMENT}* Rehearsed cache pause" in shown
    assert "staging, production · dry_run · max 45s" in shown


def test_status_lists_active_runs_and_one_run_in_full(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.plan()
    bot.command("status", OWNER)
    shown = bot.ephemeral(OWNER, run.label)
    assert f"*{run.label}* {EXPERIMENT} in staging: planned" in shown and f"owner <@{OWNER}>" in shown

    bot.command(f"status {run.label.lower()}", SECURITY)
    card = bot.ephemeral(SECURITY, f"{run.label} · {EXPERIMENT}")
    assert "Planned: waiting for approval" in card


def test_a_command_from_a_channel_the_bot_is_not_in_is_answered_by_direct_message(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    bot.slack.add_channel("C0ELSEWHERE", "elsewhere", is_member=False)
    assert bot.command("help", OWNER, channel_id="C0ELSEWHERE", channel_name="elsewhere").status == 200
    dm = bot.slack.wait_for("chat.postMessage", predicate=lambda c: c.params.get("channel") == OWNER)[-1]
    assert dm.ok and "/chaos list" in dm.params["text"]
    assert [c.response.get("error") for c in bot.slack.calls("chat.postEphemeral")] == ["not_in_channel"]


def test_plan_modal_refuses_a_start_in_the_past_inline(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    view = bot.open_plan(OWNER, environment="production")
    environment = next(b for b in view["blocks"] if b.get("block_id") == "environment")
    assert environment["element"]["initial_option"]["value"] == "production"
    now = int(time.time())

    past = bot.submit(view, plan_values("staging", now - 3600), OWNER)
    assert past.status == 200
    answer = past.json()
    assert answer["response_action"] == "errors" and set(answer["errors"]) == {"planned_start"}
    assert "is in the past" in answer["errors"]["planned_start"]

    too_far = bot.submit(view, plan_values("staging", now + 100 * 86400), OWNER).json()
    assert too_far == {"response_action": "errors", "errors": {"planned_start": "Plan at most 90 days ahead."}}
    no_rollback = bot.submit(view, plan_values("staging", now + 60, rollback=" "), OWNER).json()
    assert no_rollback == {"response_action": "errors", "errors": {"rollback_steps": "A plan needs rollback steps."}}
    bot.settle()
    assert channel_posts(bot) == [] and bot.slack.calls("chat.postEphemeral") == []


def test_the_global_kill_switch(bot: Bot) -> None:
    running = bot.approved_run()
    waiting = bot.approved_run()
    bot.start(running)

    assert bot.command("abort all game day drill", RELIABILITY).status == 200
    announced = bot.announcement("pulled the global kill switch", timeout=10)
    text = announced.params["text"]
    assert f"<@{RELIABILITY}> pulled the global kill switch (game day drill)" in text
    assert "/chaos resume" in text and f"{running.label}:" in text
    bot.wait_message(running, lambda m: "Aborted" in m["text"], timeout=10, what="aborted by the kill switch")
    assert bot.server.run_state(running.id) == "aborted"

    bot.command("status", OWNER)
    assert "Global kill switch engaged" in bot.ephemeral(OWNER, "kill switch")

    assert bot.click("run.start", waiting, OWNER).status == 200
    refusal = bot.ephemeral(OWNER, "kill switch is engaged")
    assert "/chaos resume" in refusal
    bot.settle()
    assert bot.server.run_state(waiting.id) == "approved"

    bot.command("resume", OWNER)  # not an approver
    assert "Only an approver" in bot.ephemeral(OWNER, "Only an approver")
    assert bot.server.query("SELECT engaged FROM kill_switch")[0][0]

    bot.command("resume", SECURITY)
    bot.announcement(f"<@{SECURITY}> released the global kill switch")
    assert not bot.server.query("SELECT engaged FROM kill_switch")[0][0]
    bot.start(waiting)  # starts again once released
    bot.command(f"abort {waiting.label}", OWNER)
    bot.wait_message(waiting, lambda m: "Aborted" in m["text"], timeout=10, what="aborted")


def test_app_home_shows_running_runs_and_what_waits_for_you(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    running = bot.approved_run()
    bot.start(running)
    waiting = bot.plan()

    assert bot.send(wire.event_callback(wire.app_home_opened(RELIABILITY))).status == 200
    published = bot.slack.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == RELIABILITY)[-1]
    assert published.ok, published.response
    home = bot.slack.home_view(RELIABILITY)
    assert home is not None and home["type"] == "home"
    blocks = home["blocks"]
    headers = [b["text"]["text"] for b in blocks if b["type"] == "header"]
    assert headers == ["chaosbot", "Running now", "Waiting for your approval", "Upcoming"]
    running_now = blocks[headers_index(blocks, "Running now") + 1 : headers_index(blocks, "Waiting for your approval")]
    assert any(running.label in block_text([b]) and b["accessory"]["action_id"] == "run.abort" for b in running_now)
    awaiting = blocks[headers_index(blocks, "Waiting for your approval") + 1 : headers_index(blocks, "Upcoming")]
    mine = next(b for b in awaiting if f"*{waiting.label}*" in block_text([b]))
    assert "you can approve as reliability partner" in mine["text"]["text"]
    assert json.loads(mine["accessory"]["value"]) == {"run": waiting.id}

    # The owner holds no approver role: nothing waits for them.
    bot.send(wire.event_callback(wire.app_home_opened(OWNER)))
    bot.slack.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == OWNER)
    assert "Nothing waits for you." in block_text(bot.slack.home_view(OWNER)["blocks"])

    # Approving from the Home tab counts like approving in the channel.
    accessory = mine["accessory"]
    action = {
        "action_id": "run.approve",
        "block_id": mine.get("block_id") or "home-approve",
        "type": "button",
        "value": accessory["value"],
        "style": accessory["style"],
        "text": accessory["text"],
        "action_ts": f"{time.time():.6f}",
    }
    click = wire.block_action("run.approve", user_id=RELIABILITY, view=home, action=action)
    payload = click.payload()
    assert "channel" not in payload and payload["container"]["type"] == "view"
    published = len(bot.slack.calls("views.publish"))
    assert bot.send(click).status == 200
    bot.reply(waiting, f"Approved by <@{RELIABILITY}>")
    assert "run.approve" in buttons(bot.message(waiting))
    # The tab is published again, so the Approve button the approver just used is gone from it.
    bot.slack.wait_for("views.publish", count=published + 1)
    assert (
        waiting.label
        not in block_text(bot.slack.home_view(RELIABILITY)["blocks"])
        .split("Waiting for your approval")[1]
        .split("Upcoming")[0]
    )


def headers_index(blocks: list[dict], title: str) -> int:
    return next(i for i, b in enumerate(blocks) if b["type"] == "header" and b["text"]["text"] == title)


def test_a_retried_command_and_a_retried_event_are_applied_once(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    trigger = wire.trigger_id()
    first = wire.slash_command("plan CE-90", OWNER, trigger=trigger)
    assert bot.send(first).status == 200
    bot.slack.wait_for("views.open")
    retry_headers = {**first.headers, **wire.sign(first.body), "X-Slack-Retry-Num": "1"}
    assert bot.send(wire.SignedRequest(first.body, retry_headers)).status == 200

    event = wire.app_home_opened(SECURITY)
    event_id = f"Ev{secrets.token_hex(5).upper()}"
    delivery = wire.event_callback(event, event_id=event_id)
    assert bot.send(delivery).status == 200
    bot.slack.wait_for("views.publish")
    again = wire.event_callback(event, event_id=event_id, retry_num=1, retry_reason="http_timeout")
    assert bot.send(again).status == 200
    bot.settle(quiet=0.5)
    assert len(bot.slack.calls("views.open")) == 1 and bot.slack.calls("views.open")[0].ok
    assert len(bot.slack.calls("views.publish")) == 1


def test_home_ignores_the_messages_tab_and_old_buttons_get_a_clear_answer(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    assert bot.send(wire.event_callback(wire.app_home_opened(SECURITY, tab="messages"))).status == 200
    assert bot.send(wire.block_action("run.approve", value="not-json", user_id=SECURITY)).status == 200
    assert bot.ephemeral(SECURITY) == ":warning: That button or form is from an older chaosbot; run the command again."
    bot.settle()
    assert bot.slack.calls("views.publish") == []
