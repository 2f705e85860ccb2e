"""The waste engine: a finished call record in, ``tokenkpi.*`` attributes out.

The lifecycle calls :meth:`Engine.call_attributes` for every model call our
adapters make, sampled or not, and sets what it returns on the span before
``span.end()``; the processor does the same for GenAI spans of other
instrumentations. This module wires the parts together: local counts
(:mod:`.counting`), the rules (:mod:`.waste`), conversation state
(:mod:`.state`), roll-ups (:mod:`.rollup`), prices, and the ``tokenkpi.*``
metrics (:mod:`.kpi_metrics`).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Hashable
from concurrent.futures import Future
from typing import Any

from . import prices
from . import semconv as sc
from .counting import (
    BackgroundCounter,
    ContextCounts,
    count_item,
    count_tool_call,
    count_tool_definitions,
    estimate_missing_usage,
)
from .history import HistoryFold, fold_history, resume_point
from .kpi_metrics import KPIMetrics, metric_user_attributes
from .record import CallRecord, CallRequest, CallResult, CallScope, Usage
from .rollup import CallSummary, Rollup
from .state import DEFAULT_BUDGET_BYTES, DEFAULT_TTL_S, BoundedStore, ConversationState
from .waste import (
    Waste,
    WasteFindings,
    apportion,
    find_duplicates,
    is_truncated,
    request_fingerprint,
    split_resent_new,
    tool_call_key,
    waste_attributes,
)


class Engine:
    """Computes the per-call ``tokenkpi.*`` attributes and keeps the bounded state. One per process."""

    def __init__(self) -> None:
        self._counter = BackgroundCounter()
        self.store = BoundedStore()
        self.exempt_tools: frozenset[str] = frozenset()
        self.metric_user_attributes: bool | Collection[str] = False
        # Roll-ups per trace are only kept while a TokenKPISpanProcessor exists to put them on roots.
        self.trace_rollup_consumers = 0
        self._default_metrics: KPIMetrics | None = None
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.store.after_fork_in_child)

    def configure(
        self,
        *,
        exempt_tools: Collection[str] | None = None,
        state_budget_bytes: int | None = None,
        state_ttl_s: float | None = None,
        metric_user_attributes: bool | Collection[str] | None = None,
    ) -> None:
        if exempt_tools is not None:
            self.exempt_tools = frozenset(exempt_tools)
        self.store.configure(state_budget_bytes, state_ttl_s)
        if metric_user_attributes is not None:
            self.metric_user_attributes = metric_user_attributes

    def default_metrics(self) -> KPIMetrics:
        """Instruments on the global MeterProvider (the processor's and record_outcome's)."""
        if self._default_metrics is None:
            self._default_metrics = KPIMetrics()
        return self._default_metrics

    def prepare(self, request: CallRequest) -> Future[ContextCounts] | None:
        """Called when the call starts: begin counting its new context (the items after a
        remembered prefix) while the request is in flight."""
        start, _ = resume_point(request.messages, request.model, self.exempt_tools)
        return self._counter.submit(request, start)

    # -- the per-call entry point ---------------------------------------------
    def call_attributes(
        self, record: CallRecord, prepared: Future[ContextCounts] | None = None, metrics: KPIMetrics | None = None
    ) -> dict[str, Any]:
        request, result, scope = record.request, record.result, record.scope
        attrs: dict[str, Any] = {}
        context: ContextCounts | None = None
        history: HistoryFold | None = None
        estimated = False
        if request.operation != "embeddings" and request.content_known:
            _wait_for(prepared)  # the new items' counts, cached on them
            history = fold_history(request, self.exempt_tools)
            definitions, definitions_exact = count_tool_definitions(request)
            context = ContextCounts(
                history.tokens,
                history.system_tokens,
                history.tool_result_tokens,
                definitions,
                history.exact and definitions_exact,
            )
            estimated = not context.exact
            attrs[sc.TOOLS_DEFINED_COUNT] = len(request.tools)
            attrs[sc.CONTEXT_SYSTEM_TOKENS] = context.system
            attrs[sc.CONTEXT_TOOL_DEFINITIONS_TOKENS] = context.tool_definitions
            attrs[sc.CONTEXT_TOOL_RESULTS_TOKENS] = context.tool_results
        if result is not None and context is not None:  # a foreign span without content: unknown, not 0
            attrs[sc.TOOL_CALLS_COUNT] = len(result.tool_calls)
        if result is not None:
            estimated_usage = estimate_missing_usage(record, context)
            if estimated_usage is not None:
                result.usage = estimated_usage
                estimated = True
        usage = result.usage if result is not None else None
        price_info = _price_info(request, result)
        attrs.update(_price_attributes(request, price_info, usage))

        state = self._conversation_state(scope)
        findings, duplicates_in_response = self._findings(record, context, history, usage, state, attrs)
        waste = apportion(findings, usage)
        attrs.update(waste_attributes(waste, usage))
        waste_cost = _waste_cost(price_info, waste, attrs.get(sc.COST_USD))
        if waste_cost is not None:
            attrs[sc.WASTE_COST_USD] = waste_cost
        if estimated:
            attrs[sc.TOKENS_ESTIMATED] = True

        if state is not None:
            _remember_outcome_target(state, scope, usage)
        self._feed_rollups(record, context, usage, waste, attrs, duplicates_in_response)
        kpi_metrics = metrics or self.default_metrics()
        kpi_metrics.record_call(
            record,
            waste.kinds,
            attrs.get(sc.COST_USD),
            attrs.get(sc.CONTEXT_UTILIZATION),
            metric_user_attributes(scope.user_attributes, self.metric_user_attributes),
        )
        return attrs

    def _findings(
        self,
        record: CallRecord,
        context: ContextCounts | None,
        history: HistoryFold | None,
        usage: Usage | None,
        state: ConversationState | None,
        attrs: dict[str, Any],
    ) -> tuple[WasteFindings, int]:
        """Run every rule whose inputs are present; write the context split and duplicate count."""
        request, result = record.request, record.result
        findings = WasteFindings(failed=record.error_type is not None)
        duplicate_calls = 0
        if context is not None and history is not None:
            resent, new = split_resent_new(history, request.server_history_ref, context.tool_definitions)
            if request.server_history_ref is not None and usage is not None and usage.input_tokens is not None:
                # History the server holds is input the request does not carry: already seen by the model.
                resent += max(0, usage.input_tokens - context.total)
            attrs[sc.CONTEXT_RESENT_TOKENS] = resent
            attrs[sc.CONTEXT_NEW_TOKENS] = new
            held_keys: Any = ()
            held_duplicates: Any = ()
            if state is not None and request.server_history_ref is not None:
                held_keys, held_duplicates = set(state.tool_keys), set(state.duplicate_call_ids)
            duplicates = find_duplicates(history, result, held_keys, held_duplicates)
            if state is not None and duplicates.results:
                # DESIGN: a duplicate's result is waste only on the call that FIRST sends it back.
                with state.lock:
                    duplicates.results = [i for i in duplicates.results if not state.charged_before(i.tool_call_id)]
                    if record.error_type is None:  # a failed call's messages count as not seen
                        state.remember_charged_results([i.tool_call_id for i in duplicates.results])
            model = request.model
            findings.duplicate_output_tokens = sum(count_tool_call(c, model).tokens for c in duplicates.calls)
            findings.duplicate_input_tokens = sum(count_item(i, model).tokens for i in duplicates.results)
            duplicate_calls = len(duplicates.calls)
            if result is not None:
                attrs[sc.TOOL_CALLS_DUPLICATE_COUNT] = duplicate_calls
            if usage is not None:
                findings.uncached_resent_tokens = max(0, resent - (usage.cache_read_tokens or 0))
            if state is not None and result is not None and record.error_type is None and result.tool_calls:
                with state.lock:
                    state.remember_tool_calls(
                        [tool_call_key(c) for c in result.tool_calls], [c.id for c in duplicates.calls if c.id]
                    )
        if result is not None and result.outputs:
            findings.truncated = is_truncated(result)
        if state is not None and request.content_known:
            fingerprint = request_fingerprint(request, history)
            started_at = record.scope.started_at
            with state.lock:
                findings.repeated = state.started_earlier(fingerprint, started_at)
                if record.error_type is None:  # a failed call's request counts as not seen
                    state.remember_request(fingerprint, started_at)
        return findings, duplicate_calls

    # -- state ---------------------------------------------------------------
    def _conversation_state(self, scope: CallScope) -> ConversationState | None:
        key = _conversation_key(scope)
        if key is None:
            return None
        return self.store.get(key, ConversationState)

    def holds_trace(self, trace_id: int) -> bool:
        """Lock-free: does the engine hold a roll-up or rule state for this trace?"""
        store = self.store
        return ("rollup", trace_id) in store or ("trace", trace_id) in store

    def end_trace(self, trace_id: int) -> Rollup | None:
        """The trace's local root ended: drop its rule state (keeping only what a
        late ``record_outcome(trace_id=...)`` needs) and hand back its roll-up."""
        if not self.holds_trace(trace_id):
            return None  # most traces hold no model call: no lock taken
        state: ConversationState | None = self.store.pop(("trace", trace_id))
        if state is not None and state.last_span is not None:
            self.store.get(("finished", trace_id), lambda: state.outcome_only())
        rollup: Rollup | None = self.store.pop(("rollup", trace_id))
        return rollup

    def trace_rollup(self, trace_id: int, create: bool) -> Rollup | None:
        if not self.trace_rollup_consumers:
            return None
        return self.store.get(("rollup", trace_id), Rollup if create else None)

    def outcome_target(self, conversation_id: str | None, trace_id: int | None) -> ConversationState | None:
        """State of a conversation or trace that may have ended, for a late outcome."""
        if conversation_id is not None:
            return self.store.get(("conversation", conversation_id))
        if trace_id is not None:
            return self.store.get(("trace", trace_id)) or self.store.get(("finished", trace_id))
        return None

    def _feed_rollups(
        self,
        record: CallRecord,
        context: ContextCounts | None,
        usage: Usage | None,
        waste: Waste,
        attrs: dict[str, Any],
        duplicate_calls: int,
    ) -> None:
        scope = record.scope
        # A call that is its trace's root carries its own roll-up, set here before its span ends;
        # calls under a span feed the trace's roll-up, which the processor puts on the root.
        is_root = not scope.has_parent
        trace_rollup = self.trace_rollup(scope.trace_id, True) if scope.trace_id and not is_root else None
        if not scope.rollups and trace_rollup is None and not is_root:
            return
        result = record.result
        summary = CallSummary(
            input_tokens=(usage.input_tokens or 0) if usage else 0,
            output_tokens=(usage.output_tokens or 0) if usage else 0,
            cache_read_tokens=(usage.cache_read_tokens or 0) if usage else 0,
            cost_usd=attrs.get(sc.COST_USD),
            waste_tokens=waste.total,
            waste_cost_usd=attrs.get(sc.WASTE_COST_USD),
            tool_calls=len(result.tool_calls) if result is not None else 0,
            duplicate_tool_calls=duplicate_calls,
            context_utilization=attrs.get(sc.CONTEXT_UTILIZATION),
        )
        if context is not None:  # count_tool_definitions cached each definition's count on it
            summary.offered_tools = [(t.name, t.count.tokens if t.count else 0) for t in record.request.tools]
        if result is not None:
            summary.used_tools = {call.name for call in result.tool_calls}
        for rollup in scope.rollups:
            rollup.add(summary)
        if trace_rollup is not None:
            trace_rollup.add(summary)
        if is_root:
            own = Rollup()
            own.add(summary)
            attrs.update(own.attributes())


def _conversation_key(scope: CallScope) -> Hashable | None:
    """gen_ai.conversation.id / conversation(id), else the trace when the call has a parent, else no state."""
    if scope.conversation_id:
        return ("conversation", scope.conversation_id)
    if scope.has_parent and scope.trace_id:
        return ("trace", scope.trace_id)
    return None


def _remember_outcome_target(state: ConversationState, scope: CallScope, usage: Usage | None) -> None:
    with state.lock:
        if scope.trace_id and scope.span_id:
            state.last_span = (scope.trace_id, scope.span_id)
        if usage is not None:
            state.tokens += (usage.input_tokens or 0) + (usage.output_tokens or 0)


def _wait_for(prepared: Future[ContextCounts] | None) -> None:
    if prepared is None:
        return
    try:
        prepared.result()
    except Exception:  # noqa: BLE001 - whatever it missed is counted inline
        pass


def _price_info(request: CallRequest, result: CallResult | None) -> prices.ModelInfo | None:
    model = (result.response_model if result is not None else None) or request.model
    info = prices.lookup(request.provider, model) if model else None
    if info is None and model != request.model and request.model:
        info = prices.lookup(request.provider, request.model)
    return info


def _price_attributes(request: CallRequest, info: prices.ModelInfo | None, usage: Usage | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    window = request.context_window or (info.context_window if info is not None else None)
    if window:
        attrs[sc.CONTEXT_WINDOW] = window
        # An embeddings batch is many inputs, each within the window: no utilization.
        if usage is not None and usage.input_tokens is not None and request.operation != "embeddings":
            attrs[sc.CONTEXT_UTILIZATION] = usage.input_tokens / window
    if info is None:
        return attrs
    if usage is not None and usage.input_tokens is not None:
        cost = prices.cost_usd(
            info,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens or 0,
            cache_read_tokens=usage.cache_read_tokens or 0,
            cache_write_tokens=usage.cache_write_tokens or 0,
        )
        if cost is not None:
            attrs[sc.COST_USD] = cost
    return attrs


def _waste_cost(info: prices.ModelInfo | None, waste: Waste, call_cost: float | None) -> float | None:
    """The price of the waste: the whole call's price when the whole call was waste;
    otherwise input-side waste at the uncached input rate and output-side at the output rate."""
    if info is None or not waste.kinds:
        return None
    if waste.whole_call:
        return call_cost
    return prices.cost_usd(info, input_tokens=waste.input_tokens, output_tokens=waste.output_tokens)


ENGINE = Engine()
ENGINE.configure(state_budget_bytes=DEFAULT_BUDGET_BYTES, state_ttl_s=DEFAULT_TTL_S)
