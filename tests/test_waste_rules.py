"""The waste rules as plain functions: no span, no SDK, exact numbers."""

from __future__ import annotations

import pytest

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.history import HistoryFold, fold_history
from otel_tokenkpi.identity import canonical_json, request_fingerprint
from otel_tokenkpi.invocation import (
    CallRequest,
    CallResult,
    ContextItem,
    OutputMessage,
    PartMemo,
    ToolCall,
    ToolDefinition,
    Usage,
)
from otel_tokenkpi.rollup import CallSummary, Rollup
from otel_tokenkpi.state import BoundedStore, ConversationState
from otel_tokenkpi.tokens import TokenCount
from otel_tokenkpi.waste import (
    WasteFindings,
    apportion,
    find_duplicates,
    is_truncated,
    split_resent_new,
    waste_attributes,
)


def chat(messages: list[ContextItem], tools: list[ToolDefinition] | None = None, **params) -> CallRequest:
    return CallRequest("chat", "openai", "gpt-4o", messages=messages, tools=tools or [], params=params)


def counted(role: str, tokens: int, **fields) -> ContextItem:
    """An item whose count is already known (as a re-sent item's is), so the rule's arithmetic is exact."""
    memo = PartMemo(counted_for="gpt-4o", count=TokenCount(tokens, True))
    return ContextItem(role, f"{role} text", memo=memo, **fields)


def fold(request: CallRequest, exempt: frozenset[str] = frozenset()) -> HistoryFold:
    return fold_history(request, exempt)


def test_items_up_to_the_last_assistant_message_are_resent_and_system_and_tools_follow_it():
    messages = [
        counted("system", 5),
        counted("user", 7),
        counted("assistant", 11),
        counted("user", 13),
        counted("system", 17),
    ]
    assert split_resent_new(fold(chat(messages)), None, 19) == (5 + 7 + 11 + 17 + 19, 13)
    first_turn = [counted("system", 5), counted("user", 7)]
    assert split_resent_new(fold(chat(first_turn)), None, 19) == (0, 5 + 7 + 19)


def test_server_held_history_makes_instructions_and_tools_resent():
    request = chat([counted("system", 5, is_instructions=True), counted("user", 7)])
    assert split_resent_new(fold(request), "resp_1", 19) == (5 + 19, 7)


def test_canonical_json_ignores_key_order_and_whitespace_but_not_values():
    assert canonical_json('{"b": 1, "a": [1, 2]}') == canonical_json('{"a":[1,2],"b":1}')
    assert canonical_json('{"a": 1}') != canonical_json('{"a": 2}')
    assert canonical_json("not json ") == "not json"


def _assistant(*calls: ToolCall) -> ContextItem:
    return ContextItem("assistant", tool_calls=list(calls))


def test_a_response_call_identical_to_history_is_a_duplicate_even_with_reordered_keys():
    history = [ContextItem("user", "u"), _assistant(ToolCall("search", '{"q": "x", "n": 3}', "c1"))]
    history.append(ContextItem("tool", "r1", tool_call_id="c1"))
    result = CallResult(
        outputs=[
            OutputMessage(
                tool_calls=[
                    ToolCall("search", '{"n":3,"q":"x"}', "c2"),
                    ToolCall("search", '{"n":4,"q":"x"}', "c3"),
                    ToolCall("search", '{"n": 4, "q": "x"}', "c4"),  # duplicate of c3, earlier in the same response
                ]
            )
        ]
    )
    found = find_duplicates(fold(chat(history)), result)
    assert [c.id for c in found.calls] == ["c2", "c4"]
    assert found.results == []


def test_exempt_tools_are_never_duplicates():
    history = [_assistant(ToolCall("poll", "{}", "c1")), ContextItem("tool", "pending", tool_call_id="c1")]
    result = CallResult(outputs=[OutputMessage(tool_calls=[ToolCall("poll", "{}", "c2")])])
    assert find_duplicates(fold(chat(history), frozenset({"poll"})), result).calls == []
    assert len(find_duplicates(fold(chat(history)), result).calls) == 1


def test_a_duplicate_result_is_waste_only_on_the_call_that_first_sends_it_back():
    dup_result = ContextItem("tool", "same answer", tool_call_id="c2")
    messages = [
        _assistant(ToolCall("search", '{"q":"x"}', "c1")),
        ContextItem("tool", "answer", tool_call_id="c1"),
        _assistant(ToolCall("search", '{"q": "x"}', "c2")),
        dup_result,
    ]
    assert find_duplicates(fold(chat(messages)), None).results == [dup_result]
    later = [*messages, ContextItem("assistant", "done"), ContextItem("user", "thanks")]
    assert find_duplicates(fold(chat(later)), None).results == []


def test_server_held_tool_calls_count_as_history():
    result = CallResult(outputs=[OutputMessage(tool_calls=[ToolCall("search", '{"q":"x"}', "c9")])])
    history = fold(chat([ContextItem("user", "again")]))
    assert find_duplicates(history, result).calls == []
    assert len(find_duplicates(history, result, known_keys=[("search", '{"q":"x"}')]).calls) == 1


@pytest.mark.parametrize(
    ("reasons", "truncated"),
    [(["length"], True), (["max_tokens"], True), (["MAX_TOKENS"], True), (["stop"], False), (["tool_use"], False)],
)
def test_truncation_reasons_across_providers(reasons, truncated):
    result = CallResult(outputs=[OutputMessage(finish_reason=r) for r in reasons])
    assert is_truncated(result) is truncated


def test_request_fingerprint_ignores_stream_but_not_content_or_params():
    def make(text: str, **params) -> CallRequest:
        return chat([ContextItem("user", text)], [ToolDefinition("t", "d", "{}")], **params)

    def fingerprint(request: CallRequest) -> int:
        return request_fingerprint(request, fold(request))

    base = fingerprint(make("hi", **{sc.REQUEST_TEMPERATURE: 0.5}))
    assert fingerprint(make("hi", **{sc.REQUEST_TEMPERATURE: 0.5, sc.REQUEST_STREAM: True})) == base
    assert fingerprint(make("hi", **{sc.REQUEST_TEMPERATURE: 0.7})) != base
    assert fingerprint(make("hi!", **{sc.REQUEST_TEMPERATURE: 0.5})) != base
    # Unfolded requests (embeddings) fingerprint their items the same way: equal content, equal print.
    assert request_fingerprint(make("hi"), None) == request_fingerprint(make("hi"), None)
    assert request_fingerprint(make("hi"), None) != request_fingerprint(make("ho"), None)


def test_precedence_gives_every_token_to_one_kind_only():
    usage = Usage(input_tokens=100, output_tokens=40, cache_read_tokens=30)
    findings = WasteFindings(
        truncated=True, duplicate_output_tokens=10, duplicate_input_tokens=15, uncached_resent_tokens=90
    )
    waste = apportion(findings, usage)
    # Truncation takes all 40 output tokens, so the duplicate calls' 10 output tokens find none left;
    # duplicate results take 15 input tokens and uncached re-sent context the remaining 85 of its 90.
    assert waste.kinds == {"failed_call": 0, "truncated_output": 40, "duplicate_tool_call": 15, "uncached_resent": 85}
    assert (waste.input_tokens, waste.output_tokens, waste.total) == (100, 40, 140)
    attrs = waste_attributes(waste, usage)
    assert attrs[sc.WASTE_TOKENS] == 140
    assert attrs[sc.WASTE_RATIO] == 1.0


def test_a_repeated_request_takes_everything_and_other_kinds_read_zero():
    usage = Usage(input_tokens=100, output_tokens=40)
    findings = WasteFindings(repeated=True, truncated=True, duplicate_output_tokens=5, uncached_resent_tokens=50)
    waste = apportion(findings, usage)
    assert waste.kinds == {
        "failed_call": 0,
        "repeated_request": 140,
        "truncated_output": 0,
        "duplicate_tool_call": 0,
        "uncached_resent": 0,
    }
    assert waste.whole_call


def test_failed_calls_waste_only_reported_usage():
    assert apportion(WasteFindings(failed=True), None).kinds == {"failed_call": 0}
    billed = apportion(WasteFindings(failed=True, uncached_resent_tokens=10), Usage(input_tokens=12, output_tokens=3))
    assert billed.kinds == {"failed_call": 15, "uncached_resent": 0}


def test_rules_without_their_inputs_are_absent_not_zero():
    assert apportion(WasteFindings(), None).kinds == {}
    assert waste_attributes(apportion(WasteFindings(), None), None) == {}
    only_truncation = apportion(WasteFindings(truncated=False), Usage(input_tokens=5, output_tokens=5))
    assert waste_attributes(only_truncation, Usage(input_tokens=5, output_tokens=5)) == {
        sc.WASTE_FAILED_CALL_TOKENS: 0,
        sc.WASTE_TRUNCATED_OUTPUT_TOKENS: 0,
        sc.WASTE_TOKENS: 0,
        sc.WASTE_RATIO: 0.0,
    }


def test_local_estimates_above_the_providers_counts_are_capped():
    waste = apportion(WasteFindings(uncached_resent_tokens=500), Usage(input_tokens=120, output_tokens=0))
    assert waste.kinds == {"failed_call": 0, "uncached_resent": 120}


def test_store_evicts_least_recently_used_entries_beyond_the_budget():
    store = BoundedStore(budget_bytes=10 * ConversationState().estimated_bytes(), ttl_s=3600)
    for index in range(25):
        store.get(("conversation", str(index)), ConversationState)
    store.get(("conversation", "15"))  # touched: survives the next evictions
    for index in range(25, 30):
        store.get(("conversation", str(index)), ConversationState)
    assert len(store) == 10
    assert store.size_bytes <= store.budget_bytes
    assert store.get(("conversation", "15")) is not None
    assert store.get(("conversation", "16")) is None


def test_store_forgets_entries_idle_longer_than_the_ttl(monkeypatch):
    import otel_tokenkpi.state as state_module

    now = [1000.0]
    monkeypatch.setattr(state_module.time, "monotonic", lambda: now[0])
    store = BoundedStore(budget_bytes=1 << 20, ttl_s=60)
    store.get("old", ConversationState)
    now[0] += 30
    store.get("recent", ConversationState)
    now[0] += 45  # "old" idle 75 s, "recent" 45 s
    assert store.get("old") is None
    assert store.get("recent") is not None
    now[0] += 61
    store.get("new", ConversationState)
    assert len(store) == 1


def test_conversation_state_keeps_a_bounded_number_of_fingerprints():
    state = ConversationState()
    for fingerprint in range(ConversationState.MAX_REQUESTS + 50):
        state.remember_request(fingerprint, float(fingerprint))
    assert len(state.request_starts) == ConversationState.MAX_REQUESTS
    assert state.started_earlier(ConversationState.MAX_REQUESTS + 49, 1e9)
    assert not state.started_earlier(0, 1e9)  # the oldest were dropped


def test_rollup_reports_unused_tool_definitions_and_tokens_per_success():
    rollup = Rollup({"team": "search"})
    rollup.add(
        CallSummary(
            input_tokens=100,
            output_tokens=10,
            waste_tokens=30,
            tool_calls=3,
            offered_tools=[("a", 20), ("b", 30), ("c", 40)],
            used_tools={"a"},
        )
    )
    rollup.add(CallSummary(input_tokens=200, output_tokens=20, waste_tokens=0, offered_tools=[("a", 20), ("b", 30)]))
    rollup.add_outcome(True, own=False)
    rollup.add_outcome(True, own=False)
    attrs = rollup.attributes()
    assert attrs["team"] == "search"
    assert attrs[sc.TRACE_LLM_CALLS] == 2
    assert attrs[sc.TRACE_WASTE_UNUSED_TOOL_DEFINITIONS_TOKENS] == 30 + 40 + 30
    assert attrs[sc.TRACE_MAX_TOOL_FANOUT] == 3
    assert attrs[sc.TRACE_WASTE_RATIO] == 30 / 330
    assert attrs[sc.TRACE_TOKENS_PER_SUCCESS] == 330 / 2
    assert attrs[sc.OUTCOME] == "success"
    rollup.add_outcome(False, own=False)
    assert rollup.attributes()[sc.OUTCOME] == "failure"
    rollup.add_outcome(True, own=True)
    assert rollup.attributes()[sc.OUTCOME] == "success"
