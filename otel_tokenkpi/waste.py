"""The waste rules, as plain functions over a call record.

Each rule answers one question about one model call (DESIGN.md "Definitions")
and can be tested without a span. Most need no memory because chat APIs are
stateless: every request re-sends the conversation, so the request itself
says what the model already saw. The engine (:mod:`otel_tokenkpi.engine`)
feeds them counts and, where a rule needs memory, conversation state; then
:func:`apportion` applies precedence and caps so that no token is waste twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import semconv as sc
from .record import CallRequest, CallResult, ContextItem, ToolCall, Usage

if TYPE_CHECKING:
    from .history import HistoryFold

# Finish reasons meaning "cut off by the token limit", as providers spell them
# (OpenAI length, Anthropic/Bedrock max_tokens, Gemini MAX_TOKENS, Responses max_output_tokens).
# Mistral's ``model_length``: cut at the model's context length, the output is as incomplete.
TRUNCATION_FINISH_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "model_length"})

# Request parameters that do not change what the model is asked (DESIGN.md "Identical requests").
_IGNORED_PARAMS = frozenset({sc.REQUEST_STREAM})

# Fingerprints are keyed with a per-process random key and never leave memory.
_FINGERPRINT_KEY = os.urandom(16)


def canonical_json(text: str) -> str:
    """Arguments as a JSON value: key order and whitespace do not matter."""
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        return text.strip()


def tool_call_key(call: ToolCall) -> tuple[str, str]:
    """Two tool calls are identical when name and arguments (as JSON values) are."""
    if call.key is None:
        call.key = (call.name, canonical_json(call.arguments or ""))
    return call.key


def split_resent_new(
    history: HistoryFold, server_history_ref: str | None, tool_definition_tokens: int
) -> tuple[int, int]:
    """(re-sent, new) tokens of the request's own content.

    Items up to and including the last assistant message were already seen by
    the model. System instructions and tool definitions were seen too once the
    conversation has any assistant turn (in the request, or held by the server).
    """
    seen_before = history.has_assistant or server_history_ref is not None
    if history.has_assistant:
        resent = history.tokens_through_last_assistant + history.system_tokens_after_last_assistant
    elif seen_before:
        resent = history.system_tokens
    else:
        resent = 0
    new = history.tokens - resent
    if seen_before:
        resent += tool_definition_tokens
    else:
        new += tool_definition_tokens
    return resent, new


@dataclass(slots=True)
class Duplicates:
    """Duplicate tool calls a response asks for, and results of earlier
    duplicates that this request sends back for the first time."""

    calls: list[ToolCall] = field(default_factory=list)
    results: list[ContextItem] = field(default_factory=list)


def find_duplicates(
    history: HistoryFold,
    result: CallResult | None,
    known_keys: Collection[tuple[str, str]] = (),
    known_duplicate_ids: Collection[str] = (),
) -> Duplicates:
    """Duplicates by DESIGN.md's rule, from the request's own history (``history``
    was folded with the exempt tools left out).

    ``known_keys`` / ``known_duplicate_ids`` add history the server holds
    (Responses ``previous_response_id``), remembered by the engine.
    """
    found = Duplicates()
    duplicate_ids = history.duplicate_call_ids
    # Results after the last assistant message answer its calls: they are sent back now, for the first time.
    for item in history.results_after_last_assistant:
        if item.tool_call_id and (item.tool_call_id in duplicate_ids or item.tool_call_id in known_duplicate_ids):
            found.results.append(item)
    if result is not None:
        in_response: set[tuple[str, str]] = set()
        for call in result.tool_calls:
            if call.name in history.exempt_tools:
                continue
            key = tool_call_key(call)
            if key in history.tool_call_keys or key in known_keys or key in in_response:
                found.calls.append(call)
            in_response.add(key)
    return found


def is_truncated(result: CallResult) -> bool:
    return any(reason.lower() in TRUNCATION_FINISH_REASONS for reason in result.finish_reasons)


def item_fingerprint(item: ContextItem) -> int:
    if item.fingerprint is None:
        calls = tuple(tool_call_key(call) for call in item.tool_calls)
        item.fingerprint = hash((item.role, item.text, item.tool_call_id, item.is_instructions, calls))
    return item.fingerprint


def request_fingerprint(request: CallRequest, history: HistoryFold | None) -> int:
    """The canonical request: what the model is asked, minus transport options.

    Its content part is the history fold's fingerprint chain (one hash per
    item, cached on re-sent items), so a long history is never serialised.
    Requests that are not folded (embeddings) hash their items' fingerprints.
    """
    if history is not None:
        content: tuple[int, int] = (history.items, history.fingerprint)
    else:
        content = (len(request.messages), hash(tuple([item_fingerprint(item) for item in request.messages])))
    params = tuple(
        sorted(
            (key, tuple(value) if isinstance(value, list) else value)
            for key, value in request.params.items()
            if key not in _IGNORED_PARAMS
        )
    )
    tools = tuple((tool.name, tool.description, tool.parameters_json) for tool in request.tools)
    return hash(
        (
            _FINGERPRINT_KEY,
            request.operation,
            request.provider,
            request.model,
            params,
            content,
            tools,
            request.server_history_ref,
        )
    )


@dataclass(slots=True)
class WasteFindings:
    """What each rule found for one call, before precedence. ``None`` means the
    rule could not be evaluated (its inputs are missing): its attribute is absent."""

    failed: bool = False
    repeated: bool | None = None
    truncated: bool | None = None
    duplicate_output_tokens: int | None = None  # duplicate tool calls in the response
    duplicate_input_tokens: int | None = None  # first results of earlier duplicates
    uncached_resent_tokens: int | None = None  # max(0, re-sent - cache read)


@dataclass(slots=True)
class Waste:
    """Tokens each kind took, after precedence and caps."""

    kinds: dict[str, int]
    input_tokens: int = 0
    output_tokens: int = 0
    whole_call: bool = False  # failed or repeated: the whole call (and its price) is waste

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


def apportion(findings: WasteFindings, usage: Usage | None) -> Waste:
    """Precedence and caps (DESIGN.md): failed call, repeated request,
    truncated output, duplicate tool calls, uncached re-sent context. Each kind
    takes from what is left of the provider's input and output tokens, so the
    kinds sum to the total and the ratio stays in [0, 1]."""
    if usage is None or usage.input_tokens is None:
        # Nothing to cap against. A failed call without reported usage billed nothing we know of.
        return Waste({"failed_call": 0} if findings.failed else {})
    input_left, output_left = max(0, usage.input_tokens), max(0, usage.output_tokens or 0)
    waste = Waste({})

    def take(kind: str, wanted_input: int, wanted_output: int) -> None:
        nonlocal input_left, output_left
        got_input, got_output = min(max(0, wanted_input), input_left), min(max(0, wanted_output), output_left)
        input_left, output_left = input_left - got_input, output_left - got_output
        waste.input_tokens += got_input
        waste.output_tokens += got_output
        waste.kinds[kind] = got_input + got_output

    take("failed_call", input_left if findings.failed else 0, output_left if findings.failed else 0)
    if findings.repeated is not None:
        take("repeated_request", input_left if findings.repeated else 0, output_left if findings.repeated else 0)
    waste.whole_call = findings.failed or bool(findings.repeated)
    if findings.truncated is not None:
        take("truncated_output", 0, output_left if findings.truncated else 0)
    if findings.duplicate_output_tokens is not None or findings.duplicate_input_tokens is not None:
        take("duplicate_tool_call", findings.duplicate_input_tokens or 0, findings.duplicate_output_tokens or 0)
    if findings.uncached_resent_tokens is not None:
        take("uncached_resent", findings.uncached_resent_tokens, 0)
    return waste


def waste_attributes(waste: Waste, usage: Usage | None) -> dict[str, int | float]:
    """The span attributes of apportioned waste: one per evaluated kind, the total and the ratio."""
    if not waste.kinds:
        return {}
    attrs: dict[str, int | float] = {sc.WASTE_KIND_ATTRIBUTES[kind]: tokens for kind, tokens in waste.kinds.items()}
    attrs[sc.WASTE_TOKENS] = waste.total
    billed = (usage.input_tokens or 0) + (usage.output_tokens or 0) if usage is not None else 0
    if billed > 0:
        attrs[sc.WASTE_RATIO] = waste.total / billed
    return attrs
