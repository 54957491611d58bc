"""Slack down, answering 5xx or 429: what the publisher could not post waits in its outbox and is delivered
in order once Slack is back, honouring Retry-After; nothing the caller does waits for it or fails. The real
Slack surface and Web API client against the fake Slack, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import pytest

from bot.interface.kit import notice
from bot.interface.outbox import Outbox
from bot.interface.publisher import Publisher
from bot.runs.core import RunCore
from bot.runs.rules import PlanRequest
from bot.slack.client import SlackSurface, web_client
from bot.words import Words
from storage.db import Database
from tests.fakeslack import identity
from tests.fakeslack.server import Call, FakeSlack
from tests.intervals import FAST_INTERVALS

from .conftest import CHANNEL, RELIABILITY, Bot, wait_until

ZONE = ZoneInfo("UTC")


@pytest.fixture
def publisher(db: Database, make_core: Callable[[Database], RunCore], slack: FakeSlack) -> Iterator[Publisher]:
    retry = float(FAST_INTERVALS["CHAOSBOT_SLACK_RETRY_SECONDS"])
    surface = SlackSurface(web_client(identity.BOT_TOKEN, slack.url, retry_backoff=retry))
    # The fast back-off of the tests' servers (FAST_INTERVALS): the order and the patience are under test, not 1 s.
    outbox = Outbox(first_backoff=float(FAST_INTERVALS["CHAOSBOT_OUTBOX_BACKOFF_SECONDS"]))
    published = Publisher(make_core(db), surface, channel=CHANNEL, zone=ZONE, outbox=outbox)
    yield published
    published.close(deadline_seconds=1)


def thread_texts(slack: FakeSlack, ts: str) -> list[str]:
    return [str(m.get("text")) for m in slack.replies(CHANNEL, ts) if m.get("ts") != ts]


def test_events_posted_while_slack_is_down_arrive_in_order_when_it_is_back(
    publisher: Publisher, slack: FakeSlack
) -> None:
    run = publisher.core.transitions.plan("owen", PlanRequest(experiment_id="CE-01"))
    where = publisher.post_plan(run.id)
    slack.fail_next("chat.postMessage", 503, times=9)  # three tries of the client's own retries, three times

    started = time.monotonic()
    for n in range(1, 6):
        publisher.timeline(run.id, Words.of(f"event {n}"))
    assert time.monotonic() - started < 10  # the caller was not held until Slack came back
    assert publisher.outbox.waiting >= 1

    expected = [f"event {n}" for n in range(1, 6)]
    wait_until(lambda: len(thread_texts(slack, where.message_ts)) == 5, timeout=30, what="the events delivered")
    assert thread_texts(slack, where.message_ts) == expected
    # The sender counts a letter delivered once Slack's answer is back, a moment after Slack shows it.
    wait_until(lambda: publisher.outbox.waiting == 0, what="the outbox emptied")
    assert publisher.outbox.dropped == 0


def test_a_rate_limited_alert_is_retried_after_retry_after_and_later_messages_wait_behind_it(
    publisher: Publisher, slack: FakeSlack
) -> None:
    slack.fail_next("chat.postMessage", 429, retry_after=1, times=4)  # more than the client's 3 retries

    publisher.alert(None, Words.of("first: the revert failed"))
    publisher.announce("second: the kill switch is released")

    wait_until(lambda: len(ours(slack, ok=True)) == 2, timeout=30, what="both messages")
    delivered = ours(slack, ok=True)
    texts = [str(c.params["text"]) for c in delivered]
    assert "first: the revert failed" in texts[0] and texts[1] == "second: the kill switch is released"
    limited = [c for c in ours(slack, ok=False) if c.status == 429]
    assert limited and delivered[0].time - limited[-1].time >= 1 - 0.1  # Retry-After honoured


def ours(slack: FakeSlack, *, ok: bool) -> list[Call]:
    """This test's posts (servers of other tests share the fake Slack and may post meanwhile)."""
    mine = ("first: the revert failed", "second: the kill switch is released", "refused for good", "the next one")
    return [
        c
        for c in slack.calls("chat.postMessage")
        if c.ok == ok and any(text in str(c.params.get("text")) for text in mine)
    ]


def test_a_refusal_retrying_cannot_fix_is_dropped_and_does_not_hold_back_the_next_message(
    publisher: Publisher, slack: FakeSlack
) -> None:
    slack.fail_next("chat.postMessage", 200, error="invalid_blocks")

    publisher.announce("refused for good")
    publisher.announce("the next one")

    if not ours(slack, ok=False):
        pytest.skip("a server of another test took the one refusal meant for this test")
    assert [str(c.params["text"]) for c in ours(slack, ok=True)] == ["the next one"]
    assert publisher.outbox.waiting == 0


def test_with_slack_down_the_kill_switch_still_reverts_and_tells_the_channel_afterwards(bot: Bot) -> None:
    run = bot.approved_run()
    bot.start(run)
    bot.slack.fail_next("*", 503, times=24)  # every Web API call fails for a while: nobody can be told

    assert bot.command("abort all Slack is down", RELIABILITY).status == 200
    wait_until(lambda: bot.server.run_state(run.id) == "aborted", timeout=10, what="the abort while Slack is down")
    assert bot.server.get("/healthz").status == 200  # no handler crashed the server

    def delivered(containing: str) -> list[str]:
        texts = (str(c.params.get("text")) for c in bot.slack.calls("chat.postMessage") if c.ok)
        return [text for text in texts if containing in text]

    told = wait_until(lambda: delivered("pulled the global kill switch"), timeout=60, what="the announcement")
    assert "Slack is down" in told[0]
    wait_until(lambda: delivered(f"{run.label} aborted by"), timeout=60, what="the abort in the run's thread")


def test_an_answer_rate_limited_past_the_clients_retries_is_delivered_later_and_not_as_a_direct_message(
    publisher: Publisher, slack: FakeSlack
) -> None:
    slack.fail_next("chat.postEphemeral", 429, retry_after=1, times=4)  # more than the client's 3 retries
    answer = "RUN-7 is planned; its approvals happen in the channel."

    publisher.whisper(CHANNEL, identity.DEFAULT_USER_ID, notice(answer))

    def answered() -> list[Call]:
        return [c for c in slack.calls("chat.postEphemeral") if c.ok and c.params.get("text") == answer]

    wait_until(answered, timeout=30, what="the answer delivered from the outbox")
    assert answered()[0].params.get("user") == identity.DEFAULT_USER_ID
    direct = [c for c in slack.calls("chat.postMessage") if c.params.get("channel") == identity.DEFAULT_USER_ID]
    assert not [c for c in direct if c.params.get("text") == answer]


def test_while_a_runs_first_post_hangs_no_change_of_that_run_or_another_waits_for_it(
    publisher: Publisher, slack: FakeSlack
) -> None:
    """An abort's or a watcher's card update must not wait on a lock held across a hanging Slack call."""
    core = publisher.core
    hanging = core.transitions.plan("owen", PlanRequest(experiment_id="CE-01"))
    other = core.transitions.plan("owen", PlanRequest(experiment_id="CE-01"))
    other_at = publisher.post_plan(other.id)
    slack.set_latency(60, "chat.postMessage")  # Slack holds every new message until heal()
    try:
        with ThreadPoolExecutor(2) as pool:
            posting = pool.submit(publisher.post_plan, hanging.id)
            wait_until(lambda: slack.in_flight >= 1, what="the run's first post held by Slack")
            core.transitions.cancel("owen", hanging.id, "no longer needed")
            changed = pool.submit(_changes, publisher, hanging.id, other.id)
            assert changed.result(timeout=2) is None, "a change waited for the hanging first post"
            assert not posting.done(), "the first post was not held by Slack during the changes"
            slack.heal()
            where = posting.result(timeout=10)
        assert slack.wait_for("chat.update", predicate=lambda c: c.params.get("ts") == other_at.message_ts)
        wait_until(
            lambda: ":heavy_minus_sign:" in str(slack.message(CHANNEL, where.message_ts)["blocks"]),
            timeout=10,
            what="the run's message showing the cancel made while it was being posted",
        )
        assert publisher.messages.find(hanging.id) == where
    finally:
        slack.heal()


def _changes(publisher: Publisher, hanging: int, other: int) -> None:
    publisher.run_changed(hanging)  # an abort's urgent update of the run whose message is on its way
    publisher.run_changed(hanging, urgent=False)  # a watcher's progress
    publisher.run_changed(other)  # another run's abort
