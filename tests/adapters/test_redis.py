"""The redis adapter against a real, dedicated redis-server (never the shared one on 6379)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from adapters.base import AdapterParams, FaultHandle, FaultState, MissingSecretError
from adapters.redis import RENEW_EVERY, RedisAdapter
from tests.waiting import holds_for

PASSWORD = "redis-s3cr3t-password"
RUN = "RUN-1"
LONG = timedelta(seconds=30)
SLICE = 2.0  # the default
MARGIN = 0.6


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
    # Cancels any renewal a failed test left queued, then waits out the slice, so the next test starts unpaused.
    stray = FaultHandle(adapter="redis", run_id=RUN, data={"url": "${CE01_REDIS_URL}"})
    literal = f"redis://:{PASSWORD}@127.0.0.1:{redis_port}/0"  # the test may have unset the variable
    RedisAdapter().revert(RedisAdapter.validate(params(url=literal, mode="all")), stray)
    _client(redis_port, timeout=30).execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]  # redis-py


def params(**overrides: Any) -> dict[str, Any]:
    return {"url": "${CE01_REDIS_URL}", "mode": "write", "probe_timeout_seconds": 0.3} | overrides


def started(raw: dict[str, Any], duration: timedelta = LONG) -> tuple[RedisAdapter, Any, FaultHandle]:
    adapter = RedisAdapter()
    p = RedisAdapter.validate(raw)
    handle = adapter.inject(p, adapter.prepare(p, run_id=RUN, duration=duration), duration=duration)
    return adapter, p, handle


@contextmanager
def renewing(adapter: RedisAdapter, p: AdapterParams, handle: FaultHandle) -> Iterator[None]:
    """Plays the engine: renew every ``renew_every`` until the block ends (an abort stops renewing first)."""
    assert RedisAdapter.renew_every == RENEW_EVERY
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(RENEW_EVERY.total_seconds()):
            adapter.renew(p, handle, duration=LONG)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


class Waiter:
    """A new connection that sends PING at once and records when (monotonic) Redis answers it."""

    def __init__(self, port: int) -> None:
        self.answered_at: float | None = None
        self._thread = threading.Thread(target=self._ping, args=(port,), daemon=True)
        self._thread.start()

    def _ping(self, port: int) -> None:
        _client(port, timeout=60).ping()
        self.answered_at = time.monotonic()

    def wait(self, timeout: float = 30) -> float:
        self._thread.join(timeout)
        assert self.answered_at is not None, "PING never answered"
        return self.answered_at


def blocks(port: int, *command: Any) -> bool:
    """True when the command gets no answer in 0.3 s from a new connection (the server holds it back)."""
    try:
        _client(port).execute_command(*command)  # type: ignore[no-untyped-call]  # redis-py
    except redis.TimeoutError:
        return True
    return False


def test_preflight_checks_ping_and_version() -> None:
    result = RedisAdapter().preflight(RedisAdapter.validate(params()))
    assert result.ok and "supports CLIENT PAUSE/UNPAUSE" in result.detail
    assert PASSWORD not in result.detail
    all_mode = RedisAdapter().preflight(RedisAdapter.validate(params(mode="all")))
    assert all_mode.ok and "lifts within one slice (2 s)" in all_mode.detail


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


def test_all_pause_lifts_by_itself_when_nobody_renews_it(redis_port: int) -> None:
    adapter, p, handle = started(params(mode="all", slice_seconds=SLICE))
    injected = time.monotonic()
    assert handle.expires_at is not None and RedisAdapter.self_expiring
    assert blocks(redis_port, "GET", "cart:1")
    assert adapter.status(p, handle).state is FaultState.ACTIVE
    lifted = Waiter(redis_port).wait()
    # Inject queues the second slice at once, so that nothing slips through before the first renewal.
    assert 2 * SLICE - 0.2 < lifted - injected < 2 * SLICE + MARGIN
    assert adapter.status(p, handle).state is FaultState.REVERTED
    adapter.revert(p, handle)
    adapter.revert(p, handle)


def test_renewals_keep_an_all_pause_on_without_a_gap_and_an_abort_lifts_it_within_one_slice(
    redis_port: int,
) -> None:
    adapter, p, handle = started(params(mode="all", slice_seconds=SLICE))
    with renewing(adapter, p, handle):
        waiter = Waiter(redis_port)
        holds_for(lambda: waiter.answered_at is None, 3 * SLICE, "no PING through between two slices")
        assert adapter.status(p, handle).state is FaultState.ACTIVE
        aborted = time.monotonic()
    adapter.revert(p, handle)
    assert waiter.wait() - aborted < SLICE + MARGIN
    started_at = time.monotonic()
    _client(redis_port, timeout=5).ping()
    assert time.monotonic() - started_at < 0.2
    assert not blocks(redis_port, "SET", "cart:1", "x")


def test_renewals_never_pause_past_the_maximum_duration(redis_port: int) -> None:
    duration = timedelta(seconds=2.5)
    adapter, p, handle = started(params(mode="all", slice_seconds=SLICE), duration=duration)
    injected = time.monotonic()
    with renewing(adapter, p, handle):
        lifted = Waiter(redis_port).wait()
        assert 1.0 < lifted - injected < duration.total_seconds() + 0.3
        holds_for(lambda: not blocks(redis_port, "GET", "cart:1"), 2 * RENEW_EVERY.total_seconds(), "no pause again")


def test_a_renewal_after_revert_never_pauses_again(redis_port: int) -> None:
    adapter, p, handle = started(params(slice_seconds=SLICE))
    adapter.revert(p, handle)
    adapter.renew(p, handle, duration=LONG)
    adapter.renew(p, handle, duration=LONG)
    assert not blocks(redis_port, "SET", "cart:1", "x")


def test_write_pause_is_renewed_and_reverted_at_once(redis_port: int) -> None:
    adapter, p, handle = started(params(slice_seconds=SLICE))
    with renewing(adapter, p, handle):
        holds_for(
            lambda: blocks(redis_port, "SET", "cart:1", "x") and not blocks(redis_port, "GET", "cart:1"),
            2 * SLICE,
            "writes paused, reads answered, slice after slice",
        )
    reverting = time.monotonic()
    adapter.revert(p, handle)
    assert time.monotonic() - reverting < 0.5
    assert not blocks(redis_port, "SET", "cart:1", "x")


DYING_BOT = """
import sys, time
from datetime import timedelta
from adapters.redis import RedisAdapter
adapter = RedisAdapter()
p = RedisAdapter.validate({"url": "${CE01_REDIS_URL}", "mode": "all", "slice_seconds": %s})
duration = timedelta(minutes=5)
handle = adapter.inject(p, adapter.prepare(p, run_id="RUN-9", duration=duration), duration=duration)
print("injected", flush=True)
while True:
    time.sleep(1)
    adapter.renew(p, handle, duration=duration)
"""


def test_the_pause_heals_by_itself_within_one_slice_when_the_bot_dies(redis_port: int) -> None:
    bot = subprocess.Popen(
        [sys.executable, "-c", DYING_BOT % SLICE], stdout=subprocess.PIPE, env=os.environ.copy(), cwd=os.getcwd()
    )
    try:
        assert bot.stdout is not None and bot.stdout.readline().strip() == b"injected"
        holds_for(lambda: blocks(redis_port, "PING"), 2.5 * SLICE, "the pause kept on by the bot's renewals")
    finally:
        bot.send_signal(signal.SIGKILL)
        bot.wait(timeout=10)
    killed = time.monotonic()
    assert Waiter(redis_port).wait() - killed < SLICE + MARGIN


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
