"""One pass over a request's context that the next request can resume.

The rules need a few facts about a request's history: its tokens (total,
system, tool results), where the last assistant message is, which tool calls
it already holds, and a fingerprint of it. An agent loop re-sends the whole
conversation every turn with a few new items at the end, so computing those
facts from scratch costs more with every turn. :class:`HistoryFold` gathers
them item by item; at the end of a request the fold is remembered on its last
item, and the next request that starts with the very same item objects (one
comparison of their ids, in C) resumes from there and visits only its new
items. Adapters hand the same item object back for a re-sent message (their
identity memo), which is what makes the prefix recognisable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .counting import count_item
from .identity import item_fingerprint, tool_call_key
from .invocation import CallRequest, ContextItem

# How far back from the end to look for a remembered fold: the new items of one turn.
_MAX_NEW_ITEMS = 32
# Below this many items a fresh pass is as cheap as resuming: nothing is remembered.
_REMEMBER_MIN_ITEMS = 8


@dataclass(slots=True)
class HistoryFold:
    """Facts about a prefix of a request's context, for one model and one exempt-tool set."""

    model: str | None
    exempt_tools: frozenset[str]
    items: int = 0
    tokens: int = 0
    system_tokens: int = 0
    tool_result_tokens: int = 0
    exact: bool = True
    has_assistant: bool = False
    tokens_through_last_assistant: int = 0  # every item up to and including the last assistant message
    system_tokens_after_last_assistant: int = 0
    tool_call_keys: set[tuple[str, str]] = field(default_factory=set)  # calls the history holds (not exempt)
    duplicate_call_ids: set[str] = field(default_factory=set)  # ids of history calls that repeated an earlier one
    results_after_last_assistant: list[ContextItem] = field(default_factory=list)
    fingerprint: int = 0

    def add(self, item: ContextItem) -> None:
        count = count_item(item, self.model)  # a re-sent item's cached count; only new items reach here
        tokens = count.tokens
        self.tokens += tokens
        self.exact = self.exact and count.exact
        role = item.role
        if role == "system":
            self.system_tokens += tokens
            self.system_tokens_after_last_assistant += tokens
        elif role == "tool":
            self.tool_result_tokens += tokens
            self.results_after_last_assistant.append(item)
        elif role == "assistant":
            self.has_assistant = True
            self.tokens_through_last_assistant = self.tokens
            self.system_tokens_after_last_assistant = 0
            self.results_after_last_assistant = []
            for call in item.tool_calls:
                if call.name in self.exempt_tools:
                    continue
                key = tool_call_key(call)
                if key in self.tool_call_keys and call.id:
                    self.duplicate_call_ids.add(call.id)
                self.tool_call_keys.add(key)
        fingerprint = item.memo.fingerprint
        self.fingerprint = hash((self.fingerprint, fingerprint if fingerprint is not None else item_fingerprint(item)))
        self.items += 1

    def copy(self) -> HistoryFold:
        return HistoryFold(
            self.model,
            self.exempt_tools,
            self.items,
            self.tokens,
            self.system_tokens,
            self.tool_result_tokens,
            self.exact,
            self.has_assistant,
            self.tokens_through_last_assistant,
            self.system_tokens_after_last_assistant,
            set(self.tool_call_keys),
            set(self.duplicate_call_ids),
            list(self.results_after_last_assistant),
            self.fingerprint,
        )


@dataclass(slots=True)
class RememberedFold:
    """A fold, and the ids of the items it covers (ids, not items: nothing is kept alive)."""

    item_ids: tuple[int, ...]
    fold: HistoryFold


def resume_point(
    messages: list[ContextItem], model: str | None, exempt_tools: frozenset[str]
) -> tuple[int, HistoryFold | None]:
    """(index of the first item not covered, the remembered fold) for the longest remembered
    prefix of ``messages``; (0, None) when there is none."""
    last = len(messages) - 1
    if last + 1 < _REMEMBER_MIN_ITEMS:
        return 0, None
    for index in range(last, max(-1, last - _MAX_NEW_ITEMS), -1):
        remembered = messages[index].memo.fold
        if remembered is None:
            continue
        fold = remembered.fold
        if (
            fold.model == model
            and fold.exempt_tools == exempt_tools
            and len(remembered.item_ids) == index + 1
            and remembered.item_ids == tuple(map(id, messages[: index + 1]))
        ):
            return index + 1, fold
    return 0, None


def fold_history(request: CallRequest, exempt_tools: frozenset[str] = frozenset()) -> HistoryFold:
    """The facts about ``request.messages``, resuming from a remembered prefix when there is one,
    and remembered on the last item for the next request."""
    messages = request.messages
    start, remembered = resume_point(messages, request.model, exempt_tools)
    fold = remembered.copy() if remembered is not None else HistoryFold(request.model, exempt_tools)
    for item in messages[start:]:
        fold.add(item)
    if len(messages) >= _REMEMBER_MIN_ITEMS:
        if start and start < len(messages):
            messages[start - 1].memo.fold = None  # one remembered fold per conversation, at its end
        # Stored as is: callers only read the fold, and the next request resumes from a copy.
        messages[-1].memo.fold = RememberedFold(tuple(map(id, messages)), fold)
    return fold
