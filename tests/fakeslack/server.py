"""FakeSlack: a local, recording stand-in for the Slack Web API served over real HTTP."""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import identity
from .api import JSON, FakeFile, SlackApi, SlackError, SlackState
from .blockkit import validate_blocks

# Params Slack accepts as JSON-encoded strings in form bodies; recorded decoded so tests can inspect them.
JSON_PARAMS = ("blocks", "view", "attachments", "files", "metadata")
_SERVER_ERRORS = {500: "internal_error", 503: "service_unavailable"}


@dataclass(frozen=True)
class Call:
    """One HTTP request the fake received, with what it answered."""

    method: str
    params: JSON
    headers: dict[str, str]
    time: float
    status: int
    response: JSON

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class _Failure:
    status: int
    retry_after: int
    error: str | None
    remaining: int


@dataclass
class _Reply:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


class FakeSlack:
    """Slack Web API fake. ``url`` is what the app should use as ``SLACK_API_URL``."""

    UPLOAD = "files.upload"  # recorded method name of POSTs to upload URLs
    RESPONSE_URL = "response_url"  # recorded method name of POSTs to response URLs

    def __init__(self, *, tokens: Iterable[str] = (identity.BOT_TOKEN,), strict: bool = False) -> None:
        self.tokens = tuple(tokens)
        self.strict = strict
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._calls: list[Call] = []
        self._in_flight = 0  # API calls received and not yet answered (e.g. held by injected latency)
        self._failures: dict[str, list[_Failure]] = {}
        self._latency: dict[str | None, float] = {}
        self._healed = threading.Event()  # set by heal(): the answers held back by latency go out at once
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._state = SlackState(strict=strict)
        self._api = SlackApi(self._state, upload_base="")
        self.app_tokens: tuple[str, ...] = (identity.APP_TOKEN,)
        #: Serves apps.connections.open: returns a Socket Mode URL (see tests/slack/socket_mode_peer.py).
        self.socket_mode_url: Callable[[], str] | None = None

    # -- core ----------------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._api.upload_base = f"{self.root_url}/upload/v1/"
        self._thread = threading.Thread(target=server.serve_forever, name="fakeslack", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """Base URL of the Web API, ending in ``/api/`` as slack_sdk's ``base_url`` expects."""
        return f"{self.root_url}/api/"

    @property
    def token(self) -> str:
        """A valid bot token (the first configured one)."""
        return self.tokens[0]

    def reset(self) -> None:
        """Forget calls, failures, latency and all workspace state (users/channels back to defaults)."""
        with self._lock:
            self._calls.clear()
            self._failures.clear()
            self._latency.clear()
            self._state = SlackState(strict=self.strict)
            upload_base = self._api.upload_base
            self._api = SlackApi(self._state, upload_base=upload_base)
            healed, self._healed = self._healed, threading.Event()
        healed.set()

    def heal(self) -> None:
        """Stop failing and answer at full speed again; calls and workspace state are kept."""
        with self._lock:
            self._failures.clear()
            self._latency.clear()
            healed, self._healed = self._healed, threading.Event()
        healed.set()

    # -- recorded calls -----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """API calls received and not answered yet: they are recorded only once answered."""
        with self._lock:
            return self._in_flight

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def last(self, method: str) -> Call:
        calls = self.calls(method)
        if not calls:
            raise AssertionError(f"no {method} call recorded; got {self._summary()}")
        return calls[-1]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,
        predicate: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Block until ``count`` calls of ``method`` (matching ``predicate``) arrived; return them."""

        def matching() -> list[Call]:
            return [c for c in self._calls if c.method == method and (predicate is None or predicate(c))]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout=timeout):
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {count} {method} call(s); got {self._summary()}"
                )
            return matching()

    def _summary(self) -> str:
        return ", ".join(f"{c.method}({c.status})" for c in self._calls) or "no calls"

    def _record(self, call: Call) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    # -- fault injection ----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int = 1,
        times: int = 1,
        error: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (``"*"`` = any) with an HTTP error.

        429 carries ``Retry-After`` and ``ratelimited``; 500/503 carry ``internal_error`` /
        ``service_unavailable``; ``status=200, error="..."`` gives a plain ``ok: false`` answer.
        """
        with self._lock:
            self._failures.setdefault(method, []).append(_Failure(status, retry_after, error, times))

    def set_latency(self, seconds: float, method: str | None = None) -> None:
        """Delay every response (or only ``method``'s) by ``seconds``."""
        with self._lock:
            self._latency[method] = seconds

    def _take_failure(self, method: str) -> _Reply | None:
        with self._lock:
            queue = self._failures.get(method) or self._failures.get("*")
            if not queue:
                return None
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.pop(0)
        return _failure_reply(failure)

    def _hold(self, method: str) -> None:
        """Wait out the latency set for ``method``, or until ``heal``."""
        with self._lock:
            delay, healed = self._latency.get(method, self._latency.get(None, 0.0)), self._healed
        if delay:
            healed.wait(delay)

    # -- workspace setup ----------------------------------------------------------------------------

    def add_user(self, user_id: str, name: str | None = None, **attrs: Any) -> JSON:
        """Add a users.info entry; ``attrs`` override fields such as ``is_admin``, ``deleted``, ``tz``."""
        with self._lock:
            return copy.deepcopy(self._state.add_user(user_id, name, **attrs))

    def add_channel(self, channel_id: str, name: str | None = None, **attrs: Any) -> JSON:
        """Add a channel; ``is_member=False`` makes posting fail with ``not_in_channel`` until joined."""
        with self._lock:
            return copy.deepcopy(self._state.add_channel(channel_id, name, **attrs))

    def set_usergroup(self, usergroup_id: str, members: Iterable[str]) -> None:
        with self._lock:
            self._state.usergroups[usergroup_id] = list(members)

    def expire_trigger(self, trigger_id: str) -> None:
        with self._lock:
            self._state.expired_triggers.add(trigger_id)

    def use_trigger(self, trigger_id: str) -> None:
        with self._lock:
            self._state.used_triggers.add(trigger_id)

    def response_url(self) -> str:
        """A fresh response_url served by this fake; POSTs to it are recorded as ``RESPONSE_URL`` calls."""
        return f"{self.root_url}/hooks/commands/{identity.TEAM_ID}/{time.time_ns()}/{secrets.token_hex(12)}"

    # -- workspace inspection -----------------------------------------------------------------------

    def messages(self, channel: str) -> list[JSON]:
        """Current messages of ``channel`` in posting order, thread replies included, updates applied."""
        with self._lock:
            return copy.deepcopy(self._state.messages.get(channel, []))

    def message(self, channel: str, ts: str) -> JSON:
        with self._lock:
            return copy.deepcopy(self._state.find_message(channel, ts))

    def replies(self, channel: str, thread_ts: str) -> list[JSON]:
        return [m for m in self.messages(channel) if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts]

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[JSON]:
        with self._lock:
            found = self._state.ephemerals
            return copy.deepcopy([m for m in found if channel in (None, m["channel"]) and user in (None, m["to_user"])])

    def views(self) -> list[JSON]:
        with self._lock:
            return copy.deepcopy(list(self._state.views.values()))

    def view(self, view_id: str) -> JSON:
        """A stored modal/home view by its id or external_id."""
        with self._lock:
            for view in self._state.views.values():
                if view_id in (view["id"], view.get("external_id")):
                    return copy.deepcopy(view)
        raise KeyError(view_id)

    def home_view(self, user_id: str) -> JSON | None:
        with self._lock:
            view_id = self._state.home_views.get(user_id)
            return copy.deepcopy(self._state.views[view_id]) if view_id else None

    def files(self) -> list[FakeFile]:
        with self._lock:
            return [copy.deepcopy(f) for f in self._state.files.values()]

    # -- request handling (called from server threads) ----------------------------------------------

    def handle_api(self, method: str, params: JSON, headers: dict[str, str]) -> _Reply:
        with self._lock:
            self._in_flight += 1
        try:
            self._hold(method)
            reply = self._take_failure(method) or self._authorized_call(method, params, headers)
            # Snapshot: handlers store params' blocks/views in workspace state, which later calls mutate.
            call = Call(method, copy.deepcopy(params), headers, time.time(), reply.status, copy.deepcopy(reply.body))
            self._record(call)
        finally:
            with self._lock:
                self._in_flight -= 1
        return reply

    def _authorized_call(self, method: str, params: JSON, headers: dict[str, str]) -> _Reply:
        token = _bearer(headers) or params.get("token")
        if not token:
            return _Reply(200, SlackError("not_authed").body())
        if method == "apps.connections.open" or token in self.app_tokens:
            return _Reply(200, self._connections_open(method, token))
        if token not in self.tokens:
            return _Reply(200, SlackError("invalid_auth").body())
        with self._lock:
            try:
                return _Reply(200, self._api.call(method, params))
            except SlackError as error:
                return _Reply(200, error.body())

    def _connections_open(self, method: str, token: str) -> JSON:
        """Slack accepts app-level tokens for apps.connections.open only, and only them there."""
        if token not in (*self.app_tokens, *self.tokens):
            return SlackError("invalid_auth").body()
        if method != "apps.connections.open" or token not in self.app_tokens:
            return SlackError("not_allowed_token_type").body()
        if self.socket_mode_url is None:
            return SlackError("socket_mode_not_enabled").body()  # hypothetical code: nothing serves the socket
        return {"ok": True, "url": self.socket_mode_url()}

    def handle_upload(self, key: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        self._hold(self.UPLOAD)
        content = _multipart_file(body, headers.get("content-type", "")) or body
        with self._lock:
            file = self._api.receive_upload(key, content)
        status, text = (200, f"OK - {len(content)}") if file else (404, "file not found")
        params = {"file_id": file.id if file else None, "size": len(content)}
        self._record(Call(self.UPLOAD, params, headers, time.time(), status, {"ok": file is not None}))
        return status, text

    def handle_response_url(self, path: str, params: JSON, headers: dict[str, str]) -> _Reply:
        errors = validate_blocks(params["blocks"], surface="message") if "blocks" in params else []
        body: JSON = {"ok": False, "error": "invalid_blocks", "errors": errors} if errors else {"ok": True}
        reply = _Reply(400 if errors else 200, body)
        self._record(Call(self.RESPONSE_URL, {**params, "path": path}, headers, time.time(), reply.status, body))
        return reply


def _failure_reply(failure: _Failure) -> _Reply:
    if failure.status == 429:
        return _Reply(
            429, {"ok": False, "error": failure.error or "ratelimited"}, {"Retry-After": str(failure.retry_after)}
        )
    error = failure.error or _SERVER_ERRORS.get(failure.status, "fatal_error")
    return _Reply(failure.status, {"ok": False, "error": error})


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _multipart_file(body: bytes, content_type: str) -> bytes | None:
    if not content_type.startswith("multipart/"):
        return None
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in message.iter_parts():  # type: ignore[attr-defined]
        if part.get_filename():
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


def parse_params(query: str, body: bytes, content_type: str) -> JSON:
    """Merge query-string and body params; JSON-string params are decoded when they parse."""
    params: JSON = dict(parse_qsl(query, keep_blank_values=True))
    if body and content_type.startswith("application/json"):
        decoded = json.loads(body)
        params.update(decoded if isinstance(decoded, dict) else {})
    elif body:
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    for key in JSON_PARAMS:
        if isinstance(params.get(key), str):
            # An undecodable value stays a string; the method then answers invalid_*_format.
            with contextlib.suppress(ValueError):
                params[key] = json.loads(params[key])
    return params


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeSlack/1.0"

    @property
    def fake(self) -> FakeSlack:
        return self.server.fake  # type: ignore[attr-defined, no-any-return]

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean; Call records are the log

    def _route(self) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if parts.path.startswith("/api/"):
            self._api(parts.path[len("/api/") :], parts.query, body, headers)
        elif parts.path.startswith("/upload/v1/") and self.command == "POST":
            status, text = self.fake.handle_upload(parts.path.rsplit("/", 1)[-1], body, headers)
            self._send(status, text.encode(), "text/plain; charset=utf-8")
        elif parts.path.startswith("/hooks/") and self.command == "POST":
            params = _loads_object(body)
            reply = self.fake.handle_response_url(parts.path, params, headers)
            self._send_json(reply)
        else:
            self._send(404, b"not found", "text/plain")

    def _api(self, method: str, query: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            params = parse_params(query, body, headers.get("content-type", ""))
        except ValueError:
            self._send_json(_Reply(200, {"ok": False, "error": "invalid_json"}))
            return
        self._send_json(self.fake.handle_api(method, params, headers))

    def _send_json(self, reply: _Reply) -> None:
        body = json.dumps(reply.body).encode()
        self._send(reply.status, body, "application/json; charset=utf-8", reply.headers)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired during injected latency)


def _loads_object(body: bytes) -> JSON:
    try:
        decoded = json.loads(body or b"{}")
    except ValueError:
        return {"raw": body.decode("utf-8", "replace")}
    return decoded if isinstance(decoded, dict) else {"raw": decoded}
