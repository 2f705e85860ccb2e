"""The resumable history fold: a request that starts with the previous request's very
items resumes from its fold, and always gets the facts a fresh pass would give."""

from __future__ import annotations

import random

from otel_tokenkpi.history import HistoryFold, fold_history, resume_point
from otel_tokenkpi.invocation import CallRequest, ContextItem, ToolCall


def fresh(items: list[ContextItem], exempt: frozenset[str] = frozenset()) -> HistoryFold:
    fold = HistoryFold("gpt-4o", exempt)
    for item in items:
        fold.add(item)
    return fold


def facts(fold: HistoryFold) -> tuple:
    return (
        fold.items,
        fold.tokens,
        fold.system_tokens,
        fold.tool_result_tokens,
        fold.has_assistant,
        fold.tokens_through_last_assistant,
        fold.system_tokens_after_last_assistant,
        fold.tool_call_keys,
        fold.duplicate_call_ids,
        [id(item) for item in fold.results_after_last_assistant],
        fold.fingerprint,
    )


def turn(index: int, rng: random.Random) -> list[ContextItem]:
    """An agent turn: an assistant tool call (sometimes a repeat), its result, sometimes a user or system note."""
    query = rng.choice(["paris", "rome", f"city {index}"])
    items = [
        ContextItem("assistant", tool_calls=[ToolCall("search", f'{{"q": "{query}"}}', f"c{index}")]),
        ContextItem("tool", f"result {index} " * rng.randint(1, 30), tool_call_id=f"c{index}"),
    ]
    if rng.random() < 0.3:
        items.append(ContextItem(rng.choice(["user", "system"]), f"note {index}"))
    return items


def request(items: list[ContextItem]) -> CallRequest:
    return CallRequest("chat", "openai", "gpt-4o", messages=list(items))


def test_a_growing_conversation_resumes_and_matches_a_fresh_pass(loaded_data):
    rng = random.Random(7)
    items = [ContextItem("system", "Be brief."), ContextItem("user", "Plan a trip.")]
    covered = 0  # items the previous request remembered (short requests remember nothing)
    for index in range(40):
        req = request(items)
        assert resume_point(req.messages, "gpt-4o", frozenset())[0] == covered
        assert facts(fold_history(req)) == facts(fresh(items))
        covered = len(items) if len(items) >= 8 else 0
        items = items + turn(index, rng)


def test_a_changed_prefix_model_or_exempt_set_does_not_resume(loaded_data):
    """A replaced item in the middle (same content, another object) is not the same prefix."""
    items = [ContextItem("user", f"hi {i}") for i in range(8)] + [
        ContextItem("assistant", "hello"),
        ContextItem("user", "more"),
    ]
    fold_history(request(items))
    edited = [*items[:8], ContextItem("assistant", "hello"), items[9], ContextItem("user", "and more")]
    assert resume_point(edited, "gpt-4o", frozenset()) == (0, None)
    longer = [*items, ContextItem("user", "and more")]
    assert resume_point(longer, "gpt-4o", frozenset())[0] == len(items)
    assert resume_point(longer, "gpt-4.1", frozenset())[0] == 0
    assert resume_point(longer, "gpt-4o", frozenset({"search"}))[0] == 0


def test_branches_from_one_prefix_each_get_their_own_facts(loaded_data):
    base = [ContextItem("user", f"hi {i}") for i in range(8)]
    base.append(ContextItem("assistant", tool_calls=[ToolCall("s", "{}", "c1")]))
    fold_history(request(base))
    left = [*base, ContextItem("tool", "left result", tool_call_id="c1")]
    right = [*base, ContextItem("tool", "a much longer right result", tool_call_id="c1")]
    assert facts(fold_history(request(left))) == facts(fresh(left))
    assert facts(fold_history(request(right))) == facts(fresh(right))
    assert facts(fold_history(request(left))) == facts(fresh(left))


def test_exempt_tools_fold_without_their_calls(loaded_data):
    items = [
        ContextItem("assistant", tool_calls=[ToolCall("poll", "{}", "p1")]),
        ContextItem("assistant", tool_calls=[ToolCall("poll", "{}", "p2")]),
    ]
    assert fold_history(request(items)).duplicate_call_ids == {"p2"}
    assert fold_history(request(items), frozenset({"poll"})).duplicate_call_ids == set()
