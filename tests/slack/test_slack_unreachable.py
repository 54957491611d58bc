"""Issue 16, section 3: no fault starts while nobody can press Abort. The kill switch lives in Slack, so a start
whose announcement Slack does not take within CHAOSBOT_ANNOUNCE_TIMEOUT_SECONDS is refused before anything is
injected; the log says why at once, the run's thread once Slack is back. A start by hand is refused (the person
is told when Slack is back); a scheduled start is tried again until Slack takes its announcement."""

from __future__ import annotations

import time

import pytest

from tests.fakeslack.server import FakeSlack
from tests.intervals import ANNOUNCE_TIMEOUT_SECONDS

from .conftest import (
    OWNER,
    RELIABILITY,
    SECURITY,
    STAKEHOLDER,
    Bot,
    ChaosbotServer,
    RunHandle,
    buttons,
    plan_values,
    wait_until,
)

REFUSED = "did not start: Slack did not take its announcement"
HANGING = 120.0  # every Web API call waits this long, or until the test heals the fake Slack


def refusals_logged(server: ChaosbotServer, run: RunHandle, since: int) -> int:
    return server.log_text(since).count(f"{run.label} {REFUSED}")


def nothing_injected(bot: Bot, run: RunHandle) -> None:
    assert bot.server.run_state(run.id) == "approved"
    assert bot.server.query("SELECT count(*) FROM faults WHERE run_id = :id", id=run.id)[0][0] == 0


def slack_unreachable(slack: FakeSlack, outage: str) -> None:
    if outage == "hanging":
        slack.set_latency(HANGING)
    else:
        slack.fail_next("*", 503, times=10_000)  # down: every call answers 503 until heal()


@pytest.mark.parametrize("outage", ["hanging", "down"])
def test_a_start_by_hand_that_slack_cannot_announce_is_refused_before_any_fault(bot: Bot, outage: str) -> None:
    run = bot.approved_run()
    log_from = bot.server.log_size()
    slack_unreachable(bot.slack, outage)
    try:
        started = time.monotonic()
        assert bot.click("run.start", run, OWNER).status == 200
        wait_until(lambda: refusals_logged(bot.server, run, log_from), timeout=15, what="the refusal in the log")
        assert time.monotonic() - started >= ANNOUNCE_TIMEOUT_SECONDS - 0.1  # it waited for the announcement first
        nothing_injected(bot, run)
    finally:
        bot.slack.heal()

    assert "Nothing was injected" in str(bot.reply(run, REFUSED, timeout=20).params["text"])
    bot.slack.wait_for(  # the person who pressed Start is told too (tries while Slack was down failed)
        "chat.postEphemeral",
        timeout=20,
        predicate=lambda c: c.ok and c.params.get("user") == OWNER and REFUSED in str(c.params.get("text")),
    )
    nothing_injected(bot, run)
    bot.start(run)  # Slack is back: the same run starts


def test_a_scheduled_start_that_slack_cannot_announce_is_tried_again_and_starts_once_slack_is_back(
    sqlite_bot: Bot,
) -> None:
    bot = sqlite_bot
    values = plan_values("staging", int(time.time()) + 8, auto_start=True)
    run = bot.submit_plan(bot.open_plan(OWNER), values, OWNER)
    for approver in (RELIABILITY, SECURITY, STAKEHOLDER):
        bot.approve(run, approver)
    bot.reply(run, f"Coming up: {run.label}")  # the notice is out: Slack hangs only for the start
    log_from = bot.server.log_size()
    bot.slack.set_latency(HANGING)
    try:
        wait_until(lambda: refusals_logged(bot.server, run, log_from), timeout=30, what="the scheduled start refused")
        nothing_injected(bot, run)
    finally:
        bot.slack.heal()

    bot.reply(run, REFUSED, timeout=20)
    # The scheduler tries it again (CHAOSBOT_FIRING_RETRY_SECONDS, doubling) while the plan lasts.
    bot.wait_message(run, lambda m: "run.abort" in buttons(m), timeout=20, what="started by itself once Slack is back")
    assert bot.server.query("SELECT started_by FROM runs WHERE id = :id", id=run.id)[0][0] == "chaosbot"


def notice_done(server: ChaosbotServer, run: RunHandle) -> bool:
    rows = server.query("SELECT done_at FROM firings WHERE run_id = :id AND kind = 'run.notice'", id=run.id)
    return bool(rows) and rows[0][0] is not None


def test_a_notice_due_while_slack_hangs_holds_nothing_up_and_arrives_once_in_each_place_when_slack_is_back(
    sqlite_bot: Bot,
) -> None:
    """The scheduler's tick used to wait for Slack on a notice (delaying the automatic starts behind it), and a
    retry re-posted the thread's copy when only the channel's had failed."""
    bot = sqlite_bot
    notice_lead = 15 * 60  # the policy's default
    run = bot.submit_plan(bot.open_plan(OWNER), plan_values("staging", int(time.time()) + notice_lead + 5), OWNER)
    bot.slack.set_latency(HANGING)
    hung_at = time.time()
    try:
        wait_until(lambda: notice_done(bot.server, run), timeout=20, what="the notice's firing done while Slack hangs")
    finally:
        bot.slack.heal()

    def notices() -> list[str]:
        posted = [c for c in bot.slack.calls("chat.postMessage") if c.ok and "Coming up" in str(c.params.get("text"))]
        return sorted(str(c.params.get("thread_ts") or "channel") for c in posted)

    wait_until(lambda: len(notices()) >= 2, timeout=20, what="the notice in the thread and the channel")
    bot.settle()
    assert notices() == sorted([run.ts, "channel"])
    assert all(c.time >= hung_at for c in bot.slack.calls("chat.postMessage") if "Coming up" in str(c.params))
