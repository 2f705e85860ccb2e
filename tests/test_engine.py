"""The engine's per-call rules as plain functions (no span), and counting the
new part of a request in the background while the call is in flight."""

from __future__ import annotations

import tiktoken
from conftest import check_in_forked_child

from otel_tokenkpi import counting, engine, tokens
from otel_tokenkpi.record import (
    CallRecord,
    CallRequest,
    CallResult,
    ContextItem,
    OutputMessage,
    ToolCall,
    ToolDefinition,
)

O200K = tiktoken.get_encoding("o200k_base")


def n(text: str) -> int:
    return len(O200K.encode_ordinary(text))


def request(tool_result: str = "42 degrees") -> CallRequest:
    return CallRequest(
        operation="chat",
        provider="openai",
        model="gpt-4o",
        messages=[
            ContextItem("system", "Be brief and exact."),
            ContextItem("user", "What is the temperature?"),
            ContextItem("assistant", tool_calls=[ToolCall("thermometer", '{"room": "lab"}', "c1")]),
            ContextItem("tool", tool_result, tool_call_id="c1"),
        ],
        tools=[ToolDefinition("thermometer", "Reads a room's temperature.", '{"type":"object"}')],
    )


def test_context_breakdown_counts_each_part(loaded_data):
    req = request()
    counts = counting.count_parts(req.messages, req.tools, req.model)
    assert counts.system == n("Be brief and exact.")
    assert counts.tool_results == n("42 degrees")
    assert counts.tool_definitions == n("thermometer") + n("Reads a room's temperature.") + n('{"type":"object"}')
    assert counts.item_tokens[2] == n("thermometer") + n('{"room": "lab"}')
    assert counts.exact
    assert counts.total == sum(counts.item_tokens) + counts.tool_definitions


def test_unknown_model_is_estimated_and_flagged(loaded_data):
    req = request()
    req.model = "some-local-llama"
    attrs = engine.Engine().call_attributes(CallRecord(req, CallResult(outputs=[OutputMessage("hi", [], "stop")])))
    assert attrs["tokenkpi.tokens.estimated"] is True
    assert attrs["tokenkpi.context.system_tokens"] == tokens.estimate_tokens("Be brief and exact.")
    assert "tokenkpi.cost.usd" not in attrs  # no price for an unknown model: absent, no error


def test_large_new_context_is_counted_in_the_background(loaded_data):
    big = "The sensor log says the lab was stable at 21 degrees all afternoon. " * 60
    req = request(big)
    future = engine.ENGINE.prepare(req)
    assert future is not None
    counts = future.result(timeout=10)
    assert counts.tool_results == n(big)
    assert engine.ENGINE.prepare(req) is None  # everything is counted now: nothing to hand off
    attrs = engine.ENGINE.call_attributes(CallRecord(req, CallResult()), future)
    assert attrs["tokenkpi.context.tool_results_tokens"] == n(big)


def test_small_requests_are_counted_inline(loaded_data):
    assert engine.ENGINE.prepare(request("fresh small result")) is None


def test_background_counter_works_in_a_forked_child(loaded_data):
    engine.ENGINE.prepare(request("warm the parent's worker " * 200)).result(timeout=10)
    big = "A forked worker counts this text in its own thread. " * 80

    def child_checks() -> dict[str, bool]:
        future = engine.ENGINE.prepare(request(big))
        return {
            "handed off": future is not None,
            "counted": future is not None and future.result(10).tool_results == n(big),
        }

    check_in_forked_child(child_checks)
