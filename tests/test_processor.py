"""TokenKPISpanProcessor as a wrapper around the exporting processor.

The downstream here is a real ``SpanProcessor`` subclass that records what it is handed (our own test
double for "the processor that exports"), driven by a real SDK ``TracerProvider``; and the SDK's own
``SimpleSpanProcessor`` + ``InMemorySpanExporter`` for the pass-through check.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_tokenkpi import TokenKPISpanProcessor


class RecordingProcessor(SpanProcessor):
    """A downstream processor that records every call it gets."""

    def __init__(self, flush_result: bool = True) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.flush_result = flush_result

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self.calls.append(("on_start", span, parent_context))

    def _on_ending(self, span: Span) -> None:
        self.calls.append(("_on_ending", span))

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append(("on_end", span))

    def shutdown(self) -> None:
        self.calls.append(("shutdown",))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.calls.append(("force_flush", timeout_millis))
        return self.flush_result

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


class NoOnEndingProcessor(RecordingProcessor):
    """A downstream from an SDK without ``_on_ending`` (attribute absent/None)."""

    _on_ending = None  # type: ignore[assignment]


def _provider(processor: SpanProcessor) -> TracerProvider:
    tp = TracerProvider(resource=Resource.create({"service.name": "processor-test"}))
    tp.add_span_processor(processor)
    return tp


def test_forwards_span_lifecycle_to_downstream() -> None:
    downstream = RecordingProcessor()
    tp = _provider(TokenKPISpanProcessor(downstream))
    tracer = tp.get_tracer("t")
    parent = tracer.start_span("parent")
    parent_ctx = trace.set_span_in_context(parent)
    child = tracer.start_span("child", context=parent_ctx, attributes={"k": "v"})
    assert downstream.names() == ["on_start", "on_start"]
    assert downstream.calls[0][1] is parent
    assert downstream.calls[0][2] is None
    assert downstream.calls[1][1] is child
    assert downstream.calls[1][2] is parent_ctx

    child.end()
    assert downstream.names() == ["on_start", "on_start", "_on_ending", "on_end"]
    assert downstream.calls[2][1] is child  # the live span, before the readable copy goes out
    ended = downstream.calls[3][1]
    assert isinstance(ended, ReadableSpan)
    assert ended.name == "child"
    assert ended.context == child.get_span_context()
    assert ended.parent is not None and ended.parent.span_id == parent.get_span_context().span_id
    assert dict(ended.attributes or {}) == {"k": "v"}
    parent.end()
    assert downstream.names()[-2:] == ["_on_ending", "on_end"]
    assert len(downstream.calls) == 6


def test_on_ending_skipped_when_downstream_has_none() -> None:
    downstream = NoOnEndingProcessor()
    tp = _provider(TokenKPISpanProcessor(downstream))
    tp.get_tracer("t").start_span("s").end()
    assert downstream.names() == ["on_start", "on_end"]


@pytest.mark.parametrize("result", [True, False])
def test_force_flush_returns_downstreams_result(result: bool) -> None:
    downstream = RecordingProcessor(flush_result=result)
    processor = TokenKPISpanProcessor(downstream)
    assert processor.force_flush(1234) is result
    assert downstream.calls == [("force_flush", 1234)]
    assert processor.force_flush() is result
    assert downstream.calls[-1] == ("force_flush", 30000)
    # and through the provider, which ANDs its processors' answers
    tp = _provider(processor)
    assert tp.force_flush(5000) is result
    name, timeout = downstream.calls[-1]
    assert name == "force_flush"
    assert 0 < timeout <= 5000


def test_shutdown_forwarded_once_by_provider() -> None:
    downstream = RecordingProcessor()
    tp = _provider(TokenKPISpanProcessor(downstream))
    tp.shutdown()
    assert downstream.names() == ["shutdown"]


def test_force_flush_exports_through_a_batch_processor() -> None:
    exporter = InMemorySpanExporter()
    tp = _provider(TokenKPISpanProcessor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000)))
    tp.get_tracer("t").start_span("batched").end()
    assert exporter.get_finished_spans() == ()  # still queued: the delay is a minute
    assert tp.force_flush(5000) is True
    assert [s.name for s in exporter.get_finished_spans()] == ["batched"]
    tp.shutdown()


class _DuckTyped:
    """Has every SpanProcessor method, but is not one."""

    def on_start(self, span: Any, parent_context: Any = None) -> None: ...
    def on_end(self, span: Any) -> None: ...
    def shutdown(self) -> None: ...
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(InMemorySpanExporter(), "InMemorySpanExporter"), (None, "NoneType"), (_DuckTyped(), "_DuckTyped")],
    ids=["exporter", "none", "duck-typed"],
)
def test_rejects_what_is_not_a_span_processor(value: Any, type_name: str) -> None:
    with pytest.raises(TypeError) as info:
        TokenKPISpanProcessor(value)
    message = str(info.value)
    assert "TokenKPISpanProcessor(BatchSpanProcessor(exporter))" in message
    assert message.endswith(f"got {type_name}")


def _plain_trace(tracer: trace.Tracer) -> None:
    """Spans of every shape a plain (non-GenAI) app makes."""
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes={"http.route": "/x"}) as root:
        root.add_event("accepted", {"n": 1})
        with tracer.start_as_current_span("db", kind=SpanKind.CLIENT) as db:
            db.set_attribute("db.statement", "select 1")
            db.set_attribute("db.rows", [1, 2, 3])
        link = Link(root.get_span_context(), {"why": "fan-out"})
        with tracer.start_as_current_span("work", links=[link]) as work:
            work.set_status(Status(StatusCode.ERROR, "boom"))
            work.record_exception(ValueError("boom"))


def _snapshot(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "context": span.context,
        "parent": span.parent,
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "events": [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events],
        "links": [(lk.context, dict(lk.attributes or {})) for lk in span.links],
        "status": (span.status.status_code, span.status.description),
        "times": (span.start_time, span.end_time),
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
    }


def test_plain_spans_pass_through_unchanged() -> None:
    through_us, direct = InMemorySpanExporter(), InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "plain"}))
    tp.add_span_processor(TokenKPISpanProcessor(SimpleSpanProcessor(through_us)))
    tp.add_span_processor(SimpleSpanProcessor(direct))
    _plain_trace(tp.get_tracer("app", "1.0"))

    ours, reference = through_us.get_finished_spans(), direct.get_finished_spans()
    assert [s.name for s in ours] == ["db", "work", "root"]
    assert [_snapshot(s) for s in ours] == [_snapshot(s) for s in reference]
    root = ours[2]
    assert dict(root.attributes or {}) == {"http.route": "/x"}
    assert root.parent is None
    assert {s.context.trace_id for s in ours} == {root.context.trace_id}
    assert ours[0].parent is not None and ours[0].parent.span_id == root.context.span_id
