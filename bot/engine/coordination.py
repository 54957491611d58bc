"""What bot replicas share while runs are running: run leases, the kill-switch mirror and fault-handle mirrors.

Two implementations:

- ``DatabaseCoordination``: leases are heartbeat rows in ``leases`` (holder + expiry); the kill switch and
  the fault handles already live in the database, so their mirrors are no-ops.
- ``RedisCoordination``: leases are Redis keys with a TTL (``SET NX PX``, renewed by a Lua script only while
  we still hold them). Every call falls back to the database implementation when Redis raises, and after a
  failure Redis is skipped for a few seconds, so a Redis outage never slows an abort. The database heartbeat
  is written as well: a replica that can only see the database (Redis down) must not mistake a healthy run
  for an orphan.

Leases and the replica registry use one clock: the database's (``now()`` evaluated in the statement) or
Redis's (keys with a TTL expire by Redis's clock). A replica whose wall clock is off can neither steal a live
run nor keep a dead one.

A replica that shuts down while other replicas live *hands its runs over*: it marks the lease as handed over
and lets it lapse at once; the next dead man's switch sweep of another replica adopts the run (keeps watching
and renewing its fault) instead of reverting it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Interval, delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.engine.models import Lease, Replica
from bot.engine.outage import DB_UNAVAILABLE
from storage.db import Database, UTCDateTime, rowcount, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

LEASE_KEY = "chaosbot:lease:{run_id}"
REPLICA_KEY = "chaosbot:replica:{holder}"
KILL_SWITCH_KEY = "chaosbot:killswitch"
HANDLES_KEY = "chaosbot:faults:{run_id}"
HANDLES_TTL = timedelta(days=7)
REDIS_COOLDOWN_SECONDS = 5.0

# Take the lease if it is free or already ours; never take it from a live holder.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Coordination(ABC):
    """Leases (one live holder per run), plus mirrors that let any replica act when the database cannot."""

    @abstractmethod
    def acquire(self, run_id: int, holder: str, ttl: timedelta) -> bool:
        """Take the run's lease for ``ttl``; True when it is now ours (free, lapsed, or already ours)."""

    @abstractmethod
    def renew(self, run_id: int, holder: str, ttl: timedelta) -> bool:
        """Extend our lease; False only when another holder has it (we lost the run)."""

    @abstractmethod
    def release(self, run_id: int, holder: str) -> None:
        """Give the lease up if we hold it."""

    @abstractmethod
    def expired(self, run_ids: Iterable[int]) -> list[int]:
        """Those of ``run_ids`` that nobody holds a live lease on (never guesses: unknown means held)."""

    @abstractmethod
    def hand_over(self, run_id: int, holder: str) -> bool:
        """Let our lease lapse now, marked as handed over (another replica adopts the run); False if not ours."""

    @abstractmethod
    def handed_over(self, run_ids: Iterable[int]) -> dict[int, str]:
        """Those of ``run_ids`` whose holder handed them over, with who handed them over."""

    @abstractmethod
    def heartbeat(self, holder: str, ttl: timedelta) -> None:
        """Say this replica is alive (and sweeping) for ``ttl``."""

    @abstractmethod
    def leave(self, holder: str) -> None:
        """This replica stops: take it out of the registry."""

    @abstractmethod
    def live_replicas(self, *, besides: str) -> list[str]:
        """Other replicas alive now (they can adopt a handed-over run)."""

    def mirror_kill_switch(self, *, engaged: bool, actor: str, reason: str = "") -> None:  # noqa: B027
        """Copy the kill switch where every replica checks it quickly (no-op: the database is the source)."""

    def kill_switch_mirrored(self) -> bool:
        """Whether the mirror says the kill switch is engaged (False when there is no mirror or it is down)."""
        return False

    def mirror_handles(self, run_id: int, rollback: Mapping[str, Any]) -> None:  # noqa: B027
        """Keep a copy of a run's rollback (fault handles) for when the database is unreachable."""

    def mirrored_handles(self, run_id: int) -> dict[str, Any] | None:
        """The mirrored rollback of a run, if any."""
        return None

    def mirrored_runs(self) -> list[int]:
        """Run ids that have a mirrored rollback (used by ``abort all`` when the database is down)."""
        return []

    def forget_handles(self, run_id: int) -> None:  # noqa: B027
        """Drop a run's mirrored rollback once it has ended."""

    def close(self) -> None:  # noqa: B027
        """Release connections."""


class DatabaseCoordination(Coordination):
    """Leases and the replica registry as rows with an expiry; no mirrors (the database already holds everything).

    Every expiry is computed and compared by the database's clock inside the statement (PostgreSQL ``now()``),
    so replicas' wall clocks never meet. SQLite serves one host, where this process's clock (``now``) is the
    database's clock.
    """

    def __init__(self, db: Database, *, now: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self._now = now

    def _clock(self) -> ColumnElement[datetime]:
        if self.db.dialect == "postgresql":
            return func.now()
        return literal(self._now(), UTCDateTime())

    def _in(self, ttl: timedelta) -> ColumnElement[datetime]:
        if self.db.dialect == "postgresql":
            return func.now() + literal(ttl, Interval())
        return literal(self._now() + ttl, UTCDateTime())

    def acquire(self, run_id: int, holder: str, ttl: timedelta) -> bool:
        with self.db.transaction() as session:
            taken = session.execute(
                update(Lease)
                .where(Lease.run_id == run_id, or_(Lease.holder == holder, Lease.expires_at <= self._clock()))
                .values(holder=holder, expires_at=self._in(ttl), handed_over_by=None)
                .execution_options(synchronize_session=False)
            )
            if rowcount(taken) == 1:
                return True
        try:
            with self.db.transaction() as session:
                session.execute(insert(Lease).values(run_id=run_id, holder=holder, expires_at=self._in(ttl)))
            return True
        except IntegrityError:  # a live lease of someone else (or another process inserted first)
            return False

    def renew(self, run_id: int, holder: str, ttl: timedelta) -> bool:
        with self.db.transaction() as session:
            result = session.execute(
                update(Lease)
                .where(Lease.run_id == run_id, Lease.holder == holder)
                .values(expires_at=self._in(ttl))
                .execution_options(synchronize_session=False)
            )
            if rowcount(result) == 1:
                return True
        # Our row is gone (released by a recoverer): take it back only if nobody else holds it.
        return self.acquire(run_id, holder, ttl)

    def release(self, run_id: int, holder: str) -> None:
        with self.db.transaction() as session:
            session.execute(delete(Lease).where(Lease.run_id == run_id, Lease.holder == holder))

    def expired(self, run_ids: Iterable[int]) -> list[int]:
        wanted = list(run_ids)
        if not wanted:
            return []
        live = self.live(wanted)
        return [run_id for run_id in wanted if run_id not in live]

    def live(self, run_ids: Iterable[int]) -> set[int]:
        """Run ids among ``run_ids`` with an unexpired lease row."""
        with self.db.transaction() as session:
            query = select(Lease.run_id).where(Lease.run_id.in_(list(run_ids)), Lease.expires_at > self._clock())
            return set(session.scalars(query))

    def hand_over(self, run_id: int, holder: str) -> bool:
        with self.db.transaction() as session:
            result = session.execute(
                update(Lease)
                .where(Lease.run_id == run_id, Lease.holder == holder)
                .values(handed_over_by=holder, expires_at=self._clock())
                .execution_options(synchronize_session=False)
            )
            return rowcount(result) == 1

    def handed_over(self, run_ids: Iterable[int]) -> dict[int, str]:
        wanted = list(run_ids)
        if not wanted:
            return {}
        with self.db.transaction() as session:
            query = select(Lease.run_id, Lease.handed_over_by).where(
                Lease.run_id.in_(wanted), Lease.handed_over_by.is_not(None)
            )
            return {run_id: str(by) for run_id, by in session.execute(query)}

    def heartbeat(self, holder: str, ttl: timedelta) -> None:
        with self.db.transaction() as session:
            beat = session.execute(
                update(Replica)
                .where(Replica.holder == holder)
                .values(expires_at=self._in(ttl))
                .execution_options(synchronize_session=False)
            )
            if rowcount(beat) == 1:
                return
            session.execute(delete(Replica).where(Replica.expires_at <= self._clock()))  # the long dead
        # A concurrent first beat of the same holder (IntegrityError): the row is there, which is all we need.
        with contextlib.suppress(IntegrityError), self.db.transaction() as session:
            session.execute(insert(Replica).values(holder=holder, expires_at=self._in(ttl)))

    def leave(self, holder: str) -> None:
        with self.db.transaction() as session:
            session.execute(delete(Replica).where(Replica.holder == holder))

    def live_replicas(self, *, besides: str) -> list[str]:
        with self.db.transaction() as session:
            query = select(Replica.holder).where(Replica.holder != besides, Replica.expires_at > self._clock())
            return sorted(session.scalars(query))


class _RedisDown(Exception):
    pass


class RedisCoordination(Coordination):
    """Redis first, the database whenever Redis fails; see the module docstring."""

    def __init__(
        self,
        client: Any,
        fallback: DatabaseCoordination,
        *,
        cooldown_seconds: float = REDIS_COOLDOWN_SECONDS,
        owns_client: bool = False,
    ) -> None:
        self.client = client
        self.owns_client = owns_client
        self.fallback = fallback
        self.cooldown_seconds = cooldown_seconds
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    # -- leases --------------------------------------------------------------------------------

    def acquire(self, run_id: int, holder: str, ttl: timedelta) -> bool:
        try:
            taken = self._redis(lambda r: bool(self._acquire(keys=[_lease(run_id)], args=[holder, _ms(ttl)])))
        except _RedisDown:
            return self.fallback.acquire(run_id, holder, ttl)
        if not taken:
            return False
        try:
            in_db = self.fallback.acquire(run_id, holder, ttl)
        except DB_UNAVAILABLE:
            return True  # Redis granted it; the heartbeat is written at the next renewal
        if not in_db:  # someone took it in the database while Redis was down
            self.release(run_id, holder)
        return in_db

    def renew(self, run_id: int, holder: str, ttl: timedelta) -> bool:
        # Renewal takes the lease back when it lapsed and nobody else took it (the same script as acquire).
        in_redis = self._quietly(lambda r: bool(self._acquire(keys=[_lease(run_id)], args=[holder, _ms(ttl)])))
        try:
            in_db: bool | None = self.fallback.renew(run_id, holder, ttl)
        except DB_UNAVAILABLE:
            in_db = None
        return in_redis is not False and in_db is not False

    def release(self, run_id: int, holder: str) -> None:
        self._quietly(lambda r: self._release(keys=[_lease(run_id)], args=[holder]))
        try:
            self.fallback.release(run_id, holder)
        except DB_UNAVAILABLE:
            log.warning("could not release the database lease of run %s; it lapses by itself", run_id)

    def expired(self, run_ids: Iterable[int]) -> list[int]:
        wanted = list(run_ids)
        if not wanted:
            return []
        in_redis = self._quietly(lambda r: {i for i, n in zip(wanted, _exists(r, wanted), strict=True) if n})
        try:
            in_db: set[int] | None = self.fallback.live(wanted)
        except DB_UNAVAILABLE:
            in_db = None
        if in_redis is None and in_db is None:
            return []  # we can see no lease store: never declare a run orphaned blind
        live = (in_redis or set()) | (in_db or set())
        return [run_id for run_id in wanted if run_id not in live]

    def hand_over(self, run_id: int, holder: str) -> bool:
        # The database row carries the mark (and lapses now); the Redis key goes, so the run looks expired.
        marked = self.fallback.hand_over(run_id, holder)
        if marked:
            self._quietly(lambda r: self._release(keys=[_lease(run_id)], args=[holder]))
        return marked

    def handed_over(self, run_ids: Iterable[int]) -> dict[int, str]:
        return self.fallback.handed_over(run_ids)

    def heartbeat(self, holder: str, ttl: timedelta) -> None:
        self._quietly(lambda r: r.set(REPLICA_KEY.format(holder=holder), "1", px=_ms(ttl)))
        try:
            self.fallback.heartbeat(holder, ttl)
        except DB_UNAVAILABLE:
            log.warning("could not write this replica's heartbeat to the database; Redis has it")

    def leave(self, holder: str) -> None:
        self._quietly(lambda r: r.delete(REPLICA_KEY.format(holder=holder)))
        try:
            self.fallback.leave(holder)
        except DB_UNAVAILABLE:
            log.warning("could not leave the replica registry in the database; the entry lapses by itself")

    def live_replicas(self, *, besides: str) -> list[str]:
        prefix = REPLICA_KEY.format(holder="")
        keys = self._quietly(lambda r: list(r.scan_iter(match=REPLICA_KEY.format(holder="*"), count=500)))
        in_redis = {_text(key).removeprefix(prefix) for key in keys or []}
        try:
            in_db = set(self.fallback.live_replicas(besides=besides))
        except DB_UNAVAILABLE:
            in_db = set()
        return sorted((in_redis | in_db) - {besides})

    # -- mirrors -------------------------------------------------------------------------------

    def mirror_kill_switch(self, *, engaged: bool, actor: str, reason: str = "") -> None:
        if engaged:
            value = json.dumps({"engaged": True, "by": actor, "reason": reason, "at": utcnow().isoformat()})
            self._quietly(lambda r: r.set(KILL_SWITCH_KEY, value))
        else:
            self._quietly(lambda r: r.delete(KILL_SWITCH_KEY))

    def kill_switch_mirrored(self) -> bool:
        return bool(self._quietly(lambda r: r.exists(KILL_SWITCH_KEY)))

    def mirror_handles(self, run_id: int, rollback: Mapping[str, Any]) -> None:
        value = json.dumps(dict(rollback), default=str)
        self._quietly(lambda r: r.set(HANDLES_KEY.format(run_id=run_id), value, px=_ms(HANDLES_TTL)))

    def mirrored_handles(self, run_id: int) -> dict[str, Any] | None:
        raw = self._quietly(lambda r: r.get(HANDLES_KEY.format(run_id=run_id)))
        return json.loads(raw) if raw else None

    def mirrored_runs(self) -> list[int]:
        keys = self._quietly(lambda r: list(r.scan_iter(match=HANDLES_KEY.format(run_id="*"), count=500)))
        prefix = HANDLES_KEY.format(run_id="")
        return sorted(int(_text(key).removeprefix(prefix)) for key in keys or [])

    def forget_handles(self, run_id: int) -> None:
        self._quietly(lambda r: r.delete(HANDLES_KEY.format(run_id=run_id)))

    def close(self) -> None:
        """Close the Redis client when this coordination built it (a shared one is closed by its owner)."""
        if self.owns_client:
            self._quietly(lambda r: r.close())

    # -- plumbing ------------------------------------------------------------------------------

    def _redis(self, call: Callable[[Any], T]) -> T:
        """Run ``call`` on Redis, or raise ``_RedisDown`` (at once while Redis is in its cool-down)."""
        import redis

        if time.monotonic() < self._down_until:
            raise _RedisDown
        try:
            answer = call(self.client)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._down_until = time.monotonic() + self.cooldown_seconds
            log.warning("Redis unavailable (%s); using the database for %g s", exc, self.cooldown_seconds)
            raise _RedisDown from exc
        if self._down_until:
            with self._lock:
                recovered, self._down_until = bool(self._down_until), 0.0
            if recovered:
                log.info("Redis answers again: leases and mirrors use it from now on")
        return answer

    def _quietly(self, call: Callable[[Any], T]) -> T | None:
        try:
            return self._redis(call)
        except _RedisDown:
            return None


def connect_redis(url: str) -> Any:
    """The process's one Redis client (leases, mirrors and the request ledger share it).

    Short timeouts and no client retries: a dead Redis must cost an abort milliseconds, not seconds.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0), health_check_interval=30
    )


def build_coordination(redis: str | Any | None, db: Database) -> Coordination:
    """Redis-backed coordination (the database as fallback) given a Redis URL or client, else database only.

    A client passed in stays its owner's to close; one built here from a URL is closed by ``close()``.
    """
    fallback = DatabaseCoordination(db)
    if redis is None or redis == "":
        return fallback
    if isinstance(redis, str):
        return RedisCoordination(connect_redis(redis), fallback, owns_client=True)
    return RedisCoordination(redis, fallback)


def _lease(run_id: int) -> str:
    return LEASE_KEY.format(run_id=run_id)


def _ms(ttl: timedelta) -> int:
    return max(1, int(ttl.total_seconds() * 1000))


def _exists(client: Any, run_ids: list[int]) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for run_id in run_ids:
        pipe.exists(_lease(run_id))
    return list(pipe.execute())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
