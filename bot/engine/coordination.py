"""What bot replicas share while runs are running: run leases, the kill-switch mirror and fault-handle mirrors.

Two implementations:

- ``DatabaseCoordination``: leases are heartbeat rows in ``leases`` (holder + expiry); the kill switch and
  the fault handles already live in the database, so their mirrors are no-ops.
- ``RedisCoordination``: leases are Redis keys with a TTL (``SET NX PX``, renewed by a Lua script only while
  we still hold them). Every call falls back to the database implementation when Redis raises, and after a
  failure Redis is skipped for a few seconds, so a Redis outage never slows an abort. The database heartbeat
  is written as well: a replica that can only see the database (Redis down) must not mistake a healthy run
  for an orphan.

Lease times use each process's wall clock, so replicas' clocks must agree to well within the lease TTL.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from bot.engine.records import DB_UNAVAILABLE
from bot.safety.models import Lease
from storage.db import Database, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

LEASE_KEY = "chaosbot:lease:{run_id}"
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

    def is_held(self, run_id: int) -> bool:
        """Whether some process holds a live lease on the run."""
        return not self.expired([run_id])

    def mirror_kill_switch(self, *, engaged: bool, actor: str, reason: str = "") -> None:  # noqa: B027
        """Copy the kill switch where every replica checks it quickly (no-op: the database is the source)."""

    def kill_switch_mirrored(self) -> bool:
        """Whether the mirror says the kill switch is engaged (False when there is no mirror or it is down)."""
        return False

    def mirror_handles(self, run_id: int, plan: Mapping[str, Any]) -> None:  # noqa: B027
        """Keep a copy of a run's revert plan (fault handles) for when the database is unreachable."""

    def mirrored_handles(self, run_id: int) -> dict[str, Any] | None:
        """The mirrored revert plan of a run, if any."""
        return None

    def mirrored_runs(self) -> list[int]:
        """Run ids that have a mirrored revert plan (used by ``abort all`` when the database is down)."""
        return []

    def forget_handles(self, run_id: int) -> None:  # noqa: B027
        """Drop a run's mirrored plan once it has ended."""

    def close(self) -> None:  # noqa: B027
        """Release connections."""


class DatabaseCoordination(Coordination):
    """Leases as heartbeat rows in ``leases``; no mirrors (the database already holds everything)."""

    def __init__(self, db: Database, *, now: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self._now = now

    def acquire(self, run_id: int, holder: str, ttl: timedelta) -> bool:
        try:
            with self.db.transaction() as session:
                query = select(Lease).where(Lease.run_id == run_id).with_for_update()
                lease = session.execute(query).scalar_one_or_none()
                now = self._now()
                if lease is None:
                    session.add(Lease(run_id=run_id, holder=holder, expires_at=now + ttl))
                    return True
                if lease.holder != holder and lease.expires_at > now:
                    return False
                lease.holder, lease.expires_at = holder, now + ttl
                return True
        except IntegrityError:  # another process inserted the row first
            return False

    def renew(self, run_id: int, holder: str, ttl: timedelta) -> bool:
        with self.db.transaction() as session:
            result = session.execute(
                update(Lease)
                .where(Lease.run_id == run_id, Lease.holder == holder)
                .values(expires_at=self._now() + ttl)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
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
            query = select(Lease.run_id).where(Lease.run_id.in_(list(run_ids)), Lease.expires_at > self._now())
            return set(session.scalars(query))


class _RedisDown(Exception):
    pass


class RedisCoordination(Coordination):
    """Redis first, the database whenever Redis fails; see the module docstring."""

    def __init__(
        self, client: Any, fallback: DatabaseCoordination, *, cooldown_seconds: float = REDIS_COOLDOWN_SECONDS
    ) -> None:
        self.client = client
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

    # -- mirrors -------------------------------------------------------------------------------

    def mirror_kill_switch(self, *, engaged: bool, actor: str, reason: str = "") -> None:
        if engaged:
            value = json.dumps({"engaged": True, "by": actor, "reason": reason, "at": utcnow().isoformat()})
            self._quietly(lambda r: r.set(KILL_SWITCH_KEY, value))
        else:
            self._quietly(lambda r: r.delete(KILL_SWITCH_KEY))

    def kill_switch_mirrored(self) -> bool:
        return bool(self._quietly(lambda r: r.exists(KILL_SWITCH_KEY)))

    def mirror_handles(self, run_id: int, plan: Mapping[str, Any]) -> None:
        value = json.dumps(dict(plan), default=str)
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
        self._quietly(lambda r: r.close())

    # -- plumbing ------------------------------------------------------------------------------

    def _redis(self, call: Callable[[Any], T]) -> T:
        """Run ``call`` on Redis, or raise ``_RedisDown`` (at once while Redis is in its cool-down)."""
        import redis

        if time.monotonic() < self._down_until:
            raise _RedisDown
        try:
            return call(self.client)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._down_until = time.monotonic() + self.cooldown_seconds
            log.warning("Redis unavailable (%s); using the database for %.0f s", exc, self.cooldown_seconds)
            raise _RedisDown from exc

    def _quietly(self, call: Callable[[Any], T]) -> T | None:
        try:
            return self._redis(call)
        except _RedisDown:
            return None


def build_coordination(redis_url: str | None, db: Database) -> Coordination:
    """Redis-backed coordination (with the database as fallback) when ``redis_url`` is set, else database only."""
    fallback = DatabaseCoordination(db)
    if not redis_url:
        return fallback
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # Short timeouts and no client retries: a dead Redis must cost an abort milliseconds, not seconds.
    client = redis.Redis.from_url(
        redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    return RedisCoordination(client, fallback)


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
