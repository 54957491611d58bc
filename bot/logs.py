"""Structured logs, shared by every entry point: JSON or text lines, run context, secrets redacted.

Kept apart from the metrics so gunicorn's master, which only formats log lines, imports no more than this."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_CONTEXT_FIELDS = ("run_id", "user", "request_kind", "error_id", "trace_id", "span_id")
_context: ContextVar[dict[str, Any]] = ContextVar("chaosbot_log_context", default={})  # noqa: B039 - never mutated


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every log line inside carries these fields (run_id, user), unless the call site gives its own."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


_SECRETS = [
    (re.compile(r"xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+"), "[redacted]"),
    # Slack's legacy verification token rides in every payload; Bolt logs whole bodies it refuses.
    (re.compile(r"(\btoken=)[^&\s]+"), r"\1[redacted]"),
    (re.compile(r"(%22token%22%3A%22)[^%]+"), r"\1[redacted]"),
    (re.compile(r'("token"\s*:\s*")[^"]+'), r"\1[redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class _RedactFilter(logging.Filter):
    """Tokens never reach a log line, whoever logs them (our code, Bolt, slack_sdk, gunicorn)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in {**_context.get(), **_span_ids()}.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def _span_ids() -> dict[str, str]:
    """The current span's trace and span ids, as trace viewers print them; none outside a sampled span.

    Looked up only when the tracing API is loaded: gunicorn's master imports this module and never traces."""
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return {}
    context = api.get_current_span().get_span_context()
    if not (context.is_valid and context.trace_flags.sampled):  # an unsampled trace is in no viewer
        return {}
    return {"trace_id": api.format_trace_id(context.trace_id), "span_id": api.format_span_id(context.span_id)}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the run id and Slack user whenever the call site gave them."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{name}={getattr(record, name)}" for name in _CONTEXT_FIELDS if hasattr(record, name))
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line} [{context}]" if context else line
        return line + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


def resolved_format(fmt: str) -> str:
    if fmt == "auto":
        return "text" if sys.stderr.isatty() else "json"
    return fmt


def configure_logging(fmt: str, level: str) -> None:
    fmt = resolved_format(fmt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    handler.addFilter(_RedactFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # slack_sdk logs request bodies at DEBUG, and bodies can carry tokens in form posts.
    logging.getLogger("slack_sdk").setLevel(max(logging.INFO, logging.getLevelName(level)))
    # APScheduler reports every job run at INFO: every few seconds, forever.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO, and adapter, calendar and backlog URLs may carry `${VAR}` secrets.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def gunicorn_log_config(fmt: str, level: str = "INFO") -> dict[str, Any]:
    """A whole logging config for gunicorn, which applies it in each worker: our format for every line."""
    formatter = "bot.logs.JsonFormatter" if fmt != "text" else "bot.logs.TextFormatter"
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "chaosbot",
        "filters": ["context", "redact"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"chaosbot": {"()": formatter}},
        "filters": {
            "context": {"()": "bot.logs._ContextFilter"},
            "redact": {"()": "bot.logs._RedactFilter"},
        },
        "handlers": {"console": handler, "error_console": handler},
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": ["console"], "propagate": False},
            "apscheduler": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},
        },
    }
