"""A real Prometheus server (Debian's ``prometheus`` binary) scraping a tiny exporter the test controls.

``Exporter`` serves ``/metrics`` in the Prometheus text format from ``values`` (a number, or a callable read at
each scrape, so a metric can follow the lab's fault). ``PrometheusServer`` runs the binary on a free local port
with a temporary configuration and storage directory, scraping the exporter every second.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

SCRAPE_INTERVAL_SECONDS = 1
Value = float | Callable[[], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Exporter:
    """``values`` maps a metric name (gauge) to its value; remove a name and the series goes stale."""

    def __init__(self) -> None:
        self.values: dict[str, Value] = {}
        self.scrapes = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def text(self) -> str:
        """A name may carry labels (``lab_errors{team="a"}``); its family is typed once."""
        lines, typed = [], set()
        for name, value in sorted(dict(self.values).items()):
            number = value() if callable(value) else value
            family = name.split("{", 1)[0]
            if family not in typed:
                typed.add(family)
                lines.append(f"# TYPE {family} gauge")
            lines.append(f"{name} {number:g}")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(exporter: Exporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_response(404)
                self.end_headers()
                return
            body = exporter.text().encode()
            exporter.scrapes += 1
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


CONFIG = """\
global:
  scrape_interval: {interval}s
  scrape_timeout: {interval}s
  evaluation_interval: {interval}s
scrape_configs:
  - job_name: lab
    static_configs:
      - targets: ["{target}"]
"""


ALERTING = """\
rule_files: ["{rules}"]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{alertmanager}"]
"""


class PrometheusServer:
    """The real server, started from ``binary`` in ``workdir``; ``url`` is what a stop condition names.

    With ``rules`` (a rule file's text) and ``alertmanager`` (``host:port``), it evaluates the rules every
    second and sends what fires to that Alertmanager, as a team's Prometheus does."""

    def __init__(
        self, binary: str, workdir: Path, exporter: Exporter, *, rules: str = "", alertmanager: str = ""
    ) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        text = CONFIG.format(interval=SCRAPE_INTERVAL_SECONDS, target=exporter.address)
        if rules:
            (workdir / "rules.yml").write_text(rules)
            text += ALERTING.format(rules=workdir / "rules.yml", alertmanager=alertmanager)
        config.write_text(text)
        self.log = workdir / "prometheus.log"
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus was not ready within {timeout} s: {self.tail()}")

    def value(self, query: str) -> float | None:
        """The query's first value now, or None when it has no data."""
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=5).json()
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, query: str, expected: float | None, timeout: float = 10.0) -> None:
        """Wait until Prometheus has scraped what the exporter now serves (a scrape happens every second)."""
        deadline = time.monotonic() + timeout
        while (seen := self.value(query)) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"{query} stayed {seen}, expected {expected} within {timeout} s")
            time.sleep(0.1)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or next(
        (path for path in ("/usr/bin/prometheus", "/usr/sbin/prometheus") if Path(path).is_file()), None
    )
