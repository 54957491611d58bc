"""Shared plumbing for the fake backends the adapter tests talk to over real HTTP.

A fake backend subclasses ``FakeBackend`` and implements ``route``; ``running`` serves it from a
``ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a background thread. Every call is recorded, and
``fail_next`` makes the next calls answer an error status (to prove retries).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def not_found(what: str = "not found") -> Reply:
    return Reply(404, {"message": what})


class FakeBackend:
    """Records calls and answers them through ``route``; thread-safe through one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self._failures: list[int] = []

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self._failures.clear()

    def fail_next(self, *statuses: int) -> None:
        with self.lock:
            self._failures.extend(statuses)

    def dispatch(self, call: Call) -> Reply:
        with self.lock:
            self.calls.append(call)
            if self._failures:
                return Reply(self._failures.pop(0), {"message": "injected failure"})
            return self.route(call)

    def route(self, call: Call) -> Reply:
        raise NotImplementedError

    def calls_to(self, method: str, path_prefix: str = "") -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        call = Call(
            method=self.command,
            path=unquote(parts.path),
            query=dict(parse_qsl(parts.query)),
            headers={key.lower(): value for key, value in self.headers.items()},
            body=_decode(raw),
        )
        self._reply(self.server.backend.dispatch(call))

    def _reply(self, reply: Reply) -> None:
        if isinstance(reply.body, str):
            payload, kind = reply.body.encode(), "text/plain"
        elif reply.body is None:
            payload, kind = b"", "text/plain"
        else:
            payload, kind = json.dumps(reply.body).encode(), "application/json"
        self.send_response(reply.status)
        if not any(key.lower() == "content-type" for key in reply.headers):
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend: FakeBackend) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.backend = backend


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


@dataclass(frozen=True)
class RunningServer:
    url: str
    backend: Any


@contextmanager
def running(backend: FakeBackend) -> Iterator[RunningServer]:
    server = _Server(backend)
    thread = threading.Thread(target=server.serve_forever, name=type(backend).__name__, daemon=True)
    thread.start()
    try:
        yield RunningServer(url=f"http://127.0.0.1:{server.server_address[1]}", backend=backend)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """An http URL on a port nothing listens on, so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
