"""The publisher keeps one message per run current, in a thread of its own, with bounded memory."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import pytest

from bot.console.shell import ConsoleSurface
from bot.interface.kit import Message
from bot.interface.publisher import Publisher
from bot.interface.service import RunMessages
from bot.runs.core import RunCore
from bot.runs.rules import PlanRequest
from bot.words import Person, Words
from storage.db import Database
from tests.waiting import wait_until

SYDNEY = ZoneInfo("Australia/Sydney")


def test_per_run_state_stays_bounded_and_messages_are_found_again(
    make_core: Callable[[Database], RunCore], db: Database
) -> None:
    core = make_core(db)
    out = io.StringIO()
    publisher = Publisher(core, ConsoleSurface(out, SYDNEY), channel="console", zone=SYDNEY, tracked=3)

    runs = [core.transitions.plan("oliver", PlanRequest(experiment_id="CE-01")) for _ in range(5)]
    posted = {run.id: publisher.post_plan(run.id) for run in runs}
    for run in runs:
        publisher.run_changed(run.id)
        publisher.timeline(run.id, Words.of("Approved by ", Person("rita"), " as reliability partner."))

    assert publisher.tracked_runs == 3
    messages = RunMessages(db)
    assert {run.id: messages.find(run.id) for run in runs} == posted  # one message per run, where it was posted
    assert publisher.post_plan(runs[0].id) == posted[runs[0].id]  # forgotten locks do not post it twice
    assert out.getvalue().count("Approved by @rita as reliability partner.") == 5


class SlowFirstPost(ConsoleSurface):
    """A shared Slack for two replicas: the first channel post waits until the test releases it."""

    def __init__(self) -> None:
        super().__init__(io.StringIO(), SYDNEY)
        self.posting, self.release = threading.Event(), threading.Event()
        self.top_level: list[str] = []
        self.updated: list[str] = []

    def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> tuple[str, str]:
        if thread_ts is None and not self.top_level:
            self.posting.set()
            assert self.release.wait(5)
        where = super().post(channel, message, thread_ts=thread_ts)
        if thread_ts is None:
            self.top_level.append(where[1])
        return where

    def update(self, channel: str, ts: str, message: Message) -> None:
        self.updated.append(ts)
        super().update(channel, ts, message)


def test_a_run_clicked_through_another_replica_while_its_message_is_posted_gets_one_message(
    make_core: Callable[[Database], RunCore], db: Database
) -> None:
    core = make_core(db)
    slack = SlowFirstPost()
    planner, other = (Publisher(core, slack, channel="console", zone=SYDNEY, holder=name) for name in ("a", "b"))
    run = core.transitions.plan("oliver", PlanRequest(experiment_id="CE-01"))

    with ThreadPoolExecutor(2) as pool:
        planned = pool.submit(planner.post_plan, run.id)
        assert slack.posting.wait(5)
        clicked = pool.submit(other.run_changed, run.id)  # an approval handled by the other replica
        time.sleep(0.3)
        assert slack.top_level == [], "the other replica posted the run's message while the planner was posting it"
        clicked.result(timeout=1)  # the click waits for nobody: its update waits in the outbox
        slack.release.set()
        where = planned.result(timeout=5)

    wait_until(lambda: slack.updated, timeout=10, what="the other replica's update, once the message is there")
    assert slack.top_level == [where.message_ts]
    assert slack.updated == [where.message_ts]  # the other replica's change went into the one message
    other.close(deadline_seconds=1)
    assert RunMessages(db).find(run.id) == where


def test_a_claim_that_cannot_be_given_back_or_completed_is_logged_with_its_run(
    make_core: Callable[[Database], RunCore], db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(db)
    publisher = Publisher(core, ConsoleSurface(io.StringIO(), SYDNEY), channel="console", zone=SYDNEY)
    run = core.transitions.plan("oliver", PlanRequest(experiment_id="CE-01"))

    def database_down(*_args: object) -> None:
        raise RuntimeError("database down")

    publisher.messages.first_post_done = database_down  # type: ignore[method-assign]  # the database fails here
    with caplog.at_level(logging.WARNING, logger="bot.interface.publisher"):
        publisher.post_plan(run.id)
    assert f"could not mark {run.label}'s message posted" in caplog.text

    publisher.messages.first_post_failed = database_down  # type: ignore[method-assign]  # and here
    publisher.surface.post = database_down  # type: ignore[method-assign, assignment]  # and Slack too
    other = core.transitions.plan("oliver", PlanRequest(experiment_id="CE-01"))
    with caplog.at_level(logging.WARNING, logger="bot.interface.publisher"), pytest.raises(RuntimeError):
        publisher.post_plan(other.id)
    assert f"could not give back the claim to post {other.label}'s message" in caplog.text
    publisher.close(deadline_seconds=0.1)


class GatedUpdates(ConsoleSurface):
    """A Slack whose message updates wait until the test lets each one through; it keeps what each one showed."""

    def __init__(self) -> None:
        super().__init__(io.StringIO(), SYDNEY)
        self.entered = threading.Semaphore(0)
        self.gate = threading.Semaphore(0)
        self.shown: list[str] = []

    def update(self, channel: str, ts: str, message: Message) -> None:
        self.entered.release()
        assert self.gate.acquire(timeout=5)
        self.shown.append(message.text)
        super().update(channel, ts, message)


def test_a_change_made_while_the_messages_update_is_on_its_way_is_shown_after_it(
    make_core: Callable[[Database], RunCore], db: Database
) -> None:
    """Three approvers clicked at once: the update already on its way had read the run before the last click,
    so the message kept showing Approve until a later change (CI saw it once in a thousand runs)."""
    core = make_core(db)
    slack = GatedUpdates()
    publisher = Publisher(core, slack, channel="console", zone=SYDNEY)
    run = core.transitions.plan("oliver", PlanRequest(experiment_id="CE-01"))
    publisher.post_plan(run.id)

    first = threading.Thread(target=publisher.run_changed, args=(run.id,))
    first.start()
    assert slack.entered.acquire(timeout=5)  # the first update holds the line on this thread
    publisher.run_changed(run.id)  # queued behind it: the sender will try it
    slack.gate.release()
    first.join(5)
    assert slack.entered.acquire(timeout=5)  # the sender's update has read the run and is on its way
    core.transitions.cancel("oliver", run.id, "changed our minds")
    publisher.run_changed(run.id)
    slack.gate.release()

    slack.gate.release()  # the update for the cancel, if one was sent
    wait_until(lambda: publisher.outbox.waiting == 0 and len(slack.shown) >= 2)
    assert "cancelled" in slack.shown[-1].lower(), slack.shown
    publisher.close(deadline_seconds=1)
