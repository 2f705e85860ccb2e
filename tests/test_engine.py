"""The engine's per-call rules as plain functions (no span), counting the new part of a request in the
background while the call is in flight, and the context breakdown reconciled with the billed input
through the real openai SDK."""

from __future__ import annotations

import json

import tiktoken
from _telemetry import check_in_forked_child

from otel_tokenkpi import counting, engine, tokens
from otel_tokenkpi import semconv as sc
from otel_tokenkpi.invocation import (
    CallRequest,
    CallResult,
    ContextItem,
    FinishedCall,
    OutputMessage,
    ToolCall,
    ToolDefinition,
)
from otel_tokenkpi.testing.fake_openai import Reply
from otel_tokenkpi.tool_tokens import count_request_tools

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
    attrs = engine.Engine().call_attributes(FinishedCall(req, CallResult(outputs=[OutputMessage("hi", [], "stop")])))
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
    attrs = engine.ENGINE.call_attributes(FinishedCall(req, CallResult()), future)
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


# One agent turn for the reconciliation tests: system, question, the model's tool call, its result.
THERMOMETER = {
    "type": "function",
    "function": {
        "name": "thermometer",
        "description": "Reads a room's temperature.",
        "parameters": {"type": "object", "properties": {"room": {"type": "string"}}},
    },
}
TURN = [
    {"role": "system", "content": "Be brief and exact."},
    {"role": "user", "content": "What is the temperature in the lab?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "thermometer", "arguments": '{"room": "lab"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "21 degrees and steady since noon."},
]
# The parts as counted locally (o200k_base for gpt-4o): DESIGN.md "Counting".
SYSTEM_PART = n("Be brief and exact.")
RESULTS_PART = n("21 degrees and steady since noon.")
NEW_PART = RESULTS_PART


def definitions_part() -> int:
    """What OpenAI bills for THERMOMETER in TURN: its rendered ``namespace functions`` block, appended to
    the system message (docs/tool-token-counting.md; checked on billed requests in test_tool_tokens.py).
    Counted once the encodings are loaded (the ``telemetry`` fixture), so it is exact."""
    fn = THERMOMETER["function"]
    tool = ToolDefinition(fn["name"], fn["description"], json.dumps(fn["parameters"], separators=(",", ":")))
    counted = count_request_tools([tool], "openai", "gpt-4o", system_text=TURN[0]["content"])
    assert counted.exact
    return counted.total


def resent_part() -> int:
    content = SYSTEM_PART + n("What is the temperature in the lab?") + n("thermometer") + n('{"room": "lab"}')
    return definitions_part() + content


def breakdown(attrs) -> dict[str, int]:
    keys = ("system", "tool_definitions", "tool_results", "resent", "new", "unattributed")
    return {key: attrs[f"tokenkpi.context.{key}_tokens"] for key in keys}


def test_a_bill_above_the_local_parts_leaves_them_exact_and_names_the_rest_unattributed(telemetry, fake, openai_client):
    local = resent_part() + NEW_PART
    billed = local + 37  # OpenAI bills per-message framing on top of the content and the rendered tools
    fake.enqueue(Reply(text="21 C.", prompt_tokens=billed, completion_tokens=4))
    openai_client.chat.completions.create(model="gpt-4o", messages=TURN, tools=[THERMOMETER])
    attrs = telemetry.span().attributes
    assert breakdown(attrs) == {
        "system": SYSTEM_PART,
        "tool_definitions": definitions_part(),
        "tool_results": RESULTS_PART,
        "resent": resent_part(),
        "new": NEW_PART,
        "unattributed": 37,
    }
    assert attrs[sc.CONTEXT_RESENT_TOKENS] + attrs[sc.CONTEXT_NEW_TOKENS] + 37 == attrs[sc.USAGE_INPUT_TOKENS]
    assert sc.TOKENS_ESTIMATED not in attrs  # exact local counts within the bill: nothing estimated


def test_a_bill_below_the_local_parts_scales_them_to_it_and_flags_them_estimated(telemetry, fake, openai_client):
    local = resent_part() + NEW_PART
    billed = 40
    assert billed < local  # our counting rule says more than the provider billed
    fake.enqueue(Reply(text="21 C.", prompt_tokens=billed, completion_tokens=4))
    openai_client.chat.completions.create(model="gpt-4o", messages=TURN, tools=[THERMOMETER])
    attrs = telemetry.span().attributes
    resent = resent_part() * billed // local  # every part by the same factor, rounded down
    assert breakdown(attrs) == {
        "system": SYSTEM_PART * billed // local,
        "tool_definitions": definitions_part() * billed // local,
        "tool_results": RESULTS_PART * billed // local,
        "resent": resent,
        "new": billed - resent,  # the new part takes the rounding, so the two add up to the bill
        "unattributed": 0,
    }
    assert attrs[sc.CONTEXT_RESENT_TOKENS] + attrs[sc.CONTEXT_NEW_TOKENS] == attrs[sc.USAGE_INPUT_TOKENS] == billed
    assert attrs[sc.TOKENS_ESTIMATED] is True  # a scaled part is never published as exact
