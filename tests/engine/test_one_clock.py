"""Leases and the replica registry use one clock (PostgreSQL's ``now()``, Redis's key expiry): a replica whose
wall clock is off by a minute can neither steal a live run nor keep a dead one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from bot.engine import Coordination, DatabaseCoordination
from bot.engine.coordination import RedisCoordination
from storage.db import Database, utcnow
from tests.services import REDIS_TEST_URL, redis_client_or_skip
from tests.waiting import wait_until

TTL = timedelta(seconds=2)
SHIFT = timedelta(seconds=60)


def shifted(by: timedelta) -> Callable[[], datetime]:
    return lambda: utcnow() + by


@pytest.fixture
def pg(postgres_db: Database) -> Iterator[Database]:
    def clean() -> None:
        with postgres_db.engine.begin() as connection:
            connection.execute(text("DELETE FROM leases"))
            connection.execute(text("DELETE FROM replicas"))

    clean()
    yield postgres_db
    clean()


@pytest.fixture(params=["database", "redis"])
def pair(request: pytest.FixtureRequest, pg: Database) -> Iterator[Callable[[timedelta], Coordination]]:
    """Build coordinations over one PostgreSQL (and one Redis), each with its own wall clock."""
    clients: list[Any] = []

    def build(offset: timedelta) -> Coordination:
        fallback = DatabaseCoordination(pg, now=shifted(offset))
        if request.param == "database":
            return fallback
        client = redis_client_or_skip(REDIS_TEST_URL)
        clients.append(client)
        client.delete(*[f"chaosbot:lease:{run_id}" for run_id in RUN_IDS])
        return RedisCoordination(client, fallback)

    yield build
    for client in clients:
        client.delete(*[f"chaosbot:lease:{run_id}" for run_id in RUN_IDS])
        client.close()


RUN_IDS = (9101, 9102, 9103)


def test_a_replica_whose_clock_is_a_minute_ahead_cannot_steal_a_live_run(
    pair: Callable[[timedelta], Coordination],
) -> None:
    honest, ahead = pair(timedelta(0)), pair(SHIFT)
    assert honest.acquire(9101, "honest", TTL)

    assert not ahead.acquire(9101, "ahead", TTL)
    assert ahead.expired([9101]) == []


def test_a_replica_whose_clock_is_a_minute_ahead_cannot_keep_a_dead_run(
    pair: Callable[[timedelta], Coordination],
) -> None:
    honest, ahead = pair(timedelta(0)), pair(SHIFT)
    assert ahead.acquire(9102, "ahead", TTL)  # then it dies: no renewal
    assert not honest.acquire(9102, "honest", TTL)

    wait_until(lambda: honest.expired([9102]) == [9102], TTL.total_seconds() + 0.5, "the dead run's lease to lapse")
    assert honest.acquire(9102, "honest", TTL)


def test_a_replica_whose_clock_is_a_minute_behind_keeps_its_live_run(
    pair: Callable[[timedelta], Coordination],
) -> None:
    honest, behind = pair(timedelta(0)), pair(-SHIFT)
    assert behind.acquire(9103, "behind", TTL)

    assert not honest.acquire(9103, "honest", TTL)
    assert honest.expired([9103]) == []
    assert behind.renew(9103, "behind", TTL)


def test_the_replica_registry_uses_the_database_clock(pg: Database) -> None:
    honest, ahead = DatabaseCoordination(pg), DatabaseCoordination(pg, now=shifted(SHIFT))
    honest.heartbeat("honest", TTL)
    ahead.heartbeat("ahead", TTL)

    assert ahead.live_replicas(besides="ahead") == ["honest"]
    assert honest.live_replicas(besides="honest") == ["ahead"]
    # A dead replica is dead by the database's clock.
    wait_until(lambda: ahead.live_replicas(besides="ahead") == [], TTL.total_seconds() + 0.5, "the entry to lapse")
    ahead.leave("ahead")
