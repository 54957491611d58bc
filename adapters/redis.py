"""CE-01 cache outage: make a Redis server stop answering its clients with ``CLIENT PAUSE``, slice by slice."""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator

from adapters._common import expiry, has_expired, params_as, reports_failures, utcnow
from adapters.base import (
    Adapter,
    AdapterError,
    AdapterParams,
    AdapterParamsError,
    FaultHandle,
    FaultState,
    FaultStatus,
    Preflight,
    resolve_env,
)

if TYPE_CHECKING:  # redis-py (6 MB) is imported when a Redis experiment first runs, not at start
    import redis

MIN_VERSION = (6, 2)  # CLIENT UNPAUSE and the WRITE/ALL modes arrived in Redis 6.2
PROBE_KEY = "chaosbot:probe:{run_id}"


class RedisParams(AdapterParams):
    url: str
    mode: Literal["all", "write"] = "all"
    timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    probe_timeout_seconds: float = Field(default=0.5, gt=0, le=10)
    # At least RENEW_EVERY plus half a second, so the next slice is always queued before the current one ends.
    slice_seconds: float = Field(default=2.0, ge=1.5, le=60)

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if "${" not in url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL or a ${VAR} reference")
        return url


class CommandTimedOut(AdapterError):
    """Redis did not answer in time: it is unreachable, or it postponed the command because it is paused."""


RENEW_EVERY = timedelta(seconds=1)


class RedisAdapter(Adapter):
    """Pause a Redis server's clients (``CLIENT PAUSE <ms> ALL|WRITE``) in short slices renewed while the run lasts.

    Parameters:

    - ``url`` (required): ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``), normally a
      ``${CE01_REDIS_URL}`` reference so the password stays in the environment.
    - ``mode`` (default ``all``): ``all`` blocks every command; ``write`` blocks only writes (reads still work).
    - ``timeout_seconds`` (default 3): socket timeout of every call.
    - ``probe_timeout_seconds`` (default 0.5): how long ``status`` waits for its probe before calling it paused.
    - ``slice_seconds`` (default 2, at least 1.5): the length of one pause.

    Why slices: while a pause in ``all`` mode lasts, Redis postpones *every* command, ``CLIENT UNPAUSE``
    included (verified against Redis 7.0), so a pause cannot be cut short. Inject therefore pauses for one
    slice and queues the next, and the engine calls ``renew`` every ``renew_every`` (1 s) to keep two slices
    queued. Every slice of a run goes over one connection; in ``all`` mode the queued ones wait in its buffer,
    and Redis runs the next the instant the current slice ends, before the clients queued behind it, so the
    outage has no gap. Revert closes that connection (Redis drops the postponed commands of a client that went
    away) and sends ``CLIENT UNPAUSE``, which Redis answers when the current slice ends: the fault lifts within
    one slice. ``write`` pauses are unpaused at once. If chaosbot dies its connection closes with it, so the
    fault heals within one slice. With no renewal and no revert, it heals within two. A slice never runs past
    ``expires_at`` (the end of the run's maximum duration), and no slice is queued after a revert in this
    process. Revert unpauses the whole server, including any pause someone else set.

    A revert from another process cannot cancel the slices this process has queued: the fault then lifts
    within three slices, or one if this process also reverts (revert is idempotent).

    Preflight: ``PING``, then ``INFO server`` to check the version is at least 6.2. Status: a probe from a new
    connection with a short timeout (``PING`` for ``all``, ``DEL`` of the absent key ``chaosbot:probe:<run>``
    for ``write``, a write that changes nothing). If the probe is held back the clients are paused, whoever
    paused them.
    """

    name = "redis"
    Params = RedisParams
    self_expiring = True
    renew_every = RENEW_EVERY

    @reports_failures
    def preflight(self, params: AdapterParams) -> Preflight:
        p = params_as(RedisParams, params)
        with _connection(p, p.timeout_seconds) as client:
            _run(client, p, "PING")
            version = str(_run(client, p, "INFO", "server").get("redis_version", "0"))
        if parse_version(version) < MIN_VERSION:
            detail = f"Redis {version} at {display_url(p.url)} has no CLIENT UNPAUSE (needs 6.2 or later)"
            return Preflight(ok=False, detail=detail)
        detail = f"Redis {version} at {display_url(p.url)} answers PING and supports CLIENT PAUSE/UNPAUSE"
        if p.mode == "all":
            detail += f"; an ALL pause lifts within one slice ({p.slice_seconds:g} s) of an abort"
        return Preflight(ok=True, detail=detail)

    def prepare(self, params: AdapterParams, *, run_id: str, duration: timedelta) -> FaultHandle:
        p = params_as(RedisParams, params)
        data = {
            "url": display_url(p.url),
            "mode": p.mode,
            "pause_ms": _milliseconds(duration),
            "slice_ms": _milliseconds(timedelta(seconds=p.slice_seconds)),
        }
        return FaultHandle(adapter=self.name, run_id=run_id, data=data)

    def inject(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> FaultHandle:
        p = params_as(RedisParams, params)
        pause_ms = _milliseconds(duration)
        slice_ms = min(pause_ms, _milliseconds(timedelta(seconds=p.slice_seconds)))
        ends = expiry(duration)
        _CHAINS.start(_key(handle), p, slice_ms, ends)
        data = {**handle.data, "pause_ms": pause_ms, "slice_ms": slice_ms, "paused_at": utcnow().isoformat()}
        return replace(handle, data=data, expires_at=ends)

    def renew(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> None:
        """Keep the next slices queued. Never blocks on a paused server; never pauses past ``handle.expires_at``."""
        p = params_as(RedisParams, params)
        _CHAINS.renew(_key(handle), p, handle.expires_at or utcnow() + duration)

    def revert(self, params: AdapterParams, handle: FaultHandle) -> None:
        p = params_as(RedisParams, params)
        _CHAINS.stop(_key(handle))
        try:
            with _connection(p, max(p.timeout_seconds, p.slice_seconds + 0.5)) as client:
                _run(client, p, "CLIENT", "UNPAUSE")
        except CommandTimedOut as exc:
            if p.mode == "all" and handle.expires_at is not None and not has_expired(handle.expires_at):
                raise AdapterError(
                    f"Redis at {display_url(p.url)} is paused in ALL mode and postpones every command, "
                    f"CLIENT UNPAUSE included; with no renewal the pause ends by itself within "
                    f"{p.slice_seconds:g} s",
                    retryable=True,
                ) from exc
            raise

    def status(self, params: AdapterParams, handle: FaultHandle) -> FaultStatus:
        p = params_as(RedisParams, params)
        probe = ("PING",) if p.mode == "all" else ("DEL", PROBE_KEY.format(run_id=handle.run_id))
        try:
            with _connection(p, p.probe_timeout_seconds) as client:
                _run(client, p, *probe)
        except CommandTimedOut:
            return FaultStatus(FaultState.ACTIVE, f"{probe[0]} is held back: clients are paused")
        except AdapterError as exc:
            return FaultStatus(FaultState.UNKNOWN, exc.message)
        if has_expired(handle.expires_at):
            return FaultStatus(FaultState.EXPIRED, f"{probe[0]} answered: the pause has ended")
        return FaultStatus(FaultState.REVERTED, f"{probe[0]} answered: clients are not paused")


ChainKey = tuple[str, str]


@dataclass
class _Chain:
    """One run's pause in this process: the connection holding the queued slices, and what it has queued."""

    client: redis.Redis | None = None
    queued_ms: deque[int] = field(default_factory=deque)
    #: The latest moment the slices sent so far can end.
    until: datetime | None = None
    stopped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None
        self.queued_ms.clear()


class _Chains:
    """Per-process pause chains, so a revert can cancel the slices this process has queued on a paused server.

    Every slice of a run goes over one connection. On a server paused in ALL mode the slices sent ahead wait
    in that connection's buffer; when a slice ends Redis runs the next one before any client queued behind
    it, so nothing slips through between slices. Closing the connection makes Redis drop what is still
    queued; process death closes it the same way. Adapter instances are created per call, hence module level.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chains: dict[ChainKey, _Chain] = {}

    def start(self, key: ChainKey, p: RedisParams, slice_ms: int, ends: datetime) -> None:
        self.stop(key)
        chain = _Chain()
        with self._lock:
            self._chains[key] = chain
        with chain.lock:
            chain.client = _client(p, p.timeout_seconds, single=True)
            try:
                _run(chain.client, p, "CLIENT", "PAUSE", slice_ms, p.mode.upper())
                chain.until = utcnow() + timedelta(milliseconds=slice_ms)
                # The next slice is queued at once, so nothing slips through before the first renewal.
                self._top_up(chain, p, ends, depth=1)
            except AdapterError:
                chain.close()
                raise

    def renew(self, key: ChainKey, p: RedisParams, ends: datetime) -> None:
        with self._lock:
            chain = self._chains.setdefault(key, _Chain())
        with chain.lock:  # never held long: renewing never waits for a paused server
            if chain.stopped:
                return
            if chain.client is None:  # another process injected, or the connection broke: a new chain
                chain.client = _client(p, p.timeout_seconds, single=True)
                chain.until = utcnow() + timedelta(seconds=p.slice_seconds)
            try:
                self._collect(chain, p)
                # Two deep in ALL mode: when a slice starts, the one after it is already waiting.
                self._top_up(chain, p, ends, depth=2 if p.mode == "all" else 1)
            except AdapterError:
                chain.close()
                raise

    def stop(self, key: ChainKey) -> None:
        """No more slices for this run: the ones queued on this process's connection are cancelled."""
        with self._lock:
            chain = self._chains.setdefault(key, _Chain())
            chain.stopped = True
        with chain.lock:
            chain.close()

    @staticmethod
    def _collect(chain: _Chain, p: RedisParams) -> None:
        """Read the answers of the slices that have started; each answer bounds when the chain can end."""
        assert chain.client is not None and chain.client.connection is not None
        while chain.queued_ms and chain.client.connection.can_read(timeout=0):
            _read(chain.client, p)
            started_ms = chain.queued_ms.popleft()
            latest = utcnow() + timedelta(milliseconds=started_ms + sum(chain.queued_ms))
            chain.until = min(chain.until, latest) if chain.until else latest

    @staticmethod
    def _top_up(chain: _Chain, p: RedisParams, ends: datetime, *, depth: int) -> None:
        assert chain.client is not None
        while len(chain.queued_ms) < depth:
            # ALL: a queued slice starts when the one before it ends; WRITE: Redis runs CLIENT PAUSE at once.
            starts = (chain.until or utcnow()) if p.mode == "all" else utcnow()
            slice_ms = min(int((ends - starts).total_seconds() * 1000), int(p.slice_seconds * 1000))
            if slice_ms <= 0:
                return
            _send(chain.client, p, "CLIENT", "PAUSE", slice_ms, p.mode.upper())
            chain.queued_ms.append(slice_ms)
            chain.until = max(starts, utcnow()) + timedelta(milliseconds=slice_ms)


_CHAINS = _Chains()


def _key(handle: FaultHandle) -> ChainKey:
    return (str(handle.data.get("url", "")), handle.run_id)


@contextmanager
def _connection(p: RedisParams, timeout: float) -> Iterator[redis.Redis]:
    client = _client(p, timeout)
    try:
        yield client
    finally:
        client.close()


def _client(p: RedisParams, timeout: float, *, single: bool = False) -> redis.Redis:
    """A fresh client with no client-side retries: a retry would just wait out the pause silently."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        resolve_env(p.url),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        single_connection_client=single,
    )


def _run(client: redis.Redis, p: RedisParams, *command: Any) -> Any:
    import redis

    try:
        return client.execute_command(*command)  # type: ignore[no-untyped-call]  # untyped in redis-py 8
    except redis.RedisError as exc:
        raise _failure(p, command, exc) from exc


def _send(client: redis.Redis, p: RedisParams, *command: Any) -> None:
    """Write a command without waiting for its answer (a paused server answers it later); read it with ``_read``."""
    import redis

    try:
        assert client.connection is not None  # single_connection_client opens it in the constructor
        client.connection.send_command(*command)  # type: ignore[no-untyped-call]  # untyped in redis-py 8
    except redis.RedisError as exc:
        raise _failure(p, command, exc) from exc


def _read(client: redis.Redis, p: RedisParams) -> Any:
    import redis

    try:
        assert client.connection is not None
        return client.connection.read_response()
    except redis.RedisError as exc:
        raise _failure(p, ("CLIENT", "PAUSE"), exc) from exc


def _failure(p: RedisParams, command: tuple[Any, ...], exc: redis.RedisError) -> AdapterError:
    import redis

    where = f"Redis at {display_url(p.url)}"
    name = f"CLIENT {command[1]}" if command[0] == "CLIENT" else str(command[0])
    if isinstance(exc, redis.TimeoutError):
        return CommandTimedOut(f"{where}: {name} got no answer in time", retryable=True)
    if isinstance(exc, redis.AuthenticationError):
        return AdapterError(f"{where}: authentication failed ({exc})")
    if isinstance(exc, redis.ConnectionError):
        return AdapterError(f"{where}: cannot connect ({exc})", retryable=True)
    return AdapterError(f"{where}: {name} was refused ({exc})")


def _milliseconds(duration: timedelta) -> int:
    milliseconds = int(duration.total_seconds() * 1000)
    if milliseconds <= 0:
        raise AdapterParamsError("duration", "must be positive")
    return milliseconds


def parse_version(version: str) -> tuple[int, ...]:
    """``"7.0.15"`` -> ``(7, 0, 15)``; only the leading digits of each part count (``"2-rc1"`` -> 2)."""
    return tuple(int(match.group()) if (match := re.match(r"\d+", part)) else 0 for part in version.split(".")[:3])


def display_url(url: str) -> str:
    """The URL as it may be shown and stored: a ``${VAR}`` template as is, a literal one without its password."""
    if "${" in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
