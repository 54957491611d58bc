"""``--tracing off,on`` of the ack and abort benches: two servers side by side, each with its own Redis database,
the "on" one exporting to a local collector process that counts what it received."""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def harness() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))  # the bench scripts import their harness as a top-level module
    try:
        yield importlib.import_module("_harness")
    finally:
        sys.path.remove(str(BENCH))


def test_both_benches_take_the_tracing_modes_side_by_side(harness: ModuleType) -> None:
    ack, abort = importlib.import_module("ack_latency"), importlib.import_module("abort_latency")
    assert ack.parse_args(["--tracing", "off,on"]).tracing == ["off", "on"]
    assert abort.parse_args(["--tracing", "on"]).tracing == ["on"]
    assert abort.parse_args([]).tracing == ["off"]  # by default, as before: one server, tracing off
    with pytest.raises(SystemExit):
        ack.parse_args(["--tracing", "sometimes"])


def test_each_server_gets_its_own_redis_database_and_only_on_exports(harness: ModuleType) -> None:
    assert harness.redis_url_for("redis://127.0.0.1:6381/13", "off") == "redis://127.0.0.1:6381/13"
    assert harness.redis_url_for("redis://127.0.0.1:6381/13", "on") == "redis://127.0.0.1:6381/14"
    assert harness.redis_url_for(None, "on") is None
    assert harness.tracing_env("off", "http://127.0.0.1:4318") == {}
    assert harness.tracing_env("on", "http://127.0.0.1:4318")["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"


def test_the_collector_process_counts_the_spans_it_received(harness: ModuleType) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    with contextlib.ExitStack() as stack:
        endpoint = harness.start_collector(stack)
        provider = TracerProvider()  # not the global one: this test's spans only
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
        with provider.get_tracer("bench-test").start_as_current_span("one"):
            pass
        provider.shutdown()
        assert harness.spans_collected(endpoint) == {"spans": 1, "requests": 1}
