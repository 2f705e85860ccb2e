"""The waste rules, each in one place, as plain functions over a call.

Each rule answers one question about one model call (docs/architecture.md "Definitions") and can be tested
without a span. Most need no memory because chat APIs are stateless: every request re-sends the
conversation, so the request itself says what the model already saw. The two that do need memory
(duplicate tool calls, repeated requests) take the conversation state explicitly and return values;
the engine (:mod:`otel_tokenkpi.engine`) only wires counts, state and rules together. Then
:func:`apportion` applies precedence and caps so that no token is waste twice.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum

from . import semconv as sc
from .cache_rules import CacheRule
from .counting import count_item, count_tool_call
from .history import HistoryFold
from .identity import tool_call_key
from .invocation import CallRequest, CallResult, ContextItem, ToolCall, Usage
from .state import ConversationState


class WasteKind(str, Enum):
    """The kinds of waste, in precedence order (docs/architecture.md "Precedence"). The value is the
    ``tokenkpi.waste.kind`` metric attribute."""

    FAILED_CALL = "failed_call"
    REPEATED_REQUEST = "repeated_request"
    TRUNCATED_OUTPUT = "truncated_output"
    DUPLICATE_TOOL_CALL = "duplicate_tool_call"
    UNCACHED_RESENT = "uncached_resent"

    @property
    def attribute(self) -> str:
        """The span attribute holding this kind's tokens."""
        return sc.WASTE_KIND_ATTRIBUTES[self.value]


# Finish reasons meaning "cut off by the token limit", as providers spell them
# (OpenAI length, Anthropic/Bedrock max_tokens, Gemini MAX_TOKENS, Responses max_output_tokens).
# Mistral's ``model_length``: cut at the model's context length, the output is as incomplete.
TRUNCATION_FINISH_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "model_length"})


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
    """Duplicates by the rule in docs/architecture.md, from the request's own history (``history``
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


def duplicate_tool_calls(
    history: HistoryFold,
    request: CallRequest,
    result: CallResult | None,
    state: ConversationState | None,
    failed: bool,
) -> Duplicates:
    """The duplicate-tool-call rule with its memory.

    Without state it is :func:`find_duplicates` over the request's own history. With state it also:
    counts the tool calls of server-held history (Responses ``previous_response_id``) as history;
    charges a duplicate's result only on the call that FIRST sends it back, also when an agent re-sends
    it after dropping the answer that followed it; and remembers what this call adds. A failed call's
    messages count as not seen, so it remembers nothing.
    """
    held_keys: Collection[tuple[str, str]] = ()
    held_duplicates: Collection[str] = ()
    if state is not None and request.server_history_ref is not None:
        with state.lock:
            held_keys, held_duplicates = set(state.tool_keys), set(state.duplicate_call_ids)
    found = find_duplicates(history, result, held_keys, held_duplicates)
    if state is None:
        return found
    with state.lock:
        if found.results:
            found.results = [item for item in found.results if not state.charged_before(item.tool_call_id)]
            if not failed:
                state.remember_charged_results([item.tool_call_id for item in found.results])
        if not failed and result is not None and result.tool_calls:
            state.remember_tool_calls(
                [tool_call_key(call) for call in result.tool_calls], [call.id for call in found.calls if call.id]
            )
    return found


def duplicate_tokens(found: Duplicates, model: str | None) -> tuple[int, int]:
    """(output, input) tokens of duplicates: the repeated calls in the response, and the results of
    earlier duplicates that this request sends back for the first time."""
    output_tokens = sum(count_tool_call(call, model).tokens for call in found.calls)
    input_tokens = sum(count_item(item, model).tokens for item in found.results)
    return output_tokens, input_tokens


def repeated_request(fingerprint: int, started_at: float, state: ConversationState, failed: bool) -> bool:
    """The repeated-request rule: a request identical to one that STARTED earlier in the conversation.
    Retrying a failed request is not a repetition (a failed call's request counts as not seen)."""
    with state.lock:
        repeated = state.started_earlier(fingerprint, started_at)
        if not failed:
            state.remember_request(fingerprint, started_at)
    return repeated


def uncached_resent_tokens(resent_tokens: int, usage: Usage | None, rule: CacheRule | None) -> int | None:
    """Re-sent tokens a prompt cache could have served but the provider did not (docs/architecture.md "Cache
    eligibility"): the cacheable part of the re-sent prefix under the model's ``rule``, less the cache
    reads. None (absent) without usage to compare with, or when the model's cache rules are unknown."""
    if usage is None or rule is None:
        return None
    return max(0, rule.cacheable(resent_tokens) - (usage.cache_read_tokens or 0))


def is_truncated(result: CallResult) -> bool:
    return any(reason.lower() in TRUNCATION_FINISH_REASONS for reason in result.finish_reasons)


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

    kinds: dict[WasteKind, int]
    input_tokens: int = 0
    output_tokens: int = 0
    whole_call: bool = False  # failed or repeated: the whole call (and its price) is waste

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


def apportion(findings: WasteFindings, usage: Usage | None) -> Waste:
    """Precedence and caps (docs/architecture.md): failed call, repeated request,
    truncated output, duplicate tool calls, uncached re-sent context. Each kind
    takes from what is left of the provider's input and output tokens, so the
    kinds sum to the total and the ratio stays in [0, 1]."""
    if usage is None or usage.input_tokens is None:
        # Nothing to cap against. A failed call without reported usage billed nothing we know of.
        return Waste({WasteKind.FAILED_CALL: 0} if findings.failed else {})
    input_left, output_left = max(0, usage.input_tokens), max(0, usage.output_tokens or 0)
    waste = Waste({})

    def take(kind: WasteKind, wanted_input: int, wanted_output: int) -> None:
        nonlocal input_left, output_left
        got_input, got_output = min(max(0, wanted_input), input_left), min(max(0, wanted_output), output_left)
        input_left, output_left = input_left - got_input, output_left - got_output
        waste.input_tokens += got_input
        waste.output_tokens += got_output
        waste.kinds[kind] = got_input + got_output

    take(WasteKind.FAILED_CALL, input_left if findings.failed else 0, output_left if findings.failed else 0)
    if findings.repeated is not None:
        take(
            WasteKind.REPEATED_REQUEST, input_left if findings.repeated else 0, output_left if findings.repeated else 0
        )
    waste.whole_call = findings.failed or bool(findings.repeated)
    if findings.truncated is not None:
        take(WasteKind.TRUNCATED_OUTPUT, 0, output_left if findings.truncated else 0)
    if findings.duplicate_output_tokens is not None or findings.duplicate_input_tokens is not None:
        take(WasteKind.DUPLICATE_TOOL_CALL, findings.duplicate_input_tokens or 0, findings.duplicate_output_tokens or 0)
    if findings.uncached_resent_tokens is not None:
        take(WasteKind.UNCACHED_RESENT, findings.uncached_resent_tokens, 0)
    return waste


def waste_attributes(waste: Waste, usage: Usage | None) -> dict[str, int | float]:
    """The span attributes of apportioned waste: one per evaluated kind, the total and the ratio."""
    if not waste.kinds:
        return {}
    attrs: dict[str, int | float] = {kind.attribute: tokens for kind, tokens in waste.kinds.items()}
    attrs[sc.WASTE_TOKENS] = waste.total
    billed = (usage.input_tokens or 0) + (usage.output_tokens or 0) if usage is not None else 0
    if billed > 0:
        attrs[sc.WASTE_RATIO] = waste.total / billed
    return attrs
