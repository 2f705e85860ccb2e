"""TokenKPISpanProcessor: roll-ups on trace roots, and other instrumentations' GenAI spans.

An SDK span is frozen at ``end()`` (``_on_ending`` cannot add attributes in
any released SDK), so anything added at the end of a trace must be added to
a new ``ReadableSpan`` handed to the processor that exports. That is why this
processor *wraps* the downstream one instead of sitting beside it:

    provider.add_span_processor(TokenKPISpanProcessor(BatchSpanProcessor(exporter)))

Per-call ``tokenkpi.*`` attributes never depend on it (the lifecycle sets
them before ``span.end()``). It adds:

- the ``tokenkpi.trace.*`` roll-ups on the local root span of each trace
  (``task()`` spans already carry theirs);
- the engine's attributes on GenAI model-call spans of other
  instrumentations, from their attributes (:mod:`otel_tokenkpi.foreign`);
- one GenAI span per call: a foreign GenAI span nested under one of ours
  describes the same call (the Anthropic SDK's own span, an official
  instrumentation wrapping inside ours); it is never counted again, and is
  dropped unless ``keep_nested_genai_spans=True``. A foreign span that has one
  of ours inside it is forwarded unchanged and not counted.

Non-GenAI spans cost two dict operations on start and end.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from . import semconv as sc
from ._safety import IN_MODEL_CALL, log_once, run_hook
from .engine import ENGINE
from .foreign import _MARKER_KEYS, is_model_call_span, record_from_span
from .kpi_metrics import KPIMetrics
from .record import CallScope
from .scope import TASK_ROLLUPS, USER_ATTRIBUTES, current_conversation_id

OUR_SCOPE_PREFIX = "otel_tokenkpi"


class TokenKPISpanProcessor(SpanProcessor):
    def __init__(
        self,
        downstream_processor: SpanProcessor,
        *,
        keep_nested_genai_spans: bool = False,
        meter_provider: Any = None,
    ) -> None:
        if not isinstance(downstream_processor, SpanProcessor):
            raise TypeError(
                "TokenKPISpanProcessor wraps the exporting processor, e.g. "
                "TokenKPISpanProcessor(BatchSpanProcessor(exporter)); got "
                f"{type(downstream_processor).__name__}"
            )
        self.downstream = downstream_processor
        self.keep_nested_genai_spans = keep_nested_genai_spans
        self._metrics = KPIMetrics(meter_provider) if meter_provider is not None else None
        self._lock = threading.Lock()
        self._roots: dict[int, dict[str, Any]] = {}  # open local roots: span id -> user attributes at start
        self._our_calls: set[int] = set()  # open model-call spans of ours
        self._foreign_calls: dict[int, CallScope] = {}  # open foreign model-call spans: scope at start
        self._nested_in_ours: set[int] = set()  # foreign spans describing one of our calls
        self._wrapping_ours: set[int] = set()  # foreign spans with one of our calls inside
        self._shut_down = False
        self._downstream_on_ending = getattr(downstream_processor, "_on_ending", None) or _ignore
        self._on_ending = self._downstream_on_ending  # type: ignore[method-assign]
        with self._lock:
            ENGINE.trace_rollup_consumers += 1

    # -- SpanProcessor -----------------------------------------------------
    # Fast path: a span that is not GenAI (no marker key) needs nothing from us, unless it is a
    # local root whose trace held model calls. That is most spans: they cost a set test over
    # their keys, a context-variable read and, at the end of a root, one lock-free lookup.
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            if _MARKER_KEYS.isdisjoint(_raw_attributes(span)):
                user_attributes = USER_ATTRIBUTES.get()
                if user_attributes and _is_local_root(span):
                    self._roots[span.context.span_id] = user_attributes
            else:
                run_hook("processor.on_start", self._on_start, span)
        except Exception as exc:  # noqa: BLE001 - a span we cannot read is forwarded as it is
            log_once("processor.on_start", exc)
        self.downstream.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:  # replaced per instance by the downstream's own (one call less)
        self._downstream_on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        forwarded: ReadableSpan | None = span
        try:
            if not _MARKER_KEYS.isdisjoint(_raw_attributes(span)) or (
                _is_local_root(span) and ENGINE.holds_trace(span.context.trace_id)  # type: ignore[union-attr]
            ):
                forwarded = run_hook("processor.on_end", self._on_end, span, default=span)
            elif self._roots:
                self._roots.pop(span.context.span_id, None)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - a span we cannot read is forwarded as it is
            log_once("processor.on_end", exc)
        if forwarded is not None:
            self.downstream.on_end(forwarded)

    def shutdown(self) -> None:
        with self._lock:
            if not self._shut_down:
                self._shut_down = True
                ENGINE.trace_rollup_consumers -= 1
        self.downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.downstream.force_flush(timeout_millis)

    # -- bookkeeping ---------------------------------------------------------
    def _on_start(self, span: Span) -> None:  # a GenAI span
        context, parent = span.get_span_context(), span.parent
        span_id = context.span_id
        if parent is None or parent.is_remote:
            self._roots[span_id] = USER_ATTRIBUTES.get()  # GenAI roots: their end needs the entry
        attributes = span.attributes or {}
        if _is_ours(span):
            if attributes.get(sc.OPERATION_NAME) in sc.MODEL_CALL_OPERATIONS:
                self._our_calls.add(span_id)
                if parent is not None and parent.span_id in self._foreign_calls:
                    self._wrapping_ours.add(parent.span_id)
            return
        if not is_model_call_span(attributes):
            return
        if IN_MODEL_CALL.get() or (parent is not None and parent.span_id in self._our_calls):
            self._nested_in_ours.add(span_id)
            return
        user_attributes = USER_ATTRIBUTES.get()
        self._foreign_calls[span_id] = CallScope(
            user_attributes=user_attributes,
            conversation_id=current_conversation_id(user_attributes),
            rollups=TASK_ROLLUPS.get(),
        )

    def _on_end(self, span: ReadableSpan) -> ReadableSpan | None:
        context, parent = span.context, span.parent
        span_id = context.span_id if context is not None else 0
        extra: dict[str, Any] = {}
        if _is_ours(span):
            self._our_calls.discard(span_id)
        else:
            start_scope = self._foreign_calls.pop(span_id, None)
            if span_id in self._nested_in_ours or (parent is not None and parent.span_id in self._our_calls):
                self._nested_in_ours.discard(span_id)
                if is_model_call_span(span.attributes or {}) and not self.keep_nested_genai_spans:
                    return None
            elif span_id in self._wrapping_ours:
                self._wrapping_ours.discard(span_id)
            elif is_model_call_span(span.attributes or {}):
                extra = self._foreign_call_attributes(span, start_scope)
        user_attributes = self._roots.pop(span_id, None)
        if user_attributes is None and _is_local_root(span):
            user_attributes = {}  # a root started outside any attributes() block
        if user_attributes is not None and context is not None:
            rollup = ENGINE.end_trace(context.trace_id)
            attributes = span.attributes or {}
            is_task = _is_ours(span) and attributes.get(sc.OPERATION_NAME) == sc.INVOKE_WORKFLOW
            if rollup is not None and rollup.has_content and not is_task:
                extra.update(user_attributes)
                extra.update(rollup.attributes())
        if not extra:
            return span
        return with_attributes(span, extra)

    def _foreign_call_attributes(self, span: ReadableSpan, start_scope: CallScope | None) -> dict[str, Any]:
        record = record_from_span(span)
        if record is None:
            return {}
        scope = start_scope or CallScope()
        attributes = span.attributes or {}
        conversation_id = attributes.get(sc.CONVERSATION_ID)
        if isinstance(conversation_id, str) and conversation_id:
            scope.conversation_id = conversation_id
        if span.context is not None and span.context.is_valid:
            scope.trace_id, scope.span_id = span.context.trace_id, span.context.span_id
        scope.has_parent = span.parent is not None
        scope.started_at = (span.start_time or 0) / 1e9
        record.scope = scope
        computed = ENGINE.call_attributes(record, None, self._metrics)
        # What the span already says (its own usage, a peer's cost) is left as it is.
        return {key: value for key, value in computed.items() if key not in attributes}


def _ignore(span: Any) -> None:
    return None


def _is_local_root(span: ReadableSpan) -> bool:
    parent = span.parent
    return parent is None or parent.is_remote


def _raw_attributes(span: ReadableSpan) -> Any:
    """The SDK's attribute dict itself: ``.attributes`` builds a read-only view on every access."""
    try:
        return span._attributes or {}
    except AttributeError:
        return span.attributes or {}


def _is_ours(span: ReadableSpan) -> bool:
    scope = span.instrumentation_scope
    return scope is not None and scope.name.startswith(OUR_SCOPE_PREFIX)


class _EnrichedSpan(ReadableSpan):
    """An ended span with our attributes added, keeping the original's dropped-attribute count.

    The attributes are a plain dict: the original's values are already cleaned
    by the SDK and ours are primitives, so rebuilding a ``BoundedAttributes``
    (which cleans every value again) would only cost time.
    """

    def __init__(self, dropped_attributes: int, **fields: Any) -> None:
        super().__init__(**fields)
        self._dropped_attributes = dropped_attributes

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attributes


def with_attributes(span: ReadableSpan, extra: dict[str, Any]) -> ReadableSpan:
    """A copy of an ended span with more attributes, within its attribute limit.

    When the limit is reached, the span's own attributes win: ours that do not
    fit are dropped and counted as dropped.
    """
    old = span.attributes or {}
    maxlen = getattr(getattr(span, "_attributes", None), "maxlen", None)
    merged = dict(old)
    dropped = span.dropped_attributes
    for key, value in extra.items():
        if key in merged or maxlen is None or len(merged) < maxlen:
            merged[key] = value
        else:
            dropped += 1
    return _EnrichedSpan(
        dropped,
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=merged,
        events=getattr(span, "_events", span.events),
        links=getattr(span, "_links", span.links),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
