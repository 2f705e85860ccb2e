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


def cold_start(load_timeout_s: float, block_tokenizer: bool) -> dict[str, Any]:
    """In a fresh process (tests/test_processor_loading.py): wire only the span processor, end one
    foreign chat span at once, and return its attributes. ``block_tokenizer`` parks the tokenizer
    loader until the span has ended (a load slower than the processor's wait)."""
    import threading

    from otel_tokenkpi import TokenKPISpanProcessor, tokens

    release = threading.Event()
    if block_tokenizer:
        tokens._load_hook = lambda name: release.wait()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TokenKPISpanProcessor(SimpleSpanProcessor(exporter), load_timeout_s=load_timeout_s))
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"Weather in Paris today?"}]}]',
    }
    provider.get_tracer("foreign").start_span("chat gpt-4o", attributes=attributes).end()
    release.set()
    (span,) = exporter.get_finished_spans()
    return dict(span.attributes or {})
