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
- one GenAI span per model call, as a backend counts it (a ``gen_ai.usage.*``
  sum over exported model-call spans counts each call once): a foreign model-call
  span that describes the same call as one of ours is never counted again and
  is dropped unless ``keep_nested_genai_spans=True``. That is a foreign span
  nested under ours (the Anthropic SDK's own span, an instrumentation applied
  before ours) and one that wraps ours (pydantic-ai's ``chat`` span, OpenLLMetry
  applied after ours). Ours stays, as the one carrying ``tokenkpi.*``: it ends
  first, so it cannot wait for the outer one. A dropped wrapper's children
  (ours, and any span that ends under it after ours started) are re-parented to
  the wrapper's own parent so the trace stays whole; when the wrapper was the
  local root, ours becomes the root and carries the trace roll-ups.

The tokenizer data and prices start loading when the processor is built, and
the first foreign span to enrich waits for them (at most ``load_timeout_s``
seconds after construction, 5 by default, once per processor): a process that
only uses the processor (no ``instrument()``) gets exact counts, costs and
context utilization from its first foreign span on, as the same spans would
later. Only a span ending in that window waits (on the thread that ends it);
with ``load_timeout_s=0`` nothing waits and the first spans may be estimated.

Non-GenAI spans cost two dict operations on start and end.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext

from . import prices, tokens
from . import semconv as sc
from ._safety import IN_MODEL_CALL, log_once, run_hook
from .engine import ENGINE, load_local_data
from .foreign import _MARKER_KEYS, is_model_call_span, record_from_span
from .invocation import CallSurroundings
from .kpi_metrics import KPIMetrics
from .surroundings import TASK_ROLLUPS, USER_ATTRIBUTES, current_conversation_id

OUR_SCOPE_PREFIX = "otel_tokenkpi"
DEFAULT_LOAD_TIMEOUT_S = 5.0


@dataclass
class _Wrapper:
    """An open (or just dropped) foreign model-call span with one of our model calls inside."""

    parent: SpanContext | None  # where its children are re-parented to
    open_ours: int = 0  # our model-call spans under it that have not ended
    ended: bool = False
    held: list[ReadableSpan] = field(default_factory=list)  # ours, held until a root wrapper ends
    user_attributes: dict[str, Any] = field(default_factory=dict)  # a root wrapper's, for the roll-ups

    @property
    def is_local_root(self) -> bool:
        return self.parent is None or self.parent.is_remote


class TokenKPISpanProcessor(SpanProcessor):
    def __init__(
        self,
        downstream_processor: SpanProcessor,
        *,
        keep_nested_genai_spans: bool = False,
        meter_provider: Any = None,
        load_timeout_s: float = DEFAULT_LOAD_TIMEOUT_S,
    ) -> None:
        if not isinstance(downstream_processor, SpanProcessor):
            raise TypeError(
                "TokenKPISpanProcessor wraps the exporting processor, e.g. "
                "TokenKPISpanProcessor(BatchSpanProcessor(exporter)); got "
                f"{type(downstream_processor).__name__}"
            )
        if isinstance(load_timeout_s, bool) or not isinstance(load_timeout_s, (int, float)) or not load_timeout_s >= 0:
            raise TypeError(f"load_timeout_s must be a number of seconds >= 0; got {load_timeout_s!r}")
        self.downstream = downstream_processor
        self.keep_nested_genai_spans = keep_nested_genai_spans
        # Loading starts now, in the background; the first foreign span waits until this deadline.
        tokens.start_loading()
        prices.start_loading()
        self._load_deadline = time.monotonic() + float(load_timeout_s)
        self._data_awaited = load_timeout_s == 0
        self._metrics = KPIMetrics(meter_provider) if meter_provider is not None else None
        self._lock = threading.Lock()
        self._roots: dict[int, dict[str, Any]] = {}  # open local roots: span id -> user attributes at start
        self._our_calls: set[int] = set()  # open model-call spans of ours
        self._foreign_calls: dict[int, tuple[CallSurroundings, SpanContext | None]] = {}  # open: scope, parent
        self._nested_in_ours: set[int] = set()  # foreign spans describing one of our calls
        self._wrappers: dict[int, _Wrapper] = {}  # foreign model-call spans with one of our calls inside
        self._our_wrapper: dict[int, int] = {}  # our open model-call span -> the foreign span around it
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
            else:
                if self._roots:
                    self._roots.pop(span.context.span_id, None)  # type: ignore[union-attr]
                if self._wrappers and span.parent is not None and span.parent.span_id in self._wrappers:
                    forwarded = self._reparented(span, span.parent.span_id)
        except Exception as exc:  # noqa: BLE001 - a span we cannot read is forwarded as it is
            log_once("processor.on_end", exc)
        if forwarded is not None:
            self.downstream.on_end(forwarded)

    def shutdown(self) -> None:
        with self._lock:
            if not self._shut_down:
                self._shut_down = True
                ENGINE.trace_rollup_consumers -= 1
            held = [moved for wrapper in self._wrappers.values() for moved in wrapper.held]
            for wrapper in self._wrappers.values():
                wrapper.held = []
        for moved in held:  # calls held for a root wrapper that never ended: exported without roll-ups
            self.downstream.on_end(moved)
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
                outer = self._foreign_calls.get(parent.span_id) if parent is not None else None
                if outer is not None and parent is not None:  # a foreign model-call span wraps ours
                    wrapper = self._wrappers.get(parent.span_id)
                    if wrapper is None:
                        wrapper = self._wrappers[parent.span_id] = _Wrapper(parent=outer[1])
                    if not self.keep_nested_genai_spans:
                        wrapper.open_ours += 1
                        self._our_wrapper[span_id] = parent.span_id
            return
        if not is_model_call_span(attributes):
            return
        if IN_MODEL_CALL.get() or (parent is not None and parent.span_id in self._our_calls):
            self._nested_in_ours.add(span_id)
            return
        user_attributes = USER_ATTRIBUTES.get()
        scope = CallSurroundings(
            user_attributes=user_attributes,
            conversation_id=current_conversation_id(user_attributes),
            rollups=TASK_ROLLUPS.get(),
        )
        self._foreign_calls[span_id] = (scope, parent)

    def _on_end(self, span: ReadableSpan) -> ReadableSpan | None:
        context, parent = span.context, span.parent
        span_id = context.span_id if context is not None else 0
        extra: dict[str, Any] = {}
        is_local_root = _is_local_root(span)
        if _is_ours(span):
            self._our_calls.discard(span_id)
            wrapper_id = self._our_wrapper.pop(span_id, None)
            if wrapper_id is not None:
                return self._our_call_in_wrapper(span, wrapper_id)
        else:
            started = self._foreign_calls.pop(span_id, None)
            if span_id in self._nested_in_ours or (parent is not None and parent.span_id in self._our_calls):
                self._nested_in_ours.discard(span_id)
                if is_model_call_span(span.attributes or {}) and not self.keep_nested_genai_spans:
                    return None
            elif span_id in self._wrappers:
                if not self.keep_nested_genai_spans:
                    self._wrapper_ended(span_id)
                    return None
                del self._wrappers[span_id]  # kept: forwarded as it is (roll-ups if it is a root), not counted
            elif is_model_call_span(span.attributes or {}):
                extra = self._foreign_call_attributes(span, started[0] if started is not None else None)
        if parent is not None and parent.span_id in self._wrappers:
            span = self._reparented(span, parent.span_id)
        extra.update(self._rollup_attributes(span, span_id, is_local_root))
        if not extra:
            return span
        return with_attributes(span, extra)

    def _rollup_attributes(self, span: ReadableSpan, span_id: int, is_local_root: bool) -> dict[str, Any]:
        """The trace's roll-up (with the user's attributes of its start) when ``span`` is the trace's local
        root; task() spans carry their own roll-up already."""
        user_attributes = self._roots.pop(span_id, None)
        if user_attributes is None and is_local_root:
            user_attributes = {}  # a root started outside any attributes() block
        context = span.context
        if user_attributes is None or context is None:
            return {}
        rollup = ENGINE.end_trace(context.trace_id)
        is_task = _is_ours(span) and (span.attributes or {}).get(sc.OPERATION_NAME) == sc.INVOKE_WORKFLOW
        if rollup is None or not rollup.has_content or is_task:
            return {}
        return {**user_attributes, **rollup.attributes()}

    # -- one GenAI span per model call: a foreign model-call span wrapping ours ------------------------
    def _our_call_in_wrapper(self, span: ReadableSpan, wrapper_id: int) -> ReadableSpan | None:
        """Our model call ended inside a foreign model-call span that is dropped: ours takes its place
        in the tree. Under a wrapper that is the local root, ours becomes the root and is held until
        the wrapper ends, when the trace's roll-ups are known."""
        with self._lock:  # a stream may end on another thread than its wrapper
            wrapper = self._wrappers.get(wrapper_id)
            if wrapper is None:
                return span
            wrapper.open_ours -= 1
            moved = with_attributes(span, {}, parent=wrapper.parent)
            if wrapper.is_local_root and not wrapper.ended:
                wrapper.held.append(moved)
                return None
            last_word = wrapper.ended and wrapper.open_ours <= 0
            if last_word:
                del self._wrappers[wrapper_id]
        if last_word and wrapper.is_local_root:  # the wrapper ended first (a stream read after it)
            return self._with_rollup(moved, wrapper.user_attributes)
        return moved

    def _wrapper_ended(self, span_id: int) -> None:
        """A foreign model-call span with one of ours inside ended: dropped, never counted (the calls
        inside are ours). Held calls of a root wrapper go downstream now, the last with the roll-ups."""
        with self._lock:
            wrapper = self._wrappers[span_id]
            wrapper.ended = True
            wrapper.user_attributes = self._roots.pop(span_id, {})
            held, wrapper.held = wrapper.held, []
            done = wrapper.open_ours <= 0
            if done:
                del self._wrappers[span_id]
        if done and held:
            held[-1] = self._with_rollup(held[-1], wrapper.user_attributes)
        for moved in held:
            self.downstream.on_end(moved)

    def _with_rollup(self, span: ReadableSpan, user_attributes: dict[str, Any]) -> ReadableSpan:
        rollup = ENGINE.end_trace(span.context.trace_id) if span.context is not None else None
        if rollup is None or not rollup.has_content:
            return span
        return with_attributes(span, {**user_attributes, **rollup.attributes()})

    def _reparented(self, span: ReadableSpan, wrapper_id: int) -> ReadableSpan:
        """A span ending under a dropped wrapper, moved under the wrapper's parent."""
        wrapper = self._wrappers.get(wrapper_id)
        if wrapper is None or self.keep_nested_genai_spans:
            return span
        return with_attributes(span, {}, parent=wrapper.parent)

    # -- foreign model calls ---------------------------------------------------------------------
    def _await_data(self) -> None:
        """Once per processor: wait (until the deadline set at construction) for the tokenizer data
        and prices, so the first foreign spans are counted and priced like the later ones."""
        if self._data_awaited:
            return
        remaining = self._load_deadline - time.monotonic()
        if remaining > 0:
            load_local_data(remaining)
        self._data_awaited = True

    def _foreign_call_attributes(self, span: ReadableSpan, start_scope: CallSurroundings | None) -> dict[str, Any]:
        record = record_from_span(span)
        if record is None:
            return {}
        self._await_data()
        scope = start_scope or CallSurroundings()
        attributes = span.attributes or {}
        conversation_id = attributes.get(sc.CONVERSATION_ID)
        if isinstance(conversation_id, str) and conversation_id:
            scope.conversation_id = conversation_id
        if span.context is not None and span.context.is_valid:
            scope.trace_id, scope.span_id = span.context.trace_id, span.context.span_id
        scope.has_parent = span.parent is not None
        scope.started_at = (span.start_time or 0) / 1e9
        record.surroundings = scope
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


_SAME_PARENT: Any = object()


def with_attributes(span: ReadableSpan, extra: dict[str, Any], parent: Any = _SAME_PARENT) -> ReadableSpan:
    """A copy of an ended span with more attributes (within its attribute limit) and, when
    ``parent`` is given, another parent.

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
        parent=span.parent if parent is _SAME_PARENT else parent,
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
