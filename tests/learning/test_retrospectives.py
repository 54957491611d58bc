"""Posting retrospectives once across replicas: every way a run ends, the sweep catching up a run whose
retrospective was never posted (the replica that ended it died), two replicas racing, on both databases,
against the fake Slack (three-step upload into the run's thread)."""

from __future__ import annotations

import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient

from bot.audit import service as audit
from bot.interface.learning.retrospectives import Retrospectives
from bot.interface.render import SLACK
from bot.interface.service import RunMessages
from bot.records import service as records
from bot.runs.core import RunCore
from bot.runs.models import RunState
from bot.slack.files import SlackRetroOutlet
from tests.conftest import Clock
from tests.core.helpers import run_in_state
from tests.fakeslack.identity import DEFAULT_CHANNEL_ID as CHANNEL
from tests.fakeslack.server import FakeSlack
from tests.retro import stories

ZONE = ZoneInfo("Australia/Sydney")


def replica(core: RunCore, slack: FakeSlack, holder: str, clock: Clock | None = None) -> Retrospectives:
    client = WebClient(token=slack.token, base_url=slack.url)
    timing = {"clock": clock} if clock is not None else {}
    return Retrospectives(
        core.db, outlet=SlackRetroOutlet(client), render=SLACK, zone=ZONE, channel=CHANNEL, holder=holder, **timing
    )


def run_message(core: RunCore, slack: FakeSlack, run_id: int) -> str:
    client = WebClient(token=slack.token, base_url=slack.url)
    ts = str(client.chat_postMessage(channel=CHANNEL, text=f"RUN-{run_id} card")["ts"])
    RunMessages(core.db).attach(run_id, channel_id=CHANNEL, message_ts=ts)
    return ts


def retrospectives_in(slack: FakeSlack, thread_ts: str) -> list[str]:
    return [m["text"] for m in slack.replies(CHANNEL, thread_ts) if "hypothesis" in str(m.get("text"))]


@pytest.mark.parametrize("ending", sorted(stories.ENDINGS))
def test_the_sweep_posts_what_no_replica_posted(slack: FakeSlack, core: RunCore, clock: Clock, ending: str) -> None:
    story = stories.ENDINGS[ending](core, clock)
    ts = run_message(core, slack, story.run_id)
    retros = replica(core, slack, "replica-a")
    try:
        assert retros.unposted() == [story.run_id]
        assert retros.sweep() == [story.run_id]
        assert retros.unposted() == [] and retros.sweep() == []
    finally:
        retros.close()
    assert len(retrospectives_in(slack, ts)) == 1
    (chart,) = [f for f in slack.files() if f.thread_ts == ts]
    assert chart.content is not None and chart.content.startswith(b"\x89PNG")
    with core.db.transaction() as session:
        actions = [event.action for event in audit.timeline(session, story.run_id)]
    assert actions.count("retrospective.posted") == 1


def test_two_replicas_told_at_once_post_once(slack: FakeSlack, core: RunCore, clock: Clock) -> None:
    story = stories.aborted_by_person(core, clock)
    ts = run_message(core, slack, story.run_id)
    replicas = [replica(core, slack, f"replica-{n}") for n in range(2)]
    go = threading.Barrier(2)

    def told(retros: Retrospectives) -> None:
        go.wait()
        retros.ended(story.run_id)  # what the engine calls once the end is recorded

    threads = [threading.Thread(target=told, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for retros in replicas:
        retros.close()  # lets the posts under way finish
    assert len(retrospectives_in(slack, ts)) == 1
    assert len([f for f in slack.files() if f.thread_ts == ts]) == 1


def test_runs_that_never_ran_get_none(slack: FakeSlack, core: RunCore) -> None:
    for state in (RunState.CANCELLED, RunState.REJECTED, RunState.APPROVED):
        run_in_state(core, state)
    retros = replica(core, slack, "replica-a")
    try:
        assert retros.unposted() == [] and retros.sweep() == []
    finally:
        retros.close()


def watched_breach(core: RunCore, clock: Clock) -> stories.Story:
    """Auto-aborted on a stop condition, its recovery measured after the revert for up to 5 minutes."""
    story = stories.breached(core, clock)
    with core.db.transaction() as session:
        outcome = records.outcome(session, run_id=story.run_id)
        assert outcome is not None
        outcome.recovery_watch_until = clock() + timedelta(minutes=5)
    return story


def test_a_stop_conditions_abort_gets_its_retrospective_once_its_recovery_is_measured(
    slack: FakeSlack, core: RunCore, clock: Clock
) -> None:
    story = watched_breach(core, clock)
    ts = run_message(core, slack, story.run_id)
    retros = replica(core, slack, "replica-a", clock)
    try:
        assert retros.unposted() == [] and retros.post(story.run_id) is None  # told at the end: it waits
        story.sample("recovery", 32, 140.0)
        story.sample("recovery", 33, 120.0)
        with core.db.transaction() as session:
            records.recovery_measured(session, run_id=story.run_id, seconds=1.0, at=clock())
        assert retros.sweep() == [story.run_id]
    finally:
        retros.close()
    [text] = retrospectives_in(slack, ts)
    assert "auto-aborted on a stop condition" in text and "Recovered in 1.0 s after the revert" in text


def test_a_recovery_watch_that_lapsed_lets_the_sweep_post_without_it(
    slack: FakeSlack, core: RunCore, clock: Clock
) -> None:
    story = watched_breach(core, clock)  # the replica watching its recovery died
    ts = run_message(core, slack, story.run_id)
    retros = replica(core, slack, "replica-a", clock)
    try:
        assert retros.sweep() == []
        clock.advance(minutes=6)
        assert retros.sweep() == [story.run_id]
    finally:
        retros.close()
    [text] = retrospectives_in(slack, ts)
    assert "Did not recover: the steady state had not come back when the watch after the abort ended" in text
