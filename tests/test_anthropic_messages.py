"""Anthropic ``messages.create`` / ``parse`` (GA and beta, sync and async), not streamed: one span per
call with the request, the response, exact usage (cache reads and writes added into input), the
context breakdown (estimated: Anthropic has no offline tokenizer), metrics, and errors. The user's
result or exception is the same with and without instrumentation."""

from __future__ import annotations

import importlib.util
import inspect
import json

import anthropic
import pytest
from _anthropic_support import MODEL, SCOPE, USER, our_spans
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokenkpi import tokens
from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.testing.fake_anthropic import Reply, ToolCall
from otel_tokenkpi.tool_tokens import anthropic_tool_prompt_tokens

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_anthropic_support"]

SYSTEM = "You are WeatherBot. Answer in one short sentence and use the tools when you need data."
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"],
    },
}
TIME_TOOL = {"name": "get_time", "description": "Local time in a city.", "input_schema": {"type": "object"}}
NEWS_TOOL = {"name": "get_news", "description": "Top headline for a city.", "input_schema": {"type": "object"}}
RESULT_PARIS = '{"city": "Paris", "temperature_c": 18, "sky": "rain"}'
RESULT_ROME = "Rome: 24 C, sunny, light breeze from the west."

# anthropic gained OverloadedError (status 529) after 0.43; older releases raise InternalServerError for it.
OVERLOADED = getattr(anthropic, "OverloadedError", anthropic.InternalServerError)


def est(*texts: str) -> int:
    """What the engine counts for a Claude model: the estimator (no offline Claude tokenizer)."""
    counts = [tokens.count_text(t, MODEL) for t in texts]
    assert not any(c.exact for c in counts)
    return sum(c.tokens for c in counts)


TOOL_PROMPT = anthropic_tool_prompt_tokens(MODEL, "auto")


def tool_tokens(tool: dict) -> int:
    schema = json.dumps(tool["input_schema"], separators=(",", ":"))
    return est(tool["name"], tool["description"], schema)


def test_create_records_request_response_and_usage(atelemetry, afake, anthropic_client):
    afake.enqueue(
        Reply(text="Rainy, 18 C.", input_tokens=30, output_tokens=12, cache_read_tokens=100, cache_write_tokens=20)
    )
    message = anthropic_client.messages.create(
        model=MODEL,
        max_tokens=256,
        system=SYSTEM,
        messages=USER,
        stop_sequences=["###"],
        extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 40},  # no longer in the 2.x signature
    )
    assert message.content[0].text == "Rainy, 18 C."
    span = atelemetry.span()
    attrs = span.attributes
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == SCOPE
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == int(afake.url.rsplit(":", 1)[1])
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["gen_ai.request.max_tokens"] == 256
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.top_k"] == 40
    assert attrs["gen_ai.request.stop_sequences"] == ("###",)
    assert "gen_ai.request.stream" not in attrs
    assert attrs["gen_ai.response.id"] == message.id == "msg_0001"
    assert attrs["gen_ai.response.model"] == MODEL
    assert attrs["gen_ai.response.finish_reasons"] == ("end_turn",)
    # Anthropic's input_tokens excludes the cache; semconv's includes it: 30 + 100 + 20.
    assert attrs["gen_ai.usage.input_tokens"] == 150
    assert attrs["gen_ai.usage.output_tokens"] == 12
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == 20
    assert "gen_ai.usage.reasoning.output_tokens" not in attrs
    assert attrs["tokenkpi.context.window"] == 200000
    assert attrs["tokenkpi.context.utilization"] == pytest.approx(150 / 200000)
    assert attrs["tokenkpi.cost.usd"] > 0
    assert attrs["tokenkpi.context.system_tokens"] == est(SYSTEM)
    assert attrs["tokenkpi.tokens.estimated"] is True  # the breakdown; usage itself is the provider's
    assert attrs["tokenkpi.tool_calls.count"] == 0


def test_results_identical_with_and_without_instrumentation(atelemetry, afake, anthropic_client):
    reply = Reply(
        text="Let me check.",
        thinking="The user wants weather.",
        tool_calls=[ToolCall("get_weather", '{"city": "Paris"}', id="toolu_a")],
    )
    afake.enqueue(reply)
    with_us = anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, tools=[WEATHER_TOOL])
    AnthropicInstrumentor().uninstrument()
    afake.reset()
    afake.enqueue(reply)
    without = anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, tools=[WEATHER_TOOL])
    assert type(with_us) is type(without)
    assert with_us.model_dump() == without.model_dump()
    assert len(atelemetry.spans()) == 1  # and none after uninstrument()


def test_parallel_tool_calls_and_tool_definitions(atelemetry, afake, anthropic_client):
    calls = [ToolCall(name, json.dumps({"city": "Paris"})) for name in ("get_weather", "get_time", "get_news")]
    # Billed as a real request is: the content plus Anthropic's tool-use system prompt and framing
    # (above the local parts, so the breakdown is not scaled).
    afake.enqueue(Reply(text=None, tool_calls=calls, input_tokens=450, output_tokens=70))
    tools = [WEATHER_TOOL, TIME_TOOL, NEWS_TOOL]
    message = anthropic_client.messages.create(model=MODEL, max_tokens=256, messages=USER, tools=tools)
    assert [b.type for b in message.content] == ["tool_use"] * 3
    attrs = atelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["tokenkpi.tools.defined_count"] == 3
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_use",)
    # each tool's estimate plus Anthropic's documented tool-use system prompt (auto)
    definitions = sum(tool_tokens(t) for t in tools) + TOOL_PROMPT
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == definitions
    assert attrs["gen_ai.usage.output_tokens"] == 70
    # A first call: everything is new, and the breakdown adds up to the bill.
    assert attrs["tokenkpi.context.resent_tokens"] == 0
    assert attrs["tokenkpi.context.new_tokens"] == definitions + est(USER[0]["content"])
    assert attrs["tokenkpi.context.unattributed_tokens"] == 450 - definitions - est(USER[0]["content"])


def test_context_breakdown_of_an_agent_turn(atelemetry, afake, anthropic_client):
    """System as text blocks; an assistant turn with a tool_use; a user turn holding two tool results
    (string and block content) and text: system, tool-definition and tool-result tokens all count."""
    system_blocks = [
        {"type": "text", "text": SYSTEM},
        {"type": "text", "text": " Be kind.", "cache_control": {"type": "ephemeral"}},
    ]
    history = [
        *USER,
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both cities."},
                {"type": "tool_use", "id": "toolu_p", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_r", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_p", "content": RESULT_PARIS},
                {"type": "tool_result", "tool_use_id": "toolu_r", "content": [{"type": "text", "text": RESULT_ROME}]},
                {"type": "text", "text": "Which one is warmer?"},
            ],
        },
    ]
    # The bill covers the content plus the tool-use system prompt, so the parts are not scaled down to it.
    afake.enqueue(Reply(text="Rome is warmer.", input_tokens=520))
    anthropic_client.messages.create(
        model=MODEL, max_tokens=64, system=system_blocks, messages=history, tools=[WEATHER_TOOL]
    )
    attrs = atelemetry.span().attributes
    assert attrs["tokenkpi.context.system_tokens"] == est(SYSTEM + " Be kind.")
    assert attrs["tokenkpi.context.tool_results_tokens"] == est(RESULT_PARIS) + est(RESULT_ROME) > 0
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == tool_tokens(WEATHER_TOOL) + TOOL_PROMPT
    assert attrs["tokenkpi.tokens.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] == 520  # totals are the provider's, exact


@pytest.mark.parametrize("reason", ["max_tokens", "stop_sequence", "refusal", "pause_turn"])
def test_finish_reasons_as_anthropic_spells_them(atelemetry, afake, anthropic_client, reason):
    afake.enqueue(Reply(text="cut", finish_reason=reason, stop_sequence="###" if reason == "stop_sequence" else None))
    message = anthropic_client.messages.create(model=MODEL, max_tokens=5, messages=USER)
    assert message.stop_reason == reason
    assert atelemetry.span().attributes["gen_ai.response.finish_reasons"] == (reason,)


@pytest.mark.skipif(
    "thinking" not in inspect.signature(anthropic.resources.messages.Messages.create).parameters,
    reason="this anthropic release (0.43) has no extended thinking (thinking=)",
)
def test_thinking_tokens_are_reasoning_output(atelemetry, afake, anthropic_client):
    afake.enqueue(Reply(text="Paris.", thinking="Short answer wanted.", output_tokens=60, thinking_tokens=41))
    anthropic_client.messages.create(
        model=MODEL, max_tokens=2048, messages=USER, thinking={"type": "enabled", "budget_tokens": 1024}
    )
    attrs = atelemetry.span().attributes
    assert attrs["gen_ai.usage.output_tokens"] == 60
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 41


def test_messages_from_a_generator_reach_the_sdk_and_the_span(atelemetry, afake, anthropic_client):
    history = [{"role": "user", "content": RESULT_ROME}, {"role": "assistant", "content": "Noted."}, *USER]
    afake.enqueue(Reply(input_tokens=120))
    anthropic_client.messages.create(model=MODEL, max_tokens=16, system=SYSTEM, messages=(m for m in history))
    assert afake.requests[-1].body["messages"] == history
    attrs = atelemetry.span().attributes
    # Everything up to the assistant's answer is re-sent; the last user turn is new.
    resent, new = est(SYSTEM, RESULT_ROME, "Noted."), est(USER[0]["content"])
    assert (attrs["tokenkpi.context.resent_tokens"], attrs["tokenkpi.context.new_tokens"]) == (resent, new)
    assert attrs["tokenkpi.context.unattributed_tokens"] == 120 - resent - new


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, anthropic.BadRequestError), (529, OVERLOADED), (500, anthropic.InternalServerError)],
)
def test_errors_are_the_sdks_own_and_recorded(atelemetry, afake, anthropic_client, status, error):
    failing = Reply(status=status, error_message=f"fake failure {status}")
    afake.enqueue(failing)
    with pytest.raises(error) as ours:
        anthropic_client.messages.create(model=MODEL, max_tokens=16, messages=USER)
    span = atelemetry.span()
    assert span.attributes["error.type"] == error.__name__
    assert span.status.status_code is StatusCode.ERROR
    assert "gen_ai.usage.input_tokens" not in span.attributes
    AnthropicInstrumentor().uninstrument()
    afake.reset()
    afake.enqueue(failing)
    with pytest.raises(error) as plain:
        anthropic_client.messages.create(model=MODEL, max_tokens=16, messages=USER)
    assert type(ours.value) is type(plain.value)
    assert str(ours.value) == str(plain.value)
    assert ours.value.body == plain.value.body
    assert len(afake.requests) == 1  # max_retries=0: one request each


def test_metrics_token_usage(atelemetry, afake, anthropic_client):
    afake.enqueue(Reply(input_tokens=7, output_tokens=9, cache_read_tokens=1000))
    anthropic_client.messages.create(model=MODEL, max_tokens=16, messages=USER)
    points = atelemetry.metric_points("gen_ai.client.token.usage")
    by_type = {p.attributes["gen_ai.token.type"]: p for p in points}
    assert by_type["input"].sum == 1007
    assert by_type["output"].sum == 9
    assert by_type["input"].attributes["gen_ai.provider.name"] == "anthropic"
    assert by_type["input"].attributes["gen_ai.request.model"] == MODEL
    (duration,) = atelemetry.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 1


def test_count_tokens_is_not_a_model_call(atelemetry, afake, anthropic_client):
    afake.count_tokens_result = 123
    counted = anthropic_client.messages.count_tokens(model=MODEL, messages=USER)
    assert counted.input_tokens == 123
    assert atelemetry.spans() == []


@pytest.mark.skipif(
    not hasattr(anthropic.resources.messages.Messages, "parse"), reason="this anthropic release has no messages.parse"
)
def test_parse_and_beta_create(atelemetry, afake, anthropic_client):
    afake.enqueue(Reply(text='{"city": "Paris"}', input_tokens=11), Reply(text="beta", input_tokens=12))
    parsed = anthropic_client.messages.parse(model=MODEL, max_tokens=32, messages=USER)
    assert parsed.content[0].text == '{"city": "Paris"}'
    beta = anthropic_client.beta.messages.create(model=MODEL, max_tokens=32, messages=USER)
    assert beta.content[0].text == "beta"
    spans = our_spans(atelemetry)
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in spans] == [11, 12]
    assert [s.attributes["gen_ai.response.id"] for s in spans] == ["msg_0001", "msg_0002"]


async def test_async_create(atelemetry, afake, async_anthropic_client):
    afake.enqueue(Reply(text="Async Paris.", input_tokens=21, output_tokens=4, cache_write_tokens=300))
    message = await async_anthropic_client.messages.create(model=MODEL, max_tokens=16, system=SYSTEM, messages=USER)
    assert message.content[0].text == "Async Paris."
    attrs = atelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 321
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == 300
    assert attrs["tokenkpi.context.system_tokens"] == est(SYSTEM)


async def test_async_error_and_beta(atelemetry, afake, async_anthropic_client):
    afake.enqueue(Reply(status=529, error_message="Overloaded"), Reply(text="ok", input_tokens=5))
    with pytest.raises(OVERLOADED, match="Overloaded"):
        await async_anthropic_client.messages.create(model=MODEL, max_tokens=16, messages=USER)
    await async_anthropic_client.beta.messages.create(model=MODEL, max_tokens=16, messages=USER)
    failed, ok = our_spans(atelemetry)
    assert failed.attributes["error.type"] == OVERLOADED.__name__
    assert ok.attributes["gen_ai.usage.input_tokens"] == 5


def test_with_raw_response_is_read_and_the_user_parses_the_same_message(atelemetry, afake, anthropic_client):
    afake.enqueue(Reply(text="ok", input_tokens=12, output_tokens=3))
    raw = anthropic_client.messages.with_raw_response.create(model=MODEL, max_tokens=16, messages=USER)
    message = raw.parse()
    assert message.content[0].text == "ok" and raw.parse() is message
    span = atelemetry.span()
    assert span.attributes["gen_ai.request.model"] == MODEL
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (12, 3)


@pytest.mark.skipif(
    importlib.util.find_spec("anthropic._legacy_response") is not None,
    reason="anthropic < 2 returns a LegacyAPIResponse here, whose parse() is not awaitable (with or without us)",
)
async def test_async_raw_stream_is_read_through_our_proxy(atelemetry, afake, async_anthropic_client):
    afake.enqueue(Reply(text="one two three", input_tokens=12, output_tokens=3))
    raw = await async_anthropic_client.messages.with_raw_response.create(
        model=MODEL, max_tokens=16, messages=USER, stream=True
    )
    stream = await raw.parse()
    events = [event.type async for event in stream]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    span = atelemetry.span()
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (12, 3)


def test_with_streaming_response_body_is_read_as_the_user_reads_it(atelemetry, afake, anthropic_client):
    afake.enqueue(Reply(text="ok", input_tokens=12, output_tokens=3))
    with anthropic_client.messages.with_streaming_response.create(model=MODEL, max_tokens=16, messages=USER) as raw:
        body = json.loads(raw.read())
    assert body["usage"]["input_tokens"] == 12  # the user's bytes, unchanged
    span = atelemetry.span()
    assert span.attributes["gen_ai.request.model"] == MODEL
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (12, 3)
