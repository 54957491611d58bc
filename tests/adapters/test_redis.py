"""The redis adapter against a real, dedicated redis-server (never the shared one on 6379)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from adapters._common import utcnow
from adapters.base import AdapterError, FaultHandle, FaultState, MissingSecretError
from adapters.redis import RedisAdapter

PASSWORD = "redis-s3cr3t-password"
RUN = "RUN-1"
LONG = timedelta(seconds=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _client(port: int, timeout: float = 0.3, password: str = PASSWORD) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, password=password, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def _wait_until_up(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"redis-server exited with {process.returncode}")
        try:
            if _client(port).ping():
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    pytest.fail("redis-server did not start within 10 s")


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not on PATH and these tests need a real, dedicated Redis"
        if os.environ.get("CHAOSBOT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"CHAOSBOT_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    port = _free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*command, "--requirepass", PASSWORD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until_up(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(autouse=True)
def _env_and_cleanup(redis_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CE01_REDIS_URL", f"redis://:{PASSWORD}@127.0.0.1:{redis_port}/0")
    yield
    # Waits out any ALL pause a test left behind, so the next test starts unpaused.
    _client(redis_port, timeout=30).execute_command("CLIENT", "UNPAUSE")


def params(**overrides: Any) -> dict[str, Any]:
    return {"url": "${CE01_REDIS_URL}", "mode": "write", "probe_timeout_seconds": 0.3} | overrides


def started(raw: dict[str, Any], duration: timedelta = LONG) -> tuple[RedisAdapter, Any, FaultHandle]:
    adapter = RedisAdapter()
    p = RedisAdapter.validate(raw)
    handle = adapter.inject(p, adapter.prepare(p, run_id=RUN, duration=duration), duration=duration)
    return adapter, p, handle


def blocks(port: int, *command: Any) -> bool:
    """True when the command gets no answer in 0.3 s from a new connection (the server holds it back)."""
    try:
        _client(port).execute_command(*command)
    except redis.TimeoutError:
        return True
    return False


def test_preflight_checks_ping_and_version() -> None:
    result = RedisAdapter().preflight(RedisAdapter.validate(params()))
    assert result.ok and "supports CLIENT PAUSE/UNPAUSE" in result.detail
    assert PASSWORD not in result.detail
    all_mode = RedisAdapter().preflight(RedisAdapter.validate(params(mode="all")))
    assert all_mode.ok and "cannot be reverted early" in all_mode.detail


def test_write_pause_blocks_writes_until_revert(redis_port: int) -> None:
    adapter, p, handle = started(params())
    assert not blocks(redis_port, "GET", "cart:1")
    assert blocks(redis_port, "SET", "cart:1", "x")
    assert adapter.status(p, handle).state is FaultState.ACTIVE
    adapter.revert(p, handle)
    assert not blocks(redis_port, "SET", "cart:1", "x")
    assert adapter.status(p, handle).state is FaultState.REVERTED
    adapter.revert(p, handle)


def test_revert_works_from_a_json_round_tripped_handle_in_a_fresh_instance(redis_port: int) -> None:
    _, _, handle = started(params())
    restored = FaultHandle.from_json(json.loads(json.dumps(handle.to_json())))
    RedisAdapter().revert(RedisAdapter.validate(params()), restored)
    assert not blocks(redis_port, "SET", "cart:1", "x")


def test_all_pause_blocks_everything_then_expires_by_itself(redis_port: int) -> None:
    adapter, p, handle = started(params(mode="all", timeout_seconds=0.3), duration=timedelta(seconds=1.5))
    assert handle.expires_at is not None and RedisAdapter.self_expiring
    assert blocks(redis_port, "GET", "cart:1")
    assert adapter.status(p, handle).state is FaultState.ACTIVE
    # Redis postpones CLIENT UNPAUSE itself during an ALL pause: revert says so and stays retryable.
    with pytest.raises(AdapterError) as failure:
        adapter.revert(p, handle)
    assert failure.value.retryable and "ends by itself" in failure.value.message
    time.sleep(max(0.0, (handle.expires_at - utcnow()).total_seconds()) + 0.2)
    assert not blocks(redis_port, "GET", "cart:1")
    assert adapter.status(p, handle).state is FaultState.EXPIRED
    adapter.revert(p, handle)
    adapter.revert(p, handle)


def test_the_password_never_reaches_the_handle() -> None:
    _, _, handle = started(params())
    assert PASSWORD not in json.dumps(handle.to_json())
    assert handle.data["url"] == "${CE01_REDIS_URL}"


def test_missing_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CE01_REDIS_URL")
    with pytest.raises(MissingSecretError) as failure:
        started(params())
    assert failure.value.variable == "CE01_REDIS_URL"


def test_preflight_fails_clearly_when_unreachable() -> None:
    raw = params(url=f"redis://127.0.0.1:{_free_port()}/0", timeout_seconds=0.5)
    result = RedisAdapter().preflight(RedisAdapter.validate(raw))
    assert not result.ok and "cannot connect" in result.detail


def test_preflight_reports_a_wrong_password(redis_port: int) -> None:
    raw = params(url=f"redis://:wrong-password@127.0.0.1:{redis_port}/0")
    result = RedisAdapter().preflight(RedisAdapter.validate(raw))
    assert not result.ok and "authentication failed" in result.detail
    assert "wrong-password" not in result.detail
