"""The engine's entry point: a finished call record in, ``tokenkpi.*`` out.

The lifecycle calls :meth:`Engine.call_attributes` for every model call our
adapters make, sampled or not, and sets what it returns on the span before
``span.end()``. The rules here are plain functions over the record so they
can be tested without a span. This module holds the per-call context
breakdown, local usage counting, price and context-window lookups; the waste
rules plug in at the same entry point.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import prices, tokens
from . import semconv as sc
from .record import CallRecord, CallRequest, CallResult, ContextItem, ToolCall, ToolDefinition, Usage

# OpenAI's documented chat framing (openai-cookbook "How to count tokens"):
# each message costs 3 tokens besides its content, and every reply is primed
# with 3 more. Only used to estimate input when a stream reports no usage.
_TOKENS_PER_MESSAGE = 3
_REPLY_PRIMING_TOKENS = 3


@dataclass(slots=True)
class ContextCounts:
    """Locally counted tokens of a request's context, per part."""

    item_tokens: list[int] = field(default_factory=list)
    system: int = 0
    tool_results: int = 0
    tool_definitions: int = 0
    exact: bool = True

    @property
    def total(self) -> int:
        return sum(self.item_tokens) + self.tool_definitions


def count_tool_call(call: ToolCall, model: str | None) -> tokens.TokenCount:
    name = tokens.count_text(call.name, model)
    args = tokens.count_text(call.arguments, model)
    return tokens.TokenCount(name.tokens + args.tokens, name.exact and args.exact)


def _counted(part: ContextItem | ToolDefinition, model: str | None) -> bool:
    """True when an earlier call already counted this (re-sent) part exactly."""
    return part.counted_for == model and part.count is not None and part.count.exact


def count_item(item: ContextItem, model: str | None) -> tokens.TokenCount:
    """An item's tokens: its text plus its tool calls' names and arguments."""
    if _counted(item, model):
        return item.count
    count = tokens.count_text(item.text, model) if item.text else tokens.TokenCount(0, True)
    total, exact = count.tokens, count.exact
    for call in item.tool_calls:
        c = count_tool_call(call, model)
        total += c.tokens
        exact = exact and c.exact
    item.count, item.counted_for = tokens.TokenCount(total, exact), model
    return item.count


def count_tool_definition(tool: ToolDefinition, model: str | None) -> tokens.TokenCount:
    """Name, description and compact JSON schema (DESIGN.md "Counting")."""
    if _counted(tool, model):
        return tool.count
    parts = [tokens.count_text(t, model) for t in (tool.name, tool.description, tool.parameters_json) if t]
    tool.count, tool.counted_for = tokens.TokenCount(sum(p.tokens for p in parts), all(p.exact for p in parts)), model
    return tool.count


def count_context(request: CallRequest) -> ContextCounts:
    counts = ContextCounts()
    model = request.model
    for item in request.messages:
        c = count_item(item, model)
        counts.item_tokens.append(c.tokens)
        counts.exact = counts.exact and c.exact
        if item.role == "system":
            counts.system += c.tokens
        elif item.role == "tool":
            counts.tool_results += c.tokens
    for tool in request.tools:
        c = count_tool_definition(tool, model)
        counts.tool_definitions += c.tokens
        counts.exact = counts.exact and c.exact
    return counts


def estimate_missing_usage(record: CallRecord, context: ContextCounts | None) -> Usage | None:
    """Usage for a call whose provider reported none (a stream without
    ``include_usage``): output counted from the streamed text and tool-call
    arguments, input from the request's content plus documented framing.
    Returns None when there is nothing to count from."""
    result = record.result
    # A stream left early: the model produced (and billed) tokens we never saw.
    if result is None or result.usage is not None or not record.complete or record.request.operation == "embeddings":
        return None
    model = record.request.model
    output_tokens = tokens.count_text(result.output_text, model).tokens
    output_tokens += sum(count_tool_call(call, model).tokens for call in result.tool_calls)
    input_tokens = None
    if context is not None:
        input_tokens = context.total + _TOKENS_PER_MESSAGE * len(record.request.messages) + _REPLY_PRIMING_TOKENS
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens)


# Below this many characters of not-yet-counted text, counting inline is
# cheaper than handing the work to the background thread.
_BACKGROUND_MIN_CHARS = 2048


def uncounted_chars(request: CallRequest) -> int:
    model = request.model
    chars = 0
    for item in request.messages:
        if not _counted(item, model):
            chars += len(item.text) + sum(len(c.arguments) + len(c.name) for c in item.tool_calls)
    for tool in request.tools:
        if not _counted(tool, model):
            chars += len(tool.parameters_json) + len(tool.description)
    return chars


class _BackgroundCounter:
    """Counts a request's new context while the request is in flight.

    Tokenizing the new part of a long agent turn (a 2k-token tool result:
    ~300 us) would otherwise sit on the user's call after the response
    arrives. tiktoken releases the GIL while it encodes, so one worker thread
    does it in parallel with the HTTP round trip, and the result is picked up
    when the call ends. A forked child starts its own worker.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)

    def submit(self, request: CallRequest) -> Future[ContextCounts] | None:
        if request.operation == "embeddings" or uncounted_chars(request) < _BACKGROUND_MIN_CHARS:
            return None
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="otel_tokenkpi-count")
            executor = self._executor
        try:
            return executor.submit(count_context, request)
        except RuntimeError:  # interpreter shutting down: count inline
            return None

    def _after_fork_in_child(self) -> None:
        self._executor, self._lock = None, threading.Lock()


class Engine:
    """Computes the per-call ``tokenkpi.*`` attributes. One per process."""

    def __init__(self) -> None:
        self._counter = _BackgroundCounter()

    def prepare(self, request: CallRequest) -> Future[ContextCounts] | None:
        """Called when the call starts: begin counting its new context."""
        return self._counter.submit(request)

    def call_attributes(self, record: CallRecord, prepared: Future[ContextCounts] | None = None) -> dict[str, Any]:
        request, result = record.request, record.result
        attrs: dict[str, Any] = {}
        estimated = False
        context: ContextCounts | None = None
        if request.operation != "embeddings":
            context = _result_or_none(prepared) or count_context(request)
            estimated = not context.exact
            attrs[sc.TOOLS_DEFINED_COUNT] = len(request.tools)
            attrs[sc.CONTEXT_SYSTEM_TOKENS] = context.system
            attrs[sc.CONTEXT_TOOL_DEFINITIONS_TOKENS] = context.tool_definitions
            attrs[sc.CONTEXT_TOOL_RESULTS_TOKENS] = context.tool_results
            if result is not None:
                attrs[sc.TOOL_CALLS_COUNT] = len(result.tool_calls)
        if result is not None:
            estimated_usage = estimate_missing_usage(record, context)
            if estimated_usage is not None:
                result.usage = estimated_usage
                estimated = True
        usage = result.usage if result is not None else None
        attrs.update(_price_attributes(request, result, usage))
        if estimated:
            attrs[sc.TOKENS_ESTIMATED] = True
        return attrs


def _result_or_none(prepared: Future[ContextCounts] | None) -> ContextCounts | None:
    if prepared is None:
        return None
    try:
        return prepared.result()
    except Exception:  # noqa: BLE001 - counted inline instead
        return None


def _price_attributes(request: CallRequest, result: CallResult | None, usage: Usage | None) -> dict[str, Any]:
    model = (result.response_model if result is not None else None) or request.model
    info = prices.lookup(request.provider, model) if model else None
    if info is None and model != request.model and request.model:
        info = prices.lookup(request.provider, request.model)
    if info is None:
        return {}
    attrs: dict[str, Any] = {}
    if info.context_window:
        attrs[sc.CONTEXT_WINDOW] = info.context_window
        # An embeddings batch is many inputs, each within the window: no utilization.
        if usage is not None and usage.input_tokens is not None and request.operation != "embeddings":
            attrs[sc.CONTEXT_UTILIZATION] = usage.input_tokens / info.context_window
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


ENGINE = Engine()
