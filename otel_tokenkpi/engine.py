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
import time
from collections.abc import Collection, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from . import cache_rules, prices, tokens
from . import semconv as sc
from .breakdown import Breakdown, reconcile
from .counting import (
    BackgroundCounter,
    ContextCounts,
    count_tool_definitions,
    estimate_missing_usage,
)
from .history import HistoryFold, fold_history, resume_point
from .identity import request_fingerprint
from .invocation import CallRequest, CallResult, CallSurroundings, FinishedCall, Usage
from .kpi_metrics import KPIMetrics, metric_user_attributes
from .rollup import CallSummary, Rollup
from .state import DEFAULT_BUDGET_BYTES, DEFAULT_TTL_S, BoundedStore, ConversationState
from .waste import (
    Waste,
    WasteFindings,
    apportion,
    duplicate_tokens,
    duplicate_tool_calls,
    is_truncated,
    repeated_request,
    split_resent_new,
    uncached_resent_tokens,
    waste_attributes,
)


@dataclass(slots=True)
class Assessment:
    """What the engine makes of one finished call: its ``tokenkpi.*`` attributes, and the usage they
    were computed from (the provider's, or an estimate where it reported none: then the attributes say
    ``tokenkpi.tokens.estimated``). The call record itself is never changed."""

    attributes: dict[str, Any]
    usage: Usage | None


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
        self, record: FinishedCall, prepared: Future[ContextCounts] | None = None, metrics: KPIMetrics | None = None
    ) -> dict[str, Any]:
        """The call's ``tokenkpi.*`` attributes (:meth:`assess` without the usage)."""
        return self.assess(record, prepared, metrics).attributes

    def assess(
        self, record: FinishedCall, prepared: Future[ContextCounts] | None = None, metrics: KPIMetrics | None = None
    ) -> Assessment:
        """Counts, rules, state, prices, roll-ups and metrics for one finished call, in that order."""
        request, result, scope = record.request, record.result, record.surroundings
        attrs: dict[str, Any] = {}
        context, history = self._count_context(request, prepared)
        estimated = context is not None and not context.exact
        usage = result.usage if result is not None else None
        if result is not None and (estimated_usage := estimate_missing_usage(record, context)) is not None:
            usage, estimated = estimated_usage, True
        if context is not None:
            attrs[sc.TOOLS_DEFINED_COUNT] = len(request.tools)
            if result is not None:  # a foreign span without content: unknown, not 0
                attrs[sc.TOOL_CALLS_COUNT] = len(result.tool_calls)
        price_info = _price_info(request, result)
        attrs.update(_price_attributes(request, price_info, usage))

        state = self._conversation_state(scope)
        findings = WasteFindings(failed=record.error_type is not None)
        duplicate_calls = 0
        if context is not None and history is not None:
            breakdown = _reconciled_breakdown(context, history, request, usage)
            estimated = estimated or breakdown.scaled
            attrs.update(_breakdown_attributes(breakdown))
            duplicates = duplicate_tool_calls(history, request, result, state, findings.failed)
            findings.duplicate_output_tokens, findings.duplicate_input_tokens = duplicate_tokens(
                duplicates, request.model
            )
            duplicate_calls = len(duplicates.calls)
            if result is not None:
                attrs[sc.TOOL_CALLS_DUPLICATE_COUNT] = duplicate_calls
            cache_rule = cache_rules.rule_for(request.provider, _model_of(request, result))
            findings.uncached_resent_tokens = uncached_resent_tokens(breakdown.resent, usage, cache_rule)
        if result is not None and result.outputs:
            findings.truncated = is_truncated(result)
        if state is not None and request.content_known:
            fingerprint = request_fingerprint(request, history)
            findings.repeated = repeated_request(fingerprint, scope.started_at, state, findings.failed)
        waste = apportion(findings, usage)
        attrs.update(waste_attributes(waste, usage))
        waste_cost = _waste_cost(price_info, waste, attrs.get(sc.COST_USD))
        if waste_cost is not None:
            attrs[sc.WASTE_COST_USD] = waste_cost
        if estimated:
            attrs[sc.TOKENS_ESTIMATED] = True

        if state is not None:
            _remember_outcome_target(state, scope, usage)
        self._feed_rollups(record, context, usage, waste, attrs, duplicate_calls)
        kpi_metrics = metrics or self.default_metrics()
        kpi_metrics.add_call(
            record,
            waste.kinds,
            attrs.get(sc.COST_USD),
            attrs.get(sc.CONTEXT_UTILIZATION),
            metric_user_attributes(scope.user_attributes, self.metric_user_attributes),
        )
        return Assessment(attrs, usage)

    def _count_context(
        self, request: CallRequest, prepared: Future[ContextCounts] | None
    ) -> tuple[ContextCounts | None, HistoryFold | None]:
        """The request's local counts by part, and its history fold; (None, None) when its content is
        unknown (a foreign span without content) or not context (embeddings)."""
        if request.operation == "embeddings" or not request.content_known:
            return None, None
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
        return context, history

    # -- state ---------------------------------------------------------------
    def _conversation_state(self, scope: CallSurroundings) -> ConversationState | None:
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
        record: FinishedCall,
        context: ContextCounts | None,
        usage: Usage | None,
        waste: Waste,
        attrs: dict[str, Any],
        duplicate_calls: int,
    ) -> None:
        scope = record.surroundings
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
            summary.offered_tools = [(t.name, t.memo.count.tokens if t.memo.count else 0) for t in record.request.tools]
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


def _reconciled_breakdown(
    context: ContextCounts, history: HistoryFold, request: CallRequest, usage: Usage | None
) -> Breakdown:
    """The context split into re-sent and new, reconciled with the billed input."""
    resent, new = split_resent_new(history, request.server_history_ref, context.tool_definitions)
    billed_input = usage.input_tokens if usage is not None else None
    if request.server_history_ref is not None and billed_input is not None:
        # History the server holds is input the request does not carry: already seen by the model.
        resent += max(0, billed_input - context.total)
    return reconcile(context.system, context.tool_definitions, context.tool_results, resent, new, billed_input)


def _breakdown_attributes(breakdown: Breakdown) -> dict[str, int]:
    attrs = {
        sc.CONTEXT_SYSTEM_TOKENS: breakdown.system,
        sc.CONTEXT_TOOL_DEFINITIONS_TOKENS: breakdown.tool_definitions,
        sc.CONTEXT_TOOL_RESULTS_TOKENS: breakdown.tool_results,
        sc.CONTEXT_RESENT_TOKENS: breakdown.resent,
        sc.CONTEXT_NEW_TOKENS: breakdown.new,
    }
    if breakdown.unattributed is not None:
        attrs[sc.CONTEXT_UNATTRIBUTED_TOKENS] = breakdown.unattributed
    return attrs


def _model_of(request: CallRequest, result: CallResult | None) -> str | None:
    """The most specific model name known: the response's (a dated snapshot), else the request's."""
    return (result.response_model if result is not None else None) or request.model


def _conversation_key(scope: CallSurroundings) -> Hashable | None:
    """gen_ai.conversation.id / conversation(id), else the trace when the call has a parent, else no state."""
    if scope.conversation_id:
        return ("conversation", scope.conversation_id)
    if scope.has_parent and scope.trace_id:
        return ("trace", scope.trace_id)
    return None


def _remember_outcome_target(state: ConversationState, scope: CallSurroundings, usage: Usage | None) -> None:
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
    model = _model_of(request, result)
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


# How long instrument() and the span processor wait for the local tokenizer data and price table.
LOCAL_DATA_WAIT_S = 10.0


def load_local_data(wait_s: float = LOCAL_DATA_WAIT_S) -> bool:
    """Load the tokenizer data and the price table present on this machine, waiting up to ``wait_s``.

    Why wait: until they are loaded, counts are estimated and prices unknown, so the same run would give
    different figures on a slow machine than on a fast one (docs/architecture.md "Determinism"). ``instrument()``
    and the span processor wait here, once per process and before any call they see; nothing ever
    waits on a user's call. Loading reads local files only (about 0.3-1 s); data that is not on the
    machine is not waited for. True when both are ready.
    """
    deadline = time.monotonic() + max(0.0, wait_s)
    tokens.start_loading()
    prices.start_loading()
    tokens_ready = tokens.wait_until_loaded(max(0.0, deadline - time.monotonic()))
    return prices.wait_until_loaded(max(0.0, deadline - time.monotonic())) and tokens_ready


ENGINE = Engine()
ENGINE.configure(state_budget_bytes=DEFAULT_BUDGET_BYTES, state_ttl_s=DEFAULT_TTL_S)
