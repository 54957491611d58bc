"""A dedicated redis-server on a free port that a test can stop and start again on the same port (never the
shared one on 6379): the bot's own CE-01."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis

from tests.services import REQUIRE_SERVICES


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            reason = "redis-server is not on PATH and this test stops and starts its own Redis"
            if REQUIRE_SERVICES:
                pytest.fail(f"CHAOSBOT_REQUIRE_SERVICES=1 but {reason}")
            pytest.skip(reason)
        self.binary = binary
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1)

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        pytest.fail("redis-server did not start within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def keys(self, pattern: str) -> list[str]:
        with self.client() as client:
            return sorted(key.decode() for key in client.keys(pattern))
