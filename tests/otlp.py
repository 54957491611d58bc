"""A local OTLP/HTTP trace collector: what ``chaosbot serve`` exports when ``OTEL_EXPORTER_OTLP_ENDPOINT`` points
here, decoded with OpenTelemetry's own protobuf classes. The tests read the spans; the benches only count them.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.waiting import wait_until

# What the exporter reads to send its batches soon: the tests wait for spans, not for the 5 s default.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "50"}


@dataclass(frozen=True)
class ExportedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    kind: int
    attributes: dict[str, Any]
    status_code: int
    service: str

    @property
    def root(self) -> bool:
        return not self.parent_id


class Collector:
    """Listens on 127.0.0.1 (a free port) for ``POST /v1/traces``; ``endpoint`` is what the server is given."""

    def __init__(self) -> None:
        self._spans: list[ExportedSpan] = []
        self._lock = threading.Lock()
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._received, self.counts))
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-collector", daemon=True)

    def start(self) -> Collector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list[ExportedSpan]:
        with self._lock:
            return list(self._spans)

    def trace(self, trace_id: str) -> list[ExportedSpan]:
        return [span for span in self.spans() if span.trace_id == trace_id]

    def wait_for(self, predicate: Callable[[ExportedSpan], bool], what: str, timeout: float = 10.0) -> ExportedSpan:
        return wait_until(lambda: next((s for s in self.spans() if predicate(s)), None), timeout, what)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"spans": len(self._spans), "requests": self.requests}

    def _received(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        decoded = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                decoded.extend(_span(span, str(resource.get("service.name", ""))) for span in scope_spans.spans)
        with self._lock:
            self.requests += 1
            self._spans.extend(decoded)


@contextmanager
def collector() -> Iterator[Collector]:
    running = Collector().start()
    try:
        yield running
    finally:
        running.stop()


def _span(span: Any, service: str) -> ExportedSpan:
    return ExportedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        kind=span.kind,
        attributes={kv.key: _value(kv.value) for kv in span.attributes},
        status_code=span.status.code,
        service=service,
    )


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    return getattr(value, which) if which is not None else None


def _handler(received: Callable[[bytes], None], counts: Callable[[], dict[str, int]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # what the benches ask: how many spans arrived
            answer = json.dumps(counts()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            received(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
