"""Traces (OpenTelemetry): where an ack or an abort spends its time, for operators who do not read the code.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set. Off means no SDK provider is installed: every span below is
the API's non-recording span, and neither the SDK nor the exporter is imported (together about 9 MB resident).
On, spans go in batches to the endpoint over OTLP/HTTP as service ``OTEL_SERVICE_NAME`` (default ``chaosbot``);
the SDK reads the other standard ``OTEL_*`` variables (headers, batch delays, sampler) itself.

A span follows work to another thread only where we hand the work over: ``carried`` captures the context where
work is submitted and the worker runs in it (the worker pools, the outbox, parallel reverts and probes), so
one ``/chaos abort`` is one trace from the HTTP request to the revert. Spans never carry a token, a secret or
a message's text; an exception is recorded by its type only (adapter errors may quote a URL).
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, ParamSpec, TypeVar
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Attribute = str | bool | int | float

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
SERVICE_VARIABLE = "OTEL_SERVICE_NAME"
DEFAULT_SERVICE = "chaosbot"

_tracer = trace.get_tracer("chaosbot")  # the API's proxy: a no-op until a provider is installed


def configure_tracing(environ: Mapping[str, str] = os.environ) -> bool:
    """Export traces over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; True when tracing is on.

    Call it in the process that serves (a gunicorn worker, after the fork: the exporter's thread must be its
    own). Without the variable nothing is imported or installed."""
    if not environ.get(ENDPOINT_VARIABLE):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    service = environ.get(SERVICE_VARIABLE) or DEFAULT_SERVICE
    install(OTLPSpanExporter(), service_name=service)
    where = urlsplit(environ[ENDPOINT_VARIABLE]).netloc.rpartition("@")[2]  # not the credentials a URL may carry
    log.info("tracing on: spans of %s go over OTLP/HTTP to %s", service, where)
    return True


def install(exporter: SpanExporter, *, service_name: str = DEFAULT_SERVICE, batch: bool = True) -> TracerProvider:
    """Install the SDK's provider, sending every span to ``exporter`` (in batches, on the SDK's own thread,
    unless ``batch`` is False: tests read an in-memory exporter right after the work)."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def flush(timeout_seconds: float = 5.0) -> None:
    """Send the spans still waiting (a worker about to exit); nothing when tracing is off."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)  # the SDK's provider has it, the API's proxy not
    if force_flush is not None:
        force_flush(int(timeout_seconds * 1000))


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Attribute | None] | None = None,
    **fields: Attribute | None,
) -> Iterator[Span]:
    """A span around the block, current inside it. ``fields`` become ``chaosbot.<field>`` attributes,
    ``attributes`` are taken as named (``slack.method``, ``http.response.status_code``); None is left out.

    An exception marks the span failed with the exception's type, never its message."""
    given = _attributes(attributes, fields)
    with _tracer.start_as_current_span(
        name, kind=kind, attributes=given, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except BaseException as exc:
            failed(current, exc)
            raise


def failed(current: Span, error: BaseException | str) -> None:
    """Mark ``current`` failed: with an exception's type (its message may quote a URL), or an error code."""
    what = error if isinstance(error, str) else type(error).__name__
    current.set_attribute("error.type", what)
    current.set_status(StatusCode.ERROR, what)


def adapter_call(adapter: str, call: str, action: Callable[P, T]) -> Callable[P, T]:
    """``action`` (an adapter's inject, revert, renew...) traced as the span ``<adapter>.<call>``."""

    def traced(*args: P.args, **kwargs: P.kwargs) -> T:
        with span(f"{adapter}.{call}", adapter=adapter, call=call):
            return action(*args, **kwargs)

    return traced


def annotate(attributes: Mapping[str, Attribute | None] | None = None, **fields: Attribute | None) -> None:
    """Add attributes to the current span, as ``span`` names them (nothing when tracing is off)."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(_attributes(attributes, fields))


def _attributes(
    named: Mapping[str, Attribute | None] | None, fields: Mapping[str, Attribute | None]
) -> dict[str, Attribute]:
    given = {key: value for key, value in (named or {}).items() if value is not None}
    given.update((f"chaosbot.{key}", value) for key, value in fields.items() if value is not None)
    return given


def carried(work: Callable[[], T]) -> Callable[[], T]:
    """``work``, to run on another thread in the caller's context: its current span (so the worker's spans are
    children of it) and its log fields. Each call runs in a copy, so the result may run more than once, or on
    several threads at once."""
    context = contextvars.copy_context()
    return lambda: context.copy().run(work)
