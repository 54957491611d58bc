"""Leases and mirrors on the database and on a real Redis, and the fallback when Redis is down."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest

from bot.engine import DatabaseCoordination, RedisCoordination, build_coordination
from bot.engine.coordination import connect_redis
from storage.db import Database
from tests.engine.redis_server import RedisServer
from tests.services import REDIS_TEST_URL
from tests.waiting import wait_until

TTL = timedelta(seconds=1)


def race(coordination, run_id: int, contenders: int = 8) -> list[str]:  # type: ignore[no-untyped-def]
    """Every contender tries to take the lease at the same moment; returns the winners."""
    barrier, winners = threading.Barrier(contenders), []

    def contend(holder: str) -> None:
        barrier.wait()
        if coordination.acquire(run_id, holder, timedelta(seconds=30)):
            winners.append(holder)

    threads = [threading.Thread(target=contend, args=(f"h{i}",)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return winners


def test_database_lease_has_exactly_one_winner_in_a_race(db: Database) -> None:
    assert len(race(DatabaseCoordination(db), run_id=7)) == 1


@pytest.mark.redis
def test_redis_lease_has_exactly_one_winner_in_a_race(db: Database, redis_client) -> None:  # type: ignore[no-untyped-def]
    assert len(race(build_coordination(REDIS_TEST_URL, db), run_id=7)) == 1


@pytest.mark.redis
def test_redis_lease_renews_only_for_its_holder_and_lapses(sqlite_db: Database, redis_client) -> None:  # type: ignore[no-untyped-def]
    coordination = build_coordination(REDIS_TEST_URL, sqlite_db)

    assert coordination.acquire(1, "a", TTL) and not coordination.acquire(1, "b", TTL)
    assert 0 < redis_client.pttl("chaosbot:lease:1") <= 1000
    assert not coordination.renew(1, "b", TTL) and coordination.renew(1, "a", TTL)
    assert coordination.expired([1, 2]) == [2]
    wait_until(lambda: coordination.expired([1, 2]) == [1, 2], TTL.total_seconds() + 0.1, "the lease to lapse")
    assert coordination.acquire(1, "b", TTL)
    coordination.release(1, "a")  # not the holder: no effect
    assert coordination.expired([1]) == []
    coordination.release(1, "b")
    assert coordination.expired([1]) == [1] and redis_client.get("chaosbot:lease:1") is None


@pytest.mark.redis
def test_a_lease_taken_in_the_database_during_a_redis_outage_still_counts(sqlite_db: Database, redis_client) -> None:  # type: ignore[no-untyped-def]
    DatabaseCoordination(sqlite_db).acquire(3, "survivor", timedelta(seconds=30))
    coordination = build_coordination(REDIS_TEST_URL, sqlite_db)

    assert coordination.expired([3]) == []
    assert not coordination.acquire(3, "recoverer", TTL)
    assert redis_client.get("chaosbot:lease:3") is None  # the Redis key it took was given back


@pytest.mark.redis
def test_redis_mirrors_the_kill_switch_and_fault_handles(sqlite_db: Database, redis_client) -> None:  # type: ignore[no-untyped-def]
    coordination = build_coordination(REDIS_TEST_URL, sqlite_db)
    plan = {"run_id": 4, "rollback_steps": "1. undo", "rto_seconds": 60.0, "targets": []}

    coordination.mirror_kill_switch(engaged=True, actor="sam", reason="incident")
    coordination.mirror_handles(4, plan)

    assert coordination.kill_switch_mirrored()
    assert coordination.mirrored_handles(4) == plan and coordination.mirrored_runs() == [4]
    coordination.mirror_kill_switch(engaged=False, actor="rita")
    coordination.forget_handles(4)
    assert not coordination.kill_switch_mirrored()
    assert coordination.mirrored_handles(4) is None and coordination.mirrored_runs() == []


def test_redis_down_falls_back_to_the_database_quickly(sqlite_db: Database, closed_port: int) -> None:
    coordination = build_coordination(f"redis://127.0.0.1:{closed_port}/0", sqlite_db)
    assert isinstance(coordination, RedisCoordination)
    started = time.monotonic()

    assert coordination.acquire(5, "a", TTL) and not coordination.acquire(5, "b", TTL)
    assert coordination.renew(5, "a", TTL) and coordination.expired([5, 6]) == [6]
    coordination.mirror_kill_switch(engaged=True, actor="sam")
    assert not coordination.kill_switch_mirrored() and coordination.mirrored_handles(5) is None
    coordination.release(5, "a")

    assert DatabaseCoordination(sqlite_db).expired([5]) == [5]
    assert time.monotonic() - started < 1.0


def test_without_redis_coordination_is_the_database(sqlite_db: Database) -> None:
    assert isinstance(build_coordination(None, sqlite_db), DatabaseCoordination)


def test_after_redis_restarts_a_lease_taken_meanwhile_returns_to_redis_at_its_next_renewal(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.engine.coordination")
    own = RedisServer()
    own.start()
    try:
        coordination = RedisCoordination(
            connect_redis(own.url), DatabaseCoordination(sqlite_db), cooldown_seconds=0.3, owns_client=True
        )
        assert coordination.acquire(7, "a", TTL) and own.keys("chaosbot:lease:7")
        own.stop()
        assert coordination.renew(7, "a", TTL)  # in the database alone; Redis is left alone for the cool-down
        own.start()
        assert coordination.acquire(8, "a", TTL) and not own.keys("chaosbot:lease:8")  # still cooling down

        wait_until(lambda: coordination.renew(8, "a", TTL) and own.keys("chaosbot:lease:8"), what="lease 8 in Redis")
        assert "Redis answers again" in caplog.text
        coordination.close()
    finally:
        own.stop()
