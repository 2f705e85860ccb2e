"""Real SDK spans for the foreign-span tests: start a span with given attributes, optionally fail
it, end it, and hand back the ReadableSpan the exporter received."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status

START_NS, END_NS = 1_000_000_000, 3_500_000_000  # a 2.5 s call

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
_tracer = _provider.get_tracer("foreign-test")


def emit(
    attributes: dict[str, Any],
    exception: BaseException | None = None,
    status: Status | None = None,
    name: str = "llm call",
) -> ReadableSpan:
    span = _tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes, start_time=START_NS)
    if exception is not None:
        span.record_exception(exception)
    if status is not None:
        span.set_status(status)
    span.end(end_time=END_NS)
    finished = _exporter.get_finished_spans()[-1]
    _exporter.clear()
    return finished
