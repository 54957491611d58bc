"""The claim API: one winner, leases that run out, back-off after a failure, finishing only what you hold."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest

from bot.schedule import firings
from storage.db import Database
from tests.conftest import Clock

KIND, KEY = "summary.monthly", "2026-11"
LEASE = timedelta(minutes=2)


def take(db: Database, clock: Clock, holder: str) -> bool:
    return firings.claim(db, kind=KIND, key=KEY, due_at=clock.now, holder=holder, lease=LEASE, now=clock())


def test_one_claimer_wins_and_the_firing_is_done_once(db: Database, clock: Clock) -> None:
    assert take(db, clock, "replica-a")
    assert not take(db, clock, "replica-b")
    assert not take(db, clock, "replica-a")  # not even twice by the same holder
    assert firings.complete(db, kind=KIND, key=KEY, holder="replica-a", now=clock())
    clock.advance(hours=1)
    assert not take(db, clock, "replica-b")
    firing = firings.get(db, kind=KIND, key=KEY)
    assert firing is not None and firing.outcome == "done" and firing.attempts == 1


def test_a_firing_not_yet_due_cannot_be_claimed(db: Database, clock: Clock) -> None:
    claim = partial(
        firings.claim, db, kind=KIND, key=KEY, due_at=clock.now + timedelta(minutes=5), holder="a", lease=LEASE
    )
    assert not claim(now=clock())
    clock.advance(minutes=5)
    assert claim(now=clock())


def test_a_dead_holders_claim_is_taken_over_after_its_lease(db: Database, clock: Clock) -> None:
    assert take(db, clock, "replica-a")
    clock.advance(seconds=119)
    assert not take(db, clock, "replica-b")
    clock.advance(seconds=2)
    assert take(db, clock, "replica-b")
    # The first holder wakes up late: it no longer holds the firing, so it cannot finish it.
    assert not firings.complete(db, kind=KIND, key=KEY, holder="replica-a", now=clock())
    assert firings.complete(db, kind=KIND, key=KEY, holder="replica-b", now=clock())


def test_a_failure_waits_for_its_back_off_then_anyone_retries(db: Database, clock: Clock) -> None:
    assert take(db, clock, "replica-a")
    firings.failed(
        db, kind=KIND, key=KEY, holder="replica-a", error="HTTP 503", retry_at=clock.now + timedelta(seconds=30)
    )
    clock.advance(seconds=29)
    assert not take(db, clock, "replica-b")
    clock.advance(seconds=2)
    assert take(db, clock, "replica-b")
    firing = firings.get(db, kind=KIND, key=KEY)
    assert firing is not None and firing.attempts == 2 and firing.last_error == "HTTP 503"


def test_once_does_the_work_once_and_backs_off_on_failure(db: Database, clock: Clock) -> None:
    done: list[str] = []

    def post() -> None:
        if not done:
            done.append("tried")
            raise ConnectionError("slack is down")
        done.append("posted")

    once = partial(
        firings.once, db, kind="retrospective.posted", key="run:7", due_at=clock.now, lease=LEASE, action=post
    )
    with pytest.raises(ConnectionError):
        once(holder="a", now=clock())
    assert not once(holder="b", now=clock())  # backing off
    clock.advance(seconds=11)
    assert once(holder="b", now=clock())
    clock.advance(hours=1)
    assert not once(holder="a", now=clock())
    assert done == ["tried", "posted"]


def test_back_off_doubles_up_to_a_ceiling() -> None:
    backoff = firings.Backoff(first=timedelta(seconds=10), longest=timedelta(minutes=5))
    assert [backoff.after(n).total_seconds() for n in (1, 2, 3, 6, 60)] == [10, 20, 40, 300, 300]
