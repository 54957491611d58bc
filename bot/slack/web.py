"""The WSGI application: Slack's endpoint, health and metrics. Served by gunicorn, never a dev server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import text

from bot.observability import ACK_SECONDS, metrics_registry
from storage.db import Database

StartResponse = Callable[..., Any]


def health(db: Database, redis: Any | None) -> tuple[int, dict[str, Any]]:
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
    return (200 if report["database"] == "ok" else 503), report


class WebApp:
    def __init__(self, app: App, db: Database, redis: Any | None) -> None:
        self.slack = SlackRequestHandler(app)
        self.db = db
        self.redis = redis
        self.metrics = metrics_registry(db)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events" and method == "POST":
            started = time.perf_counter()
            try:
                return self.slack(environ, start_response)
            finally:
                ACK_SECONDS.observe(time.perf_counter() - started)
        if path == "/healthz":
            status, report = health(self.db, self.redis)
            return _respond(start_response, status, json.dumps(report).encode(), "application/json")
        if path == "/metrics":
            return _respond(start_response, 200, generate_latest(self.metrics), CONTENT_TYPE_LATEST)
        return _respond(start_response, 404, b"not found\n", "text/plain")


def _respond(start_response: StartResponse, status: int, body: bytes, content_type: str) -> list[bytes]:
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "")
    start_response(f"{status} {reason}", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
