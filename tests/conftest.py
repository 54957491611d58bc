"""Fixtures shared by every suite: databases on SQLite and PostgreSQL, Redis, and the runs core (``RunCore``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from bot.catalogue.service import load_catalogue
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from storage.db import Database
from storage.migrate import upgrade
from tests.services import redis_client_or_skip, scratch_postgres_database

pytest_plugins = ["tests.fakeslack.fixtures"]

DATA_TABLES = [
    "firings",  # scheduling (issue 8): before runs, which firings name
    "freezes",
    "freeze_feeds",
    "action_items",  # after the run (issue 9): before runs, which they belong to
    "retrospectives",
    "dashboard_annotations",
    "approvals",
    "faults",
    "measurements",
    "outcomes",
    "audit_events",
    "leases",
    "processed_requests",
    "runs",
    "spool_applied",
    "replicas",
]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once; each test gets a copy, which is much faster than migrating per test."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with scratch_postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def postgres_db(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    yield database
    database.dispose()


SEQUENCED_TABLES = ["runs", "approvals", "faults", "measurements", "firings", "freezes", "action_items"]


def _reset_postgres(database: Database) -> None:
    # DELETE + sequence reset: TRUNCATE costs ~90 ms per test on these small tables, this ~5 ms.
    with database.engine.begin() as connection:
        for table in DATA_TABLES:
            connection.execute(text(f"DELETE FROM {table}"))
        for table in SEQUENCED_TABLES:
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1, false)"))
        connection.execute(text("UPDATE audit_head SET seq = 0, hash = :genesis"), {"genesis": "0" * 64})
        connection.execute(text("UPDATE kill_switch SET engaged = false, changed_by = NULL, reason = NULL"))


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database: the same test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "chaosbot.db"
        shutil.copy(sqlite_template, path)
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
        return
    database = request.getfixturevalue("postgres_db")
    _reset_postgres(database)
    yield database
    database.engine.dispose()  # its idle connections: parallel workers share PostgreSQL's 100


@pytest.fixture
def pg_db(postgres_db: Database) -> Iterator[Database]:
    """PostgreSQL only: for races that need real row locks across connections."""
    _reset_postgres(postgres_db)
    yield postgres_db
    postgres_db.engine.dispose()


# The modules whose tests take longest, longest first. pytest-xdist hands tests to its workers in collection
# order, so these start first and the run does not end with one worker alone on a long test while the others
# idle. (`make test-random` shuffles everything, this included.)
HEAVY_FIRST = (
    "tests/slack/test_fuzz.py",
    "tests/slack/test_after_the_run.py",
    "tests/engine/test_fault_scenarios.py",
    "tests/slack/test_timing.py",
    "tests/slack/test_two_replicas.py",
    "tests/slack/test_outbox.py",
    "tests/engine/test_sigterm.py",
    "tests/slack/test_socket_mode.py",
    "tests/demo/test_demo.py",
    "tests/slack/test_secrets.py",
    "tests/slack/test_flow.py",
    "tests/console/test_shell.py",
    "tests/schedule/test_two_processes.py",
)


# Modules that keep a core busy (thousands of fuzz examples through a real server) rather than wait. Two such
# tests at once fill the 2-core machine; started on every worker together, each ran five times slower.
CPU_BOUND = ("tests/slack/test_fuzz.py",)
CPU_SHARE = 0.4  # of the tests handed out first: about two CPU-bound tests in flight for five workers


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def _interleaved(items: list[pytest.Item]) -> list[pytest.Item]:
    """The CPU-bound tests spread among the waiting ones, in their order, at about ``CPU_SHARE``."""
    busy = [item for item in items if _module(item) in CPU_BOUND]
    waiting = [item for item in items if _module(item) not in CPU_BOUND]
    ordered: list[pytest.Item] = []
    taken = 0
    while busy or waiting:
        if busy and (not waiting or taken < CPU_SHARE * (len(ordered) + 1)):
            ordered.append(busy.pop(0))
            taken += 1
        else:
            ordered.append(waiting.pop(0))
    return ordered


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {module: place for place, module in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(_module(item), len(HEAVY_FIRST)))
    items[:] = _interleaved(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test's report carries what its ``chaosbot serve`` processes logged while it ran
    (``show_log_on_failure`` in tests/slack/conftest.py)."""
    report = yield
    if report.failed:
        for server, offset in item.__dict__.get("chaosbot_logs", []):
            report.sections.append((f"chaosbot serve ({server.kind}) log", server.log_text(offset)[-20000:]))
    return report


@pytest.fixture
def redis_client():  # type: ignore[no-untyped-def]  # redis.Redis is generic over its response type
    client = redis_client_or_skip()
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def make_core(clock: Clock) -> Callable[[Database], RunCore]:
    catalogue, policy = load_catalogue(), load_policy()

    def build(database: Database) -> RunCore:
        return RunCore.build(database, catalogue, policy, zone=ZoneInfo("Australia/Sydney"), clock=clock)

    return build


@pytest.fixture
def core(db: Database, make_core: Callable[[Database], RunCore]) -> RunCore:
    return make_core(db)
