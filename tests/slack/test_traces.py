"""Traces from the real server: ``chaosbot serve`` with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set exports over OTLP/HTTP
to a local collector (``tests/otlp.py``), and one ``/chaos abort RUN-n`` is one trace from the HTTP request to
the revert: through the kill switch's pool, the engine, the adapter and the Slack calls that tell people. A
collector that is down costs the server nothing a person would notice."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.fakeslack import identity
from tests.fakeslack.server import FakeSlack
from tests.otlp import FAST_EXPORT, Collector, ExportedSpan, collector
from tests.slack.conftest import RELIABILITY, Bot, ChaosbotServer, ServerRegistry, _bot
from tests.waiting import wait_until

SERVICE = "chaosbot-under-test"
REASON = "mirror ball seven"  # typed by a person: in messages, never in a span
SERVER_KIND, CLIENT_KIND = 2, 3  # OTLP's SpanKind numbers
STATUS_ERROR = 2


@pytest.fixture(scope="module")
def trace_collector() -> Iterator[Collector]:
    with collector() as running:
        yield running


@pytest.fixture(scope="module")
def traced_server(chaosbot_servers: ServerRegistry, trace_collector: Collector) -> Iterator[ChaosbotServer]:
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": trace_collector.endpoint, "OTEL_SERVICE_NAME": SERVICE, **FAST_EXPORT}
    with chaosbot_servers.own("sqlite-traced", extra_env=tracing) as server:
        yield server


@pytest.fixture
def traced_bot(traced_server: ChaosbotServer, slack: FakeSlack, request: pytest.FixtureRequest) -> Iterator[Bot]:
    yield from _bot(traced_server, slack, request)


def lineage(span: ExportedSpan, trace: list[ExportedSpan]) -> list[str]:
    """The names from ``span`` up to the trace's root."""
    by_id = {s.span_id: s for s in trace}
    names = [span.name]
    while span.parent_id:
        span = by_id[span.parent_id]
        names.append(span.name)
    return names


def whole_trace(collector_: Collector, trace_id: str, names: set[str]) -> list[ExportedSpan]:
    """The trace once every one of ``names`` has arrived (the exporter sends in batches)."""

    def arrived() -> list[ExportedSpan] | None:
        spans = collector_.trace(trace_id)
        return spans if names <= {s.name for s in spans} else None

    return wait_until(arrived, timeout=10, what=f"spans {sorted(names)} in trace {trace_id}")


def test_one_abort_is_one_trace_from_the_request_to_the_revert(traced_bot: Bot, trace_collector: Collector) -> None:
    run = traced_bot.approved_run()
    traced_bot.start(run)
    assert traced_bot.command(f"abort {run.label} {REASON}", RELIABILITY).status == 200
    traced_bot.reply(run, "aborted")

    abort = trace_collector.wait_for(
        lambda s: s.name == "engine.abort" and s.attributes.get("chaosbot.run_id") == run.id, "the abort's span"
    )
    trace = whole_trace(
        trace_collector,
        abort.trace_id,
        {"slack.request", "slack.work", "engine.abort", "engine.revert", "dry_run.revert", "run.abort"},
    )

    (root,) = [s for s in trace if s.root]
    assert root.name == "slack.request" and root.kind == SERVER_KIND and root.service == SERVICE
    assert root.attributes["slack.what"] == "abort" and root.attributes["http.response.status_code"] == 200
    (revert,) = [s for s in trace if s.name == "dry_run.revert"]
    assert revert.attributes["chaosbot.adapter"] == "dry_run" and revert.attributes["chaosbot.call"] == "revert"
    up = lineage(revert, trace)
    assert up[:3] == ["dry_run.revert", "engine.revert", "engine.abort"] and up[-2:] == ["slack.work", "slack.request"]
    (record,) = [s for s in trace if s.name == "run.abort"]
    assert lineage(record, trace)[1] == "engine.abort"
    assert any(lineage(s, trace)[1] == "run.abort" for s in trace if s.name == "db.transaction")

    posts = wait_until(
        lambda: [s for s in trace_collector.trace(abort.trace_id) if s.attributes.get("slack.method")],
        what="the abort's Slack calls in its trace",
    )
    assert all(post.kind == CLIENT_KIND and post.name == f"slack.{post.attributes['slack.method']}" for post in posts)
    everything = json.dumps([s.attributes for s in trace_collector.spans()])
    assert identity.BOT_TOKEN not in everything and identity.SIGNING_SECRET not in everything
    assert REASON not in everything


def test_a_start_traces_its_inject_and_a_refused_click_its_transaction(
    traced_bot: Bot, trace_collector: Collector
) -> None:
    run = traced_bot.approved_run()
    traced_bot.start(run)

    start = trace_collector.wait_for(
        lambda s: s.name == "engine.start" and s.attributes.get("chaosbot.run_id") == run.id, "the start's span"
    )
    trace = whole_trace(trace_collector, start.trace_id, {"slack.request", "dry_run.inject", "run.begin"})
    (inject,) = [s for s in trace if s.name == "dry_run.inject"]
    assert lineage(inject, trace)[1:] == ["engine.start", "slack.work", "slack.request"]
    approvals = [
        s for s in trace_collector.spans() if s.name == "run.approve" and s.attributes["chaosbot.run_id"] == run.id
    ]
    assert len(approvals) == 3  # one per approver, each in its own click's trace
    assert len({s.trace_id for s in approvals}) == 3


@pytest.fixture(scope="module")
def nowhere_server(chaosbot_servers: ServerRegistry) -> Iterator[ChaosbotServer]:
    """Tracing on, towards a collector that is not there (nothing listens on the discard port)."""
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_TIMEOUT": "1", **FAST_EXPORT}
    with chaosbot_servers.own("sqlite-traced-nowhere", extra_env=tracing) as server:
        yield server


@pytest.fixture
def nowhere_bot(nowhere_server: ChaosbotServer, slack: FakeSlack, request: pytest.FixtureRequest) -> Iterator[Bot]:
    yield from _bot(nowhere_server, slack, request)


def test_a_collector_that_is_down_holds_back_no_ack_and_no_abort(nowhere_bot: Bot) -> None:
    run = nowhere_bot.approved_run()
    nowhere_bot.start(run)
    answer = nowhere_bot.command(f"abort {run.label}", RELIABILITY)
    assert answer.status == 200 and answer.elapsed < 3.0  # Slack's deadline for the ack
    nowhere_bot.reply(run, "aborted")
    assert nowhere_bot.server.run_state(run.id) == "aborted"
    wait_until(lambda: "Failed to export" in nowhere_bot.server.log_text(), what="the failed export in the log")
