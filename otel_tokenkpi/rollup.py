"""Roll-ups: what the model calls under one span added up to.

A :class:`Rollup` collects :class:`CallSummary` values (one per model call)
and outcomes; ``attributes()`` turns them into the ``tokenkpi.trace.*``
attributes of docs/architecture.md. ``task()`` spans own one each; the processor keeps
one per trace for the local root span.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from . import semconv as sc
from .state import ENTRY_BASE_BYTES, FINGERPRINT_BYTES


@dataclass(slots=True)
class CallSummary:
    """One model call's contribution to every roll-up around it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float | None = None
    waste_tokens: int = 0
    waste_cost_usd: float | None = None
    tool_calls: int = 0
    duplicate_tool_calls: int = 0
    context_utilization: float | None = None
    offered_tools: list[tuple[str, int]] = field(default_factory=list)  # (name, definition tokens)
    used_tools: set[str] = field(default_factory=set)


class Rollup:
    __slots__ = (
        "llm_calls",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "waste_tokens",
        "waste_cost_usd",
        "tool_calls",
        "max_tool_fanout",
        "duplicate_tool_calls",
        "max_context_utilization",
        "offered_tool_tokens",
        "used_tools",
        "successes",
        "failures",
        "own_outcome",
        "user_attributes",
        "_lock",
    )

    MAX_TOOL_NAMES = 256
    MAX_UNUSED_NAMES_SHOWN = 32

    def __init__(self, user_attributes: dict[str, Any] | None = None) -> None:
        self.llm_calls = self.input_tokens = self.output_tokens = self.cache_read_tokens = 0
        self.waste_tokens = self.tool_calls = self.max_tool_fanout = self.duplicate_tool_calls = 0
        self.cost_usd: float | None = None
        self.waste_cost_usd: float | None = None
        self.max_context_utilization: float | None = None
        self.offered_tool_tokens: dict[str, int] = {}  # tool name -> its definition tokens summed over calls
        self.used_tools: set[str] = set()
        self.successes = self.failures = 0
        self.own_outcome: bool | None = None  # recorded directly on this scope
        self.user_attributes = dict(user_attributes or {})
        self._lock = threading.Lock()

    def add(self, call: CallSummary) -> None:
        with self._lock:
            self.llm_calls += 1
            self.input_tokens += call.input_tokens
            self.output_tokens += call.output_tokens
            self.cache_read_tokens += call.cache_read_tokens
            if call.cost_usd is not None:
                self.cost_usd = (self.cost_usd or 0.0) + call.cost_usd
            self.waste_tokens += call.waste_tokens
            if call.waste_cost_usd is not None:
                self.waste_cost_usd = (self.waste_cost_usd or 0.0) + call.waste_cost_usd
            self.tool_calls += call.tool_calls
            self.max_tool_fanout = max(self.max_tool_fanout, call.tool_calls)
            self.duplicate_tool_calls += call.duplicate_tool_calls
            if call.context_utilization is not None:
                self.max_context_utilization = max(self.max_context_utilization or 0.0, call.context_utilization)
            for name, tokens in call.offered_tools:
                if name in self.offered_tool_tokens or len(self.offered_tool_tokens) < self.MAX_TOOL_NAMES:
                    self.offered_tool_tokens[name] = self.offered_tool_tokens.get(name, 0) + tokens
            if len(self.used_tools) < self.MAX_TOOL_NAMES:
                self.used_tools.update(call.used_tools)

    def add_outcome(self, success: bool, own: bool) -> None:
        with self._lock:
            if success:
                self.successes += 1
            else:
                self.failures += 1
            if own:
                self.own_outcome = success

    @property
    def outcome(self) -> str | None:
        """The outcome recorded on this scope; else failure if any inner one failed, else success."""
        if self.own_outcome is not None:
            return "success" if self.own_outcome else "failure"
        if self.failures:
            return "failure"
        return "success" if self.successes else None

    @property
    def has_content(self) -> bool:
        return bool(self.llm_calls or self.successes or self.failures)

    def unused_tool_definitions_tokens(self) -> int:
        return sum(tokens for name, tokens in self.offered_tool_tokens.items() if name not in self.used_tools)

    def unused_tool_names(self) -> tuple[str, ...]:
        unused = [(-tokens, name) for name, tokens in self.offered_tool_tokens.items() if name not in self.used_tools]
        return tuple(name for _, name in sorted(unused)[: self.MAX_UNUSED_NAMES_SHOWN])

    def attributes(self) -> dict[str, Any]:
        with self._lock:
            attrs: dict[str, Any] = dict(self.user_attributes)
            billed = self.input_tokens + self.output_tokens
            attrs.update(
                {
                    sc.TRACE_LLM_CALLS: self.llm_calls,
                    sc.TRACE_INPUT_TOKENS: self.input_tokens,
                    sc.TRACE_OUTPUT_TOKENS: self.output_tokens,
                    sc.TRACE_CACHE_READ_TOKENS: self.cache_read_tokens,
                    sc.TRACE_WASTE_TOKENS: self.waste_tokens,
                    sc.TRACE_WASTE_UNUSED_TOOL_DEFINITIONS_TOKENS: self.unused_tool_definitions_tokens(),
                    sc.TRACE_TOOL_CALLS: self.tool_calls,
                    sc.TRACE_MAX_TOOL_FANOUT: self.max_tool_fanout,
                    sc.TRACE_DUPLICATE_TOOL_CALLS: self.duplicate_tool_calls,
                }
            )
            unused_names = self.unused_tool_names()
            if unused_names:
                attrs[sc.TRACE_UNUSED_TOOL_NAMES] = unused_names
            if billed:
                attrs[sc.TRACE_WASTE_RATIO] = self.waste_tokens / billed
            if self.cost_usd is not None:
                attrs[sc.TRACE_COST_USD] = self.cost_usd
            if self.waste_cost_usd is not None:
                attrs[sc.TRACE_WASTE_COST_USD] = self.waste_cost_usd
            if self.max_context_utilization is not None:
                attrs[sc.TRACE_MAX_CONTEXT_UTILIZATION] = self.max_context_utilization
            outcome = self.outcome
            if outcome is not None:
                attrs[sc.OUTCOME] = outcome
            if self.successes:
                attrs[sc.TRACE_TOKENS_PER_SUCCESS] = billed / self.successes
            return attrs

    def estimated_bytes(self) -> int:
        return ENTRY_BASE_BYTES + FINGERPRINT_BYTES * (len(self.offered_tool_tokens) + len(self.used_tools))
