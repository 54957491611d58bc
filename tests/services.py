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
REDIS_TEST_URL = os.environ.get("CHAOSBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


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
    import psycopg

    name = f"chaosbot_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(_psycopg_dsn(POSTGRES_ADMIN_URL), autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", str(exc).strip().splitlines()[0])
        raise  # unreachable: unavailable() skips or fails
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_client_or_skip(url: str = REDIS_TEST_URL):  # type: ignore[no-untyped-def]  # redis.Redis generic
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", str(exc))
    return client
