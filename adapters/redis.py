"""CE-01 cache outage: make a Redis server stop answering its clients with ``CLIENT PAUSE``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import redis
from pydantic import Field, field_validator
from redis.backoff import NoBackoff
from redis.retry import Retry

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

MIN_VERSION = (6, 2)  # CLIENT UNPAUSE and the WRITE/ALL modes arrived in Redis 6.2
PROBE_KEY = "chaosbot:probe:{run_id}"


class RedisParams(AdapterParams):
    url: str
    mode: Literal["all", "write"] = "all"
    timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    probe_timeout_seconds: float = Field(default=0.5, gt=0, le=10)

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if "${" not in url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL or a ${VAR} reference")
        return url


class CommandTimedOut(AdapterError):
    """Redis did not answer in time: it is unreachable, or it postponed the command because it is paused."""


class RedisAdapter(Adapter):
    """Pause a Redis server's clients for the run duration (``CLIENT PAUSE <ms> ALL|WRITE``): self-expiring.

    Parameters:

    - ``url`` (required): ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``), normally a
      ``${CE01_REDIS_URL}`` reference so the password stays in the environment.
    - ``mode`` (default ``all``): ``all`` blocks every command; ``write`` blocks only writes (reads still work).
    - ``timeout_seconds`` (default 3): socket timeout of every call.
    - ``probe_timeout_seconds`` (default 0.5): how long ``status`` waits for its probe before calling it paused.

    Inject sends ``CLIENT PAUSE``; Redis lifts the pause by itself when it ends (``expires_at``). Revert sends
    ``CLIENT UNPAUSE``, which is idempotent. Caveat, verified against Redis 7.0: while a pause in ``all`` mode
    lasts, Redis postpones *every* command, ``CLIENT UNPAUSE`` included (even on the connection that paused),
    so an ``all`` pause cannot be cut short; revert then fails with a retryable error that names the expiry
    time, and succeeds once the pause is over. ``write`` pauses can be reverted at once. Revert unpauses the
    whole server, including any pause someone else set.

    Preflight: ``PING``, then ``INFO server`` to check the version is at least 6.2. Status: a probe from a new
    connection with a short timeout (``PING`` for ``all``, ``DEL`` of the absent key ``chaosbot:probe:<run>``
    for ``write``, a write that changes nothing). If the probe is held back the clients are paused, whoever
    paused them.
    """

    name = "redis"
    Params = RedisParams
    self_expiring = True

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
            detail += "; note: an ALL pause cannot be reverted early, it only ends at its expiry"
        return Preflight(ok=True, detail=detail)

    def prepare(self, params: AdapterParams, *, run_id: str, duration: timedelta) -> FaultHandle:
        p = params_as(RedisParams, params)
        data = {"url": display_url(p.url), "mode": p.mode, "pause_ms": _milliseconds(duration)}
        return FaultHandle(adapter=self.name, run_id=run_id, data=data)

    def inject(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> FaultHandle:
        p = params_as(RedisParams, params)
        pause_ms = _milliseconds(duration)
        with _connection(p, p.timeout_seconds) as client:
            _run(client, p, "CLIENT", "PAUSE", pause_ms, p.mode.upper())
        data = {**handle.data, "pause_ms": pause_ms, "paused_at": utcnow().isoformat()}
        return replace(handle, data=data, expires_at=expiry(duration))

    def revert(self, params: AdapterParams, handle: FaultHandle) -> None:
        p = params_as(RedisParams, params)
        try:
            with _connection(p, p.timeout_seconds) as client:
                _run(client, p, "CLIENT", "UNPAUSE")
        except CommandTimedOut as exc:
            if p.mode == "all" and handle.expires_at is not None and not has_expired(handle.expires_at):
                raise AdapterError(
                    f"Redis at {display_url(p.url)} is paused in ALL mode and postpones every command, "
                    f"CLIENT UNPAUSE included; the pause ends by itself at {handle.expires_at.isoformat()}",
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


@contextmanager
def _connection(p: RedisParams, timeout: float) -> Iterator[redis.Redis]:
    """A fresh connection with no client-side retries: a retry would just wait out the pause silently."""
    client = redis.Redis.from_url(
        resolve_env(p.url),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    try:
        yield client
    finally:
        client.close()


def _run(client: redis.Redis, p: RedisParams, *command: Any) -> Any:
    where = f"Redis at {display_url(p.url)}"
    name = f"CLIENT {command[1]}" if command[0] == "CLIENT" else str(command[0])
    try:
        return client.execute_command(*command)
    except redis.TimeoutError as exc:
        raise CommandTimedOut(f"{where}: {name} got no answer in time", retryable=True) from exc
    except redis.AuthenticationError as exc:
        raise AdapterError(f"{where}: authentication failed ({exc})") from exc
    except redis.ConnectionError as exc:
        raise AdapterError(f"{where}: cannot connect ({exc})", retryable=True) from exc
    except redis.RedisError as exc:
        raise AdapterError(f"{where}: {name} was refused ({exc})") from exc


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
