"""Local token counts of a request: the context breakdown, and usage for
streams whose provider reported none.

Re-sent history arrives every turn, so each part's count is cached on the part
(``counted_for`` / ``count``) and an unchanged message object the adapter
reuses is never counted twice. The new part of a long request is counted in a
worker thread while the HTTP call is in flight.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from . import tokens, tool_tokens
from .invocation import CallRequest, ContextItem, FinishedCall, ToolCall, ToolDefinition, Usage

# OpenAI's documented chat framing (openai-cookbook "How to count tokens"):
# each message costs 3 tokens besides its content, and every reply is primed
# with 3 more. Only used to estimate input when a stream reports no usage.
_TOKENS_PER_MESSAGE = 3
_REPLY_PRIMING_TOKENS = 3


@dataclass(slots=True)
class ContextCounts:
    """Locally counted tokens of a request's context, per part."""

    items_total: int = 0  # the messages' tokens
    system: int = 0
    tool_results: int = 0
    tool_definitions: int = 0
    exact: bool = True
    item_tokens: list[int] = field(default_factory=list)  # per message, when counted one by one here

    @property
    def total(self) -> int:
        return self.items_total + self.tool_definitions


def count_tool_call(call: ToolCall, model: str | None) -> tokens.TokenCount:
    name = tokens.count_text(call.name, model)
    args = tokens.count_text(call.arguments, model)
    return tokens.TokenCount(name.tokens + args.tokens, name.exact and args.exact)


def _counted(part: ContextItem, model: str | None) -> tokens.TokenCount | None:
    """The exact count an earlier call made of this (re-sent) part for ``model``, if any."""
    memo = part.memo
    count = memo.count
    return count if count is not None and count.exact and memo.counted_for == model else None


def count_item(item: ContextItem, model: str | None) -> tokens.TokenCount:
    """An item's tokens: its text plus its tool calls' names and arguments."""
    if (known := _counted(item, model)) is not None:
        return known
    count = tokens.count_text(item.text, model) if item.text else tokens.TokenCount(0, True)
    total, exact = count.tokens, count.exact
    for call in item.tool_calls:
        c = count_tool_call(call, model)
        total += c.tokens
        exact = exact and c.exact
    count = item.memo.count = tokens.TokenCount(total, exact)
    item.memo.counted_for = model
    return count


def count_tool_definition(tool: ToolDefinition, model: str | None) -> tokens.TokenCount:
    """One tool's tokens: its provider-billed count once :func:`count_tool_definitions` cached it,
    else the provider-neutral estimate (name, description and compact JSON schema)."""
    memo = tool.memo
    if memo.count is not None and memo.counted_for is not None:
        return memo.count
    return tool_tokens.estimate_tool(tool, model)


def count_parts(
    items: list[ContextItem], tools: list[ToolDefinition], model: str | None, request: CallRequest | None = None
) -> ContextCounts:
    """Per-item tokens and the breakdown; each part's count is cached on it. The tools are counted
    as ``request``'s provider bills them (:func:`count_tool_definitions`), as estimates without it."""
    item_tokens: list[int] = []
    append = item_tokens.append
    system = tool_results = 0
    exact = True
    for item in items:
        c = count_item(item, model)
        append(c.tokens)
        exact = exact and c.exact
        if item.role == "system":
            system += c.tokens
        elif item.role == "tool":
            tool_results += c.tokens
    if request is not None:
        definitions, definitions_exact = count_tool_definitions(request)
    else:
        estimates = [tool_tokens.estimate_tool(t, model) for t in tools]
        definitions, definitions_exact = sum(c.tokens for c in estimates), all(c.exact for c in estimates)
    return ContextCounts(sum(item_tokens), system, tool_results, definitions, exact and definitions_exact, item_tokens)


def count_tool_definitions(request: CallRequest) -> tuple[int, bool]:
    """The request's tool-definition tokens as its provider bills them (:mod:`.tool_tokens`): each
    tool's own count, cached on its definition, plus the request's overhead (OpenAI's namespace
    wrapper and framing, Anthropic's tool-use system prompt). ``(tokens, exact)``."""
    tools = request.tools
    if not tools:
        return 0, True
    system = next((m.text for m in request.messages if m.role == "system" and m.text), None)
    counted = tool_tokens.count_request_tools(
        tools,
        request.provider,
        request.model,
        tool_choice=request.tool_choice,
        system_text=system,
        api=request.api,
    )
    for tool, own in zip(tools, counted.per_tool, strict=True):
        tool.memo.count, tool.memo.counted_for = tokens.TokenCount(own, counted.exact), request.model
    return counted.total, counted.exact


def estimate_missing_usage(record: FinishedCall, context: ContextCounts | None) -> Usage | None:
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


def uncounted_chars(items: list[ContextItem], tools: list[ToolDefinition], model: str | None) -> int:
    chars = 0
    for item in items:
        if _counted(item, model) is None:
            chars += len(item.text) + sum(len(c.arguments) + len(c.name) for c in item.tool_calls)
    for tool in tools:
        if tool.memo.count is None:
            chars += len(tool.parameters_json) + len(tool.description)
    return chars


class BackgroundCounter:
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

    def submit(self, request: CallRequest, start: int = 0) -> Future[ContextCounts] | None:
        """Count ``request.messages[start:]`` and the tools (earlier items are known to be counted)."""
        items, tools, model = request.messages[start:], request.tools, request.model
        if request.operation == "embeddings" or uncounted_chars(items, tools, model) < _BACKGROUND_MIN_CHARS:
            return None
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="otel_tokenkpi-count")
            executor = self._executor
        try:
            return executor.submit(count_parts, items, tools, model, request)
        except RuntimeError:  # interpreter shutting down: count inline
            return None

    def _after_fork_in_child(self) -> None:
        self._executor, self._lock = None, threading.Lock()
