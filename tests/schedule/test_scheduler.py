"""Notices and automatic starts derived from the runs table, fired once, retried, or reported missed."""

from __future__ import annotations

from datetime import timedelta

from bot.policy.service import load_policy
from bot.runs.models import RunState
from bot.schedule import firings
from bot.schedule.firings import Backoff
from bot.schedule.service import AUTO_START, NOTICE, Scheduler, firing_key
from storage.db import Database
from tests.conftest import Clock
from tests.schedule.factories import RecordingHandler, add_run, set_run

POLICY = load_policy()  # notice 15m, plan_expiry 24h


def scheduler(db: Database, clock: Clock, handler: RecordingHandler, holder: str = "replica-a") -> Scheduler:
    return Scheduler(db, POLICY, handler, holder=holder, clock=clock, backoff=Backoff(first=timedelta(seconds=10)))


def test_the_notice_comes_15_minutes_before_and_the_start_at_the_planned_start(db: Database, clock: Clock) -> None:
    handler = RecordingHandler()
    run = add_run(db, planned_start=clock.now + timedelta(hours=1))
    bot = scheduler(db, clock, handler)

    clock.advance(minutes=44, seconds=59)
    assert bot.tick() == []
    clock.advance(seconds=1)
    bot.tick()
    assert handler.calls == [("notice", run.id)]
    clock.advance(minutes=14, seconds=59)
    bot.tick()
    assert handler.calls == [("notice", run.id)]
    clock.advance(seconds=1)
    bot.tick()
    bot.tick()
    assert handler.calls == [("notice", run.id), ("auto_start", run.id)]


def test_two_replicas_ticking_fire_each_firing_once(db: Database, clock: Clock) -> None:
    handler_a, handler_b = RecordingHandler(), RecordingHandler()
    runs = [add_run(db, planned_start=clock.now + timedelta(minutes=1)) for _ in range(3)]
    a, b = scheduler(db, clock, handler_a, "replica-a"), scheduler(db, clock, handler_b, "replica-b")
    clock.advance(minutes=1)
    for _ in range(3):
        a.tick()
        b.tick()
    calls = sorted(handler_a.calls + handler_b.calls)
    assert calls == sorted([(kind, run.id) for run in runs for kind in ("notice", "auto_start")])


def test_notice_goes_before_the_start_when_both_are_due_at_once(db: Database, clock: Clock) -> None:
    handler = RecordingHandler()
    run = add_run(db, planned_start=clock.now)
    fired = scheduler(db, clock, handler).tick()
    assert [f.kind for f in fired] == [NOTICE, AUTO_START]
    assert handler.calls == [("notice", run.id), ("auto_start", run.id)]


def test_a_run_without_auto_start_gets_its_notice_but_no_start(db: Database, clock: Clock) -> None:
    handler = RecordingHandler()
    run = add_run(db, planned_start=clock.now, auto_start=False)
    scheduler(db, clock, handler).tick()
    assert handler.calls == [("notice", run.id)]


def test_a_run_not_approved_at_its_start_is_handed_over_once_with_the_outcome_recorded(
    db: Database, clock: Clock
) -> None:
    handler = RecordingHandler(start_outcome="refused:approval")
    run = add_run(db, planned_start=clock.now, state=RunState.PLANNED)
    bot = scheduler(db, clock, handler)
    bot.tick()
    clock.advance(minutes=5)
    bot.tick()
    assert handler.calls == [("notice", run.id), ("auto_start", run.id)]
    firing = firings.get(db, kind=AUTO_START, key=firing_key(run.id, run.planned_start))
    assert firing is not None and firing.outcome == "refused:approval"


def test_an_edited_plan_gets_new_firings_and_the_old_ones_are_not_fired(db: Database, clock: Clock) -> None:
    handler = RecordingHandler()
    run = add_run(db, planned_start=clock.now + timedelta(minutes=10))
    bot = scheduler(db, clock, handler)
    bot.tick()
    assert handler.calls == [("notice", run.id)]
    set_run(db, run.id, planned_start=clock.now + timedelta(hours=2))
    clock.advance(minutes=10)
    bot.tick()
    assert handler.calls == [("notice", run.id)]  # no start at the old time
    clock.advance(hours=1, minutes=35)
    bot.tick()
    assert handler.calls == [("notice", run.id), ("notice", run.id)]  # a notice for the new time


def test_runs_that_started_or_ended_are_not_fired(db: Database, clock: Clock) -> None:
    handler = RecordingHandler()
    add_run(db, planned_start=clock.now, state=RunState.RUNNING)
    add_run(db, planned_start=clock.now, state=RunState.CANCELLED)
    assert scheduler(db, clock, handler).tick() == []
    assert handler.calls == []


def test_a_failing_firing_is_retried_with_back_off_and_happens_once(db: Database, clock: Clock) -> None:
    handler = RecordingHandler(failures=2)
    run = add_run(db, planned_start=clock.now + timedelta(minutes=15))
    bot, other = scheduler(db, clock, handler), scheduler(db, clock, handler, "replica-b")
    assert [f.outcome for f in bot.tick()] == ["failed"]
    clock.advance(seconds=9)
    assert other.tick() == []  # backing off, for every replica
    clock.advance(seconds=2)
    assert [f.outcome for f in other.tick()] == ["failed"]
    clock.advance(seconds=21)  # the second back-off is 20s
    assert [f.outcome for f in bot.tick()] == ["done"]
    clock.advance(minutes=1)
    bot.tick()
    other.tick()
    assert handler.calls == [("notice", run.id)]
    firing = firings.get(db, kind=NOTICE, key=firing_key(run.id, run.planned_start))
    assert firing is not None and firing.attempts == 3 and firing.last_error == "ConnectionError: slack is down"


def test_a_firing_failing_past_the_plan_expiry_is_closed_as_missed_and_the_thread_is_told(
    db: Database, clock: Clock
) -> None:
    handler = RecordingHandler(failures=1000)
    run = add_run(db, planned_start=clock.now)
    bot = scheduler(db, clock, handler)
    for _ in range(40):  # Slack stays down for a day and more
        bot.tick()
        clock.advance(minutes=40)
    assert ("missed:run.notice", run.id) in handler.calls
    assert ("missed:run.auto_start", run.id) in handler.calls
    for kind in (NOTICE, AUTO_START):
        firing = firings.get(db, kind=kind, key=firing_key(run.id, run.planned_start))
        assert firing is not None and firing.outcome == "missed"
    calls = len(handler.calls)
    clock.advance(hours=1)
    bot.tick()
    assert len(handler.calls) == calls


def test_a_firing_whose_run_was_cancelled_after_a_failure_is_closed_without_a_call(db: Database, clock: Clock) -> None:
    handler = RecordingHandler(failures=1)
    run = add_run(db, planned_start=clock.now + timedelta(minutes=15))
    bot = scheduler(db, clock, handler)
    bot.tick()
    set_run(db, run.id, state=RunState.CANCELLED.value)
    clock.advance(minutes=1)
    assert [f.outcome for f in bot.tick()] == ["obsolete"]
    assert handler.calls == []


def test_a_replica_that_died_holding_a_firing_is_replaced_after_the_lease(db: Database, clock: Clock) -> None:
    run = add_run(db, planned_start=clock.now + timedelta(minutes=15))
    key = firing_key(run.id, run.planned_start)
    # The dead replica claimed the notice and never finished it.
    assert firings.claim(
        db, kind=NOTICE, key=key, due_at=clock.now, holder="dead", lease=timedelta(minutes=2), now=clock()
    )
    handler = RecordingHandler()
    bot = scheduler(db, clock, handler)
    assert bot.tick() == []
    clock.advance(minutes=2, seconds=1)
    bot.tick()
    assert handler.calls == [("notice", run.id)]
