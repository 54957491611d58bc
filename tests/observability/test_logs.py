"""Structured logs carry the run and the Slack user wherever the code knows them, and never a token."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from bot.logs import JsonFormatter, _ContextFilter, _RedactFilter, gunicorn_log_config, log_context


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_ContextFilter())
    handler.addFilter(_RedactFilter())
    logger = logging.getLogger("chaosbot.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_inside_a_context_carry_its_run_and_user(captured: io.StringIO) -> None:
    log = logging.getLogger("chaosbot.test")
    with log_context(user="U0RELIAB"), log_context(run_id=42):
        log.info("approved")
    log.info("outside")

    inside, outside = lines(captured)
    assert (inside["run_id"], inside["user"], inside["message"]) == (42, "U0RELIAB", "approved")
    assert "run_id" not in outside and "user" not in outside


def test_a_call_site_value_wins_over_the_context(captured: io.StringIO) -> None:
    with log_context(run_id=1):
        logging.getLogger("chaosbot.test").warning("other run", extra={"run_id": 2})

    assert lines(captured)[0]["run_id"] == 2


def test_exceptions_are_one_json_line_with_the_traceback(captured: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("chaosbot.test").exception("failed")

    (line,) = lines(captured)
    assert line["level"] == "error" and "RuntimeError: boom" in str(line["exception"])


def test_gunicorn_lines_use_the_same_formatter() -> None:
    config = gunicorn_log_config("json")
    assert config["formatters"]["chaosbot"]["()"] == "bot.logs.JsonFormatter"
    assert config["loggers"]["gunicorn.error"]["handlers"] == ["error_console"]
    assert config["handlers"]["console"]["filters"] == ["context", "redact"]
    logging.config.dictConfig(config)  # what gunicorn does with it in each worker: must not raise
    logging.getLogger().handlers[:] = []


def test_tokens_in_logged_request_bodies_are_redacted(captured: io.StringIO) -> None:
    log = logging.getLogger("chaosbot.test")
    form = "token=verif123secret&team_id=T1&user_id=U1&text=help"
    quoted = "payload=%7B%22type%22%3A%22block_actions%22%2C%22token%22%3A%22verif123secret%22%7D"
    log.info("Invalid request signature detected (body: %s)", form)
    log.info("body: %s", quoted)
    log.info('json {"token": "verif123secret", "user": "U1"} and xoxb-111-222-abc and xapp-1-A1-xyz')

    text = captured.getvalue()
    assert "verif123secret" not in text and "xoxb-111" not in text and "xapp-1-A1" not in text
    assert "token=[redacted]&team_id=T1&user_id=U1&text=help" in text  # the rest stays readable
    assert "%22token%22%3A%22[redacted]" in text
