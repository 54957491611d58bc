"""A real Alertmanager (Debian's ``prometheus-alertmanager``) on a free local port, with its own config and data.

``push`` sends alerts the way Prometheus does (``POST /api/v2/alerts``), so a test can make something page
without a rule; ``silences`` reads back what chaosbot created.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.engine.prometheus_server import free_port
from tests.services import REQUIRE_SERVICES

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
CONFIG = """\
route:
  receiver: nobody
  group_wait: 0s
receivers:
  - name: nobody
"""


class AlertmanagerServer:
    def __init__(self, workdir: Path) -> None:
        assert BINARY is not None, "prometheus-alertmanager is not installed"
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / "alertmanager.yml").write_text(CONFIG, encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        argv = [
            str(BINARY),
            f"--config.file={self.workdir / 'alertmanager.yml'}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]
        log = (self.workdir / "alertmanager.log").open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v2/status", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"alertmanager did not start: {(self.workdir / 'alertmanager.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def push(self, **labels: str) -> None:
        now = datetime.now(UTC)
        alert = {"labels": labels, "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=5)).isoformat()}
        assert httpx.post(f"{self.url}/api/v2/alerts", json=[alert], timeout=5).status_code == 200

    def silences(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v2/silences", timeout=5).json()
        assert isinstance(answer, list)
        return answer


def running_alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    """A module's Alertmanager (skipped when the binary is missing, failed instead in CI)."""
    if BINARY is None:
        if REQUIRE_SERVICES:
            pytest.fail("prometheus-alertmanager is not installed; CHAOSBOT_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
    server = AlertmanagerServer(Path(tmp_path_factory.mktemp("alertmanager")))
    yield server
    server.stop()
