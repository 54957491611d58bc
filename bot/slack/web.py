"""The WSGI application: Slack's endpoint, health and metrics. Served by gunicorn, never a dev server."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.trace import Span, SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import text

from bot.observability import ACK_SECONDS, metrics_registry
from bot.pools import Foreground
from bot.tracing import failed, span
from storage.db import Database

StartResponse = Callable[..., Any]
log = logging.getLogger(__name__)


def health(db: Database, redis: Any | None, stale: Callable[[], list[str]] | None = None) -> tuple[int, dict[str, Any]]:
    """200 unless the database is unreachable. Stale calendar feeds make it ``degraded``, not down: their
    last known freezes still hold."""
    report: dict[str, Any] = {}
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        report["database"] = "ok"
    except Exception as exc:
        report["database"] = f"unreachable: {type(exc).__name__}"
    if redis is not None:
        try:
            redis.ping()
            report["redis"] = "ok"
        except Exception as exc:
            report["redis"] = f"unreachable: {type(exc).__name__}"
    else:
        report["redis"] = "not configured"
    if stale is not None:
        try:
            sentences = stale()
        except Exception as exc:
            sentences = [f"calendar feeds unreadable: {type(exc).__name__}"]
        report["calendars"] = "ok" if not sentences else "degraded"
        if sentences:
            report["stale_calendars"] = sentences
    return (200 if report["database"] == "ok" else 503), report


class WebApp:
    def __init__(
        self,
        app: App,
        db: Database,
        redis: Any | None,
        *,
        stale: Callable[[], list[str]] | None = None,
        foreground: Foreground | None = None,
    ) -> None:
        self.slack = SlackRequestHandler(app)
        self.db = db
        self.redis = redis
        self.stale = stale  # the calendar feeds whose freezes are out of date (issue 8)
        self.metrics = metrics_registry(db)
        self.foreground = foreground or Foreground()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events" and method == "POST":
            started = time.perf_counter()
            try:
                with self.foreground.answering(), span("slack.request", kind=SpanKind.SERVER) as answering:
                    return self._slack_request(environ, _traced_status(start_response, answering))
            finally:
                ACK_SECONDS.observe(time.perf_counter() - started)
        if path == "/healthz":
            status, report = health(self.db, self.redis, self.stale)
            return _respond(start_response, status, json.dumps(report).encode(), "application/json")
        if path == "/metrics":
            return _respond(start_response, 200, generate_latest(self.metrics), CONTENT_TYPE_LATEST)
        return _respond(start_response, 404, b"not found\n", "text/plain")

    def _slack_request(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            refusal = _refuse_unreadable(environ)
            if refusal is not None:
                return _respond(start_response, *refusal)
            return self.slack(environ, _no_server_error(start_response))
        except Exception:  # a signed body of a shape Bolt cannot handle: the sender's fault, never a 500
            log.exception("could not handle a Slack request")
            return _respond(start_response, 400, b"bad request\n", "text/plain", exc_info=sys.exc_info())


def _traced_status(start_response: StartResponse, answering: Span) -> StartResponse:
    """The response's status on the request's span."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        code = int(status.split(" ", 1)[0])
        answering.set_attribute("http.response.status_code", code)
        if code >= 500:
            failed(answering, status)
        return start_response(status, headers, exc_info)

    return start


def _no_server_error(start_response: StartResponse) -> StartResponse:
    """Bolt answers 500 when a signed body has a shape it cannot handle (it logs the error): that is the
    sender's fault, and a 500 would only make Slack send it again."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if status.startswith("500"):
            log.warning("Bolt could not handle a Slack request; answered 400")
            status = "400 Bad Request"
        return start_response(status, headers, exc_info)

    return start


def _refuse_unreadable(environ: dict[str, Any]) -> tuple[int, bytes, str] | None:
    """Bodies that are not UTF-8 and timestamps that are not a number cannot be verified: answer before Bolt."""
    length = environ.get("CONTENT_LENGTH") or "0"
    body = environ["wsgi.input"].read(int(length)) if length.isdigit() else b""
    environ["wsgi.input"] = io.BytesIO(body)
    if not environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "").isdigit():
        return 401, b"invalid request\n", "text/plain"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return 400, b"the body is not UTF-8\n", "text/plain"
    return None


def _respond(
    start_response: StartResponse, status: int, body: bytes, content_type: str, *, exc_info: Any = None
) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    start_response(f"{status} {reason.get(status, '')}", headers, exc_info)
    return [body]
