"""Real PostgreSQL and Redis for tests: skipped locally when absent, required in CI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

REQUIRE_SERVICES = os.environ.get("CHAOSBOT_REQUIRE_SERVICES") == "1"
POSTGRES_ADMIN_URL = os.environ.get(
    "CHAOSBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _redis_db(base: str, offset: int) -> str:
    """``base`` with its database number moved up by ``offset``."""
    if offset == 0:
        return base
    head, _, db = base.rpartition("/")
    if not head.startswith(("redis://", "rediss://")) or not db.isdigit():
        raise RuntimeError(f"CHAOSBOT_TEST_REDIS_URL must end in a database number to run in parallel: {base}")
    return f"{head}/{int(db) + offset}"


_BASE_REDIS_URL = os.environ.get("CHAOSBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/4")
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... under pytest -n N
_INDEX = int(_WORKER.removeprefix("gw")) if _WORKER.startswith("gw") else 0
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))

# Each test process has two Redis databases of its own and flushes only those: a parallel run of N workers
# uses 2N databases from the base one up (4..13 by default for -n 5; Redis has 16 unless configured).
# The first: the base plus the worker's index (gw2: +2).
REDIS_TEST_URL = _redis_db(_BASE_REDIS_URL, _INDEX)

# The second, for replica groups (several ``chaosbot serve`` sharing one Redis, as in production): a worker's
# session servers register in its first database as live replicas, and a replica group that saw them would
# hand its runs over to a server that never adopts them ("alone" would not be alone).
REPLICAS_REDIS_URL = _redis_db(_BASE_REDIS_URL, _WORKERS + _INDEX)


def unavailable(service: str, why: str) -> None:
    """Skip with the reason, or fail when CI demands the real services (CHAOSBOT_REQUIRE_SERVICES=1)."""
    message = f"{service} is not reachable ({why})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; CHAOSBOT_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
    pytest.skip(f"{message}; start it or set CHAOSBOT_TEST_POSTGRES_URL / CHAOSBOT_TEST_REDIS_URL")


def _psycopg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def scratch_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test session, dropped at the end."""
    name = f"chaosbot_test_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(statement: str) -> None:
    """One statement on a connection of its own: none is held while the database is in use (a parallel run
    holds several scratch databases per worker, and PostgreSQL allows 100 connections by default)."""
    import psycopg

    try:
        admin = psycopg.connect(_psycopg_dsn(POSTGRES_ADMIN_URL), autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", str(exc).strip().splitlines()[0])
        raise  # unreachable: unavailable() skips or fails
    with admin:
        admin.execute(statement)


def redis_client_or_skip(url: str = REDIS_TEST_URL):  # type: ignore[no-untyped-def]  # redis.Redis generic
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", str(exc))
    return client
