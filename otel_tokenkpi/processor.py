"""TokenKPISpanProcessor: wraps the exporting processor.

An SDK span is frozen at ``end()`` (``_on_ending`` cannot add attributes in
any released SDK), so anything added at the end of a trace must be added to
a new ``ReadableSpan`` handed to the processor that exports. That is why this
processor *wraps* the downstream one instead of sitting beside it:

    provider.add_span_processor(TokenKPISpanProcessor(BatchSpanProcessor(exporter)))

Per-call ``tokenkpi.*`` attributes never depend on it (the lifecycle sets
them before ``span.end()``); it adds trace roll-ups and reads GenAI spans of
other instrumentations (the waste-engine issue). Today it forwards every
SpanProcessor method unchanged.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor


class TokenKPISpanProcessor(SpanProcessor):
    def __init__(self, downstream_processor: SpanProcessor, **options: Any) -> None:
        if not isinstance(downstream_processor, SpanProcessor):
            raise TypeError(
                "TokenKPISpanProcessor wraps the exporting processor, e.g. "
                "TokenKPISpanProcessor(BatchSpanProcessor(exporter)); got "
                f"{type(downstream_processor).__name__}"
            )
        self.downstream = downstream_processor
        self.options = dict(options)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.downstream.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        on_ending = getattr(self.downstream, "_on_ending", None)
        if on_ending is not None:
            on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.downstream.on_end(span)

    def shutdown(self) -> None:
        self.downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.downstream.force_flush(timeout_millis)
