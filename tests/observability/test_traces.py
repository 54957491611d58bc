"""Traces in one process: a Slack call is a span named by its method and holding no token or text; log lines
inside a span carry its ids; work handed to our pools and the outbox stays in the trace of whoever handed it
over; without an endpoint, nothing of the SDK is loaded. (One abort through the real server, from the request
to the revert: ``tests/slack/test_traces.py``.)"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from bot.interface.kit import notice
from bot.interface.outbox import Outbox
from bot.interface.surface import DeliveryFailed
from bot.logs import JsonFormatter, _ContextFilter
from bot.pools import worker_pools
from bot.slack.client import SlackSurface, web_client
from bot.tracing import span
from tests.fakeslack import identity
from tests.fakeslack.server import FakeSlack
from tests.tracing import named, recorded_spans
from tests.waiting import wait_until

SAID = "the quarterly cache drill starts at noon"  # a message's text: never in a span


def every_value(spans: list[ReadableSpan]) -> str:
    return json.dumps([{**dict(s.attributes or {}), "name": s.name} for s in spans], default=str)


def test_a_slack_post_is_a_span_named_by_its_method_without_the_token_or_the_text(slack: FakeSlack) -> None:
    surface = SlackSurface(web_client(identity.BOT_TOKEN, slack.url, retry_backoff=0.01))
    with recorded_spans() as exporter:
        surface.post(identity.DEFAULT_CHANNEL_ID, notice(SAID))
        slack.fail_next("chat.update", status=200, error="message_not_found")
        with pytest.raises(DeliveryFailed):
            surface.update(identity.DEFAULT_CHANNEL_ID, "1.000001", notice(SAID))
        spans = list(exporter.get_finished_spans())

    (posted,) = named(spans, "slack.chat.postMessage")
    assert posted.kind is SpanKind.CLIENT
    assert dict(posted.attributes or {}) == {"slack.method": "chat.postMessage", "http.response.status_code": 200}
    (refused,) = named(spans, "slack.chat.update")
    assert refused.attributes is not None and refused.attributes["slack.error"] == "message_not_found"
    assert refused.status.status_code is StatusCode.ERROR
    assert identity.BOT_TOKEN not in every_value(spans) and SAID not in every_value(spans)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_ContextFilter())
    logger = logging.getLogger("chaosbot.test.traces")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def test_log_lines_inside_a_span_carry_its_trace_and_span_ids(json_lines: io.StringIO) -> None:
    log = logging.getLogger("chaosbot.test.traces")
    with recorded_spans():
        log.info("before any span")
        with span("engine.abort", run_id=7) as aborting:
            log.info("reverting")
        ids = aborting.get_span_context()

    before, inside = (json.loads(line) for line in json_lines.getvalue().splitlines())
    assert "trace_id" not in before and "span_id" not in before
    assert inside["trace_id"] == format_trace_id(ids.trace_id)
    assert inside["span_id"] == format_span_id(ids.span_id)


def a_span(name: str, then: Callable[[], object] = lambda: None) -> Callable[[], None]:
    def work() -> None:
        with span(name):
            pass
        then()

    return work


def test_work_handed_to_the_pools_and_the_outbox_stays_in_the_trace_that_handed_it_over() -> None:
    pools = worker_pools(quiet_gap=0.0)
    outbox = Outbox()
    delivered = threading.Event()
    try:
        with recorded_spans() as exporter:
            with span("slack.request") as request:
                pools.urgent(a_span("in the urgent pool"))
                pools.work(a_span("in the work pool"))
                outbox.queue("C1", a_span("on the outbox's sender", then=delivered.set))
            wait_until(delivered.is_set, what="the outbox's letter delivered")
            spans = wait_until(lambda: s if len(s := exporter.get_finished_spans()) == 4 else None, what="4 spans")
    finally:
        pools.close()
        outbox.close()

    request_id = request.get_span_context().span_id
    for name in ("in the urgent pool", "in the work pool", "on the outbox's sender"):
        (handed,) = named(spans, name)
        assert handed.parent is not None and handed.parent.span_id == request_id, name
        assert handed.context.trace_id == request.get_span_context().trace_id


PROBE_A_WORKER = """
import json, sys
from bot.settings import load_settings
from bot.slack.serve import build
from opentelemetry import trace

runtime, _app = build(load_settings())  # what a gunicorn worker does before it serves
try:
    print(json.dumps({
        "provider": type(trace.get_tracer_provider()).__name__,
        "loaded": sorted({m.split(".")[1] for m in sys.modules if m.startswith("opentelemetry.")}),
    }))
finally:
    runtime.close()
"""


def test_without_an_endpoint_no_sdk_provider_is_installed_and_nothing_of_the_sdk_is_imported(
    tmp_path: Path, slack: FakeSlack
) -> None:
    from storage.migrate import upgrade

    database = f"sqlite:///{tmp_path / 'chaosbot.db'}"
    upgrade(database)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SLACK_", "CHAOSBOT_", "REDIS_URL"))}
    env.update(
        DATABASE_URL=database,
        SLACK_BOT_TOKEN=identity.BOT_TOKEN,
        SLACK_SIGNING_SECRET=identity.SIGNING_SECRET,
        SLACK_API_URL=slack.url,
        CHAOSBOT_SPOOL_DIR=str(tmp_path / "spool"),
        CHAOSBOT_LOG_FORMAT="json",
    )
    probe = subprocess.run(
        [sys.executable, "-c", PROBE_A_WORKER], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert seen["provider"] == "ProxyTracerProvider"  # the API's own: every span is a no-op
    assert "sdk" not in seen["loaded"] and "exporter" not in seen["loaded"]
