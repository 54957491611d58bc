"""Database engine, sessions and the migration check. SQLite (embedded) or PostgreSQL."""

from __future__ import annotations

import ast
import functools
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry import trace
from sqlalchemy import DateTime, Engine, MetaData, Result, create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


CONNECT_TIMEOUT_SECONDS = 3
RACE_RETRIES = 5

T = TypeVar("T")
_tracer = trace.get_tracer("chaosbot.storage")  # a no-op unless bot.tracing installed a provider


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, always returns an aware UTC datetime (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class NotMigratedError(Exception):
    def __init__(self, url: str, current: str | None, head: str | None) -> None:
        where = redact_url(url)
        super().__init__(
            f"the database at {where} is at migration {current or 'none (empty)'}, "
            f"this chaosbot needs {head}: run `chaosbot db upgrade` first"
        )


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the console, a serve process and the CLI share the file; busy_timeout makes
    # writers wait for each other instead of failing with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


DEFAULT_POOL_SIZE = 10  # PostgreSQL connections a process keeps open; as many more may open under a burst


def create_db_engine(url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # The driver stays in autocommit and we emit BEGIN IMMEDIATE ourselves: SQLite's deferred
        # transactions fail read-then-write races with SQLITE_BUSY instead of waiting their turn.
        engine = create_engine(url, connect_args={"check_same_thread": False, "isolation_level": None})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    # A host that silently drops packets would otherwise stall a connect for minutes (the OS's TCP timeout):
    # shutdown and an abort's record must give up within seconds and fall back to the spool.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10,
        connect_args={} if "connect_timeout=" in url else {"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


class Database:
    """The one handle the core gets to storage: an engine and transactions on it."""

    def __init__(self, url: str, engine: Engine | None = None, *, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.engine = engine or create_db_engine(url, pool_size=pool_size)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time and every transaction here takes the write lock (BEGIN IMMEDIATE).
        # Threads of this process queue on this lock instead of sleeping in SQLite's busy handler, which
        # backs off up to 100 ms per try and made acks under load wait for seconds.
        self._sqlite_turn = threading.RLock() if self.dialect == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on a clean exit, rolled back on an exception."""
        with self._sqlite_turn or nullcontext(), self._sessions() as session, session.begin():
            yield session

    def check_migrated(self) -> None:
        # Read without alembic: importing it (and mako, pygments, every migration) costs the serve process
        # about 11 MB for one comparison at start. tests/core/test_storage.py checks both give the same answer.
        current, head = stamped_revision(self.engine), declared_head()
        if current != head:
            raise NotMigratedError(self.url, current, head)

    def dispose(self) -> None:
        self.engine.dispose()


MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


@functools.cache
def declared_head(versions: Path = MIGRATIONS) -> str | None:
    """The head revision of the migration scripts, read from their ``revision``/``down_revision`` lines.

    Read once per process: the scripts do not change under it, and CPython 3.11's parser is not safe to run on
    two threads at once ("AST constructor recursion depth mismatch", fixed in later releases)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in versions.glob("*.py"):
        for node in ast.parse(script.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {target.id for target in targets if isinstance(target, ast.Name)}
                value = ast.literal_eval(node.value)
                if "revision" in names:
                    revisions.add(str(value))
                if "down_revision" in names and value is not None:
                    parents.update([value] if isinstance(value, str) else value)
    heads = sorted(revisions - parents)
    if len(heads) > 1:
        raise RuntimeError(f"the migrations have several heads: {heads}")
    return heads[0] if heads else None


def stamped_revision(engine: Engine) -> str | None:
    """The revision alembic stamped in the database, None when it was never migrated."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return versions[0] if len(versions) == 1 else ",".join(sorted(versions)) or None


def utcnow() -> datetime:
    return datetime.now(UTC)


def process_identity() -> str:
    """This process's name wherever it claims something (firings, leases, first posts): ``host:pid:random``.

    The same name for the whole life of the process (a forked child gets its own), so one process never
    claims under two names."""
    return _identity(os.getpid())


@functools.cache
def _identity(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}"


class StaleRow(Exception):
    """Someone changed the row between our read and our conditional write; ``retrying`` re-reads and decides again."""


def retrying(db: Database, apply: Callable[[Session], T], *, attempts: int = RACE_RETRIES) -> T:
    """``apply`` in one transaction per try; a lost race (``StaleRow``, a duplicate key) runs it again on fresh
    rows, so the loser gets a clear answer ("already approved by …") instead of a second change."""
    for attempt in range(attempts):
        try:
            with _traced_transaction(db, attempt + 1), db.transaction() as session:
                return apply(session)
        except (StaleRow, IntegrityError):
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _traced_transaction(db: Database, attempt: int) -> AbstractContextManager[object]:
    """A span for one try of a transaction. Its error is not recorded: a database error quotes the statement's
    parameters, which may hold what a person typed."""
    attributes: dict[str, str | int] = {"db.system.name": db.dialect, "chaosbot.attempt": attempt}
    return _tracer.start_as_current_span(
        "db.transaction", attributes=attributes, record_exception=False, set_status_on_exception=False
    )


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched (``Session.execute`` declares a ``Result``; these give a
    ``CursorResult``, which has the count)."""
    return int(getattr(result, "rowcount", 0) or 0)


def insert_ignoring(session: Session, table: type[Base], values: dict[str, Any]) -> None:
    """INSERT ``values`` into ``table`` unless a row with the same key exists (ON CONFLICT DO NOTHING)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(table).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(table).values(**values).on_conflict_do_nothing())
    else:  # pragma: no cover - the two databases chaosbot supports are above
        raise NotImplementedError(dialect)
