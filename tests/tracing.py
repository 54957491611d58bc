"""Spans recorded in the test process, by the SDK's ``InMemorySpanExporter``.

OpenTelemetry lets a process set its tracer provider once, so the provider is installed at the first use in a
test process and stays. It samples only inside ``recorded_spans``: every other test in the process runs with
spans that are not recorded (nothing kept, no ids in log lines), as with tracing on but sampled out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes


class _WhileRecording(Sampler):
    def __init__(self) -> None:
        self.recording = 0

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        decision = Decision.RECORD_AND_SAMPLE if self.recording else Decision.DROP
        return SamplingResult(decision, attributes if self.recording else None)

    def get_description(self) -> str:
        return "while a test records"


_sampler = _WhileRecording()
_exporter = InMemorySpanExporter()
_installed = threading.Lock()


def _install_once() -> None:
    with _installed:
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            provider = TracerProvider(sampler=_sampler)
            provider.add_span_processor(SimpleSpanProcessor(_exporter))
            trace.set_tracer_provider(provider)


@contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """Every span started inside is recorded; read them with ``get_finished_spans()``."""
    _install_once()
    _exporter.clear()
    _sampler.recording += 1
    try:
        yield _exporter
    finally:
        _sampler.recording -= 1


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]
