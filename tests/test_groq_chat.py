"""Groq ``chat.completions.create`` through the real groq SDK, not streamed (sync and async): span shape,
exact usage (cache reads, reasoning), the context breakdown estimated for open models, cost and window,
fan-out, finish reasons as Groq spells them, errors, metrics, raw responses, and what the user gets being
the same with and without instrumentation."""

from __future__ import annotations

import json
import logging
from importlib.metadata import entry_points
from typing import Any

import genai_prices
import groq
import pytest
from _groq_support import GROQ_VERSION, MODEL, SCOPE, USER, est, wire
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokenkpi import tokens
from otel_tokenkpi.instrumentation import Patch
from otel_tokenkpi.instrumentors.groq import GroqInstrumentor
from otel_tokenkpi.testing.fake_groq import Reply, ToolCall

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_groq_support"]

SYSTEM = "You are a travel agent. Answer in one sentence."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
HOTEL_TOOL = {
    "type": "function",
    "function": {
        "name": "find_hotel",
        "description": "Hotels in a city under a price.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "max_price": {"type": "number"}}},
    },
}
CALL_ARGS = '{"city":"Paris"}'
TOOL_RESULT = '{"city": "Paris", "temp_c": 21, "sky": "clear"}'
HISTORY = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": CALL_ARGS}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_a", "content": TOOL_RESULT},
]


def tool_tokens(tool: dict[str, Any]) -> int:
    fn = tool["function"]
    return est(fn["name"], fn["description"], json.dumps(fn["parameters"], separators=(",", ":")))


def oracle_cost(model: str, input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    usage = genai_prices.Usage(input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=output_tokens)
    return float(genai_prices.calc_price(usage, model_ref=model, provider_id="groq").total_price)


def dump(result: Any) -> dict[str, Any]:
    return result.model_dump(exclude={"created"})


def test_plain_call_span_has_semconv_shape_and_exact_usage(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text="Sunny.", prompt_tokens=120, completion_tokens=7, cached_tokens=64, reasoning_tokens=3))
    result = groq_client.chat.completions.create(
        model=MODEL,
        messages=HISTORY,
        tools=[WEATHER_TOOL, HOTEL_TOOL],
        max_tokens=50,  # in every release (max_completion_tokens from 0.15: its own test below)
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        seed=7,
    )
    assert result.choices[0].message.content == "Sunny."
    span = gtelemetry.span()
    attrs = dict(span.attributes)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == SCOPE
    assert span.status.status_code is StatusCode.UNSET
    host, port = gfake.url.removeprefix("http://").split(":")
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "groq"
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["server.address"] == host and attrs["server.port"] == int(port)
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.stop_sequences"] == ("END",)
    assert attrs["gen_ai.request.seed"] == 7
    assert "gen_ai.request.stream" not in attrs
    assert attrs["gen_ai.response.id"] == result.id == "chatcmpl-1"
    assert attrs["gen_ai.response.model"] == MODEL
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["gen_ai.usage.output_tokens"] == 7
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 64
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 3
    # Context breakdown: Qwen has no offline tokenizer, so the estimator, flagged.
    assert attrs["tokenkpi.context.system_tokens"] == est(SYSTEM)
    assert attrs["tokenkpi.context.tool_results_tokens"] == est(TOOL_RESULT)
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == tool_tokens(WEATHER_TOOL) + tool_tokens(HOTEL_TOOL)
    assert attrs["tokenkpi.tools.defined_count"] == 2
    assert attrs["tokenkpi.tool_calls.count"] == 0
    assert attrs["tokenkpi.tokens.estimated"] is True
    # Window and price of Groq's model from genai-prices.
    assert attrs["tokenkpi.context.window"] == 131072
    assert attrs["tokenkpi.context.utilization"] == pytest.approx(120 / 131072)
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(oracle_cost(MODEL, 120, 7, 64), rel=1e-9)


def test_cache_reads_are_priced_at_groqs_cache_rate(gtelemetry, gfake, groq_client):
    model = "moonshotai/kimi-k2-instruct"  # Groq prices its cache reads at half the input rate
    gfake.enqueue(Reply(text="ok", prompt_tokens=4000, completion_tokens=10, cached_tokens=3000))
    groq_client.chat.completions.create(model=model, messages=USER)
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 4000  # includes the cached 3000
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 3000
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(oracle_cost(model, 4000, 10, 3000), rel=1e-9)
    assert attrs["tokenkpi.cost.usd"] < oracle_cost(model, 4000, 10)


def test_open_models_are_estimated_and_gpt_oss_is_exact(gtelemetry, gfake, groq_client):
    assert tokens.encoding_name_for_model("llama-3.3-70b-versatile") is None
    assert tokens.encoding_name_for_model("openai/gpt-oss-120b") == "o200k_base"
    # Realistic bills: the system prompt plus each model's chat-template framing (so no part is scaled).
    gfake.enqueue(Reply(prompt_tokens=40), Reply(prompt_tokens=70))
    groq_client.chat.completions.create(
        model="llama-3.3-70b-versatile", messages=[{"role": "system", "content": SYSTEM}]
    )
    groq_client.chat.completions.create(model="openai/gpt-oss-120b", messages=[{"role": "system", "content": SYSTEM}])
    llama, oss = gtelemetry.spans()
    assert llama.attributes["tokenkpi.tokens.estimated"] is True
    assert llama.attributes["tokenkpi.context.system_tokens"] == est(SYSTEM, model="llama-3.3-70b-versatile")
    assert "tokenkpi.tokens.estimated" not in oss.attributes
    exact = tokens.count_text(SYSTEM, "openai/gpt-oss-120b").tokens
    assert oss.attributes["tokenkpi.context.system_tokens"] == exact
    assert llama.attributes["tokenkpi.context.unattributed_tokens"] == 40 - est(SYSTEM, model="llama-3.3-70b-versatile")
    assert oss.attributes["tokenkpi.context.unattributed_tokens"] == 70 - exact


def test_parallel_tool_calls_are_fan_out(gtelemetry, gfake, groq_client):
    calls = [ToolCall("get_weather", json.dumps({"city": c})) for c in ("Paris", "Rome", "Oslo")]
    gfake.enqueue(Reply(text=None, tool_calls=calls, prompt_tokens=40, completion_tokens=30))
    result = groq_client.chat.completions.create(model=MODEL, messages=USER, tools=[WEATHER_TOOL])
    assert [c.function.name for c in result.choices[0].message.tool_calls] == ["get_weather"] * 3
    attrs = gtelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["tokenkpi.tool_calls.duplicate_count"] == 0
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)


def test_context_breakdown_of_an_agent_turn(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text="21 C and clear.", prompt_tokens=500, completion_tokens=9))
    followup = {"role": "user", "content": "And tomorrow?"}
    groq_client.chat.completions.create(model=MODEL, messages=[*HISTORY, followup], tools=[WEATHER_TOOL])
    attrs = gtelemetry.span().attributes
    # Up to the last assistant message (and system + tools, since there is one) the model saw it all.
    resent = est(SYSTEM, "Weather in Paris?", "get_weather", CALL_ARGS) + tool_tokens(WEATHER_TOOL)
    new = est(TOOL_RESULT, "And tomorrow?")
    assert attrs["tokenkpi.context.resent_tokens"] == resent
    assert attrs["tokenkpi.context.new_tokens"] == new
    assert attrs["tokenkpi.context.unattributed_tokens"] == 500 - resent - new
    # Groq is not in the cache-eligibility table (no confirmed minimum prompt length,
    # docs/cache-eligibility.md): whether the re-sent prefix was cacheable is unknown, so no attribute.
    assert "tokenkpi.waste.uncached_resent_tokens" not in attrs


@pytest.mark.skipif(GROQ_VERSION < (0, 15), reason="groq < 0.15 has no max_completion_tokens kwarg")
def test_max_completion_tokens_is_the_max_tokens(gtelemetry, gfake, groq_client):
    groq_client.chat.completions.create(model=MODEL, messages=USER, max_completion_tokens=50)
    assert gfake.requests[-1].body["max_completion_tokens"] == 50
    assert gtelemetry.span().attributes["gen_ai.request.max_tokens"] == 50


@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls", "content_filter"])
def test_finish_reasons_as_groq_spells_them(gtelemetry, gfake, groq_client, reason):
    gfake.enqueue(Reply(text="cut", finish_reason=reason, completion_tokens=6))
    groq_client.chat.completions.create(model=MODEL, messages=USER)
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.response.finish_reasons"] == (reason,)
    assert attrs["tokenkpi.waste.truncated_output_tokens"] == (6 if reason == "length" else 0)


def test_result_identical_with_and_without_instrumentation(gtelemetry, gfake, groq_client):
    reply = Reply(text="Sunny.", tool_calls=[ToolCall("get_weather", CALL_ARGS, "call_x")], cached_tokens=2)
    gfake.enqueue(reply)
    with_us = groq_client.chat.completions.create(model=MODEL, messages=HISTORY, tools=[WEATHER_TOOL])
    GroqInstrumentor().uninstrument()
    gfake.reset()
    gfake.enqueue(reply)
    without = groq_client.chat.completions.create(model=MODEL, messages=HISTORY, tools=[WEATHER_TOOL])
    assert type(with_us) is type(without) is groq.types.chat.ChatCompletion
    assert dump(with_us) == dump(without)
    assert wire(with_us, "x_groq", "id") == "req_1"
    assert len(gtelemetry.spans()) == 1


def test_generator_messages_reach_the_sdk_and_the_span(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(prompt_tokens=30))
    groq_client.chat.completions.create(model=MODEL, messages=(m for m in HISTORY[:2]))
    assert [m["role"] for m in gfake.requests[-1].body["messages"]] == ["system", "user"]
    attrs = gtelemetry.span().attributes
    assert attrs["tokenkpi.context.system_tokens"] == est(SYSTEM)
    assert attrs["tokenkpi.context.new_tokens"] == est(SYSTEM, "Weather in Paris?")
    assert attrs["tokenkpi.context.unattributed_tokens"] == 30 - est(SYSTEM, "Weather in Paris?")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, groq.BadRequestError),
        (401, groq.AuthenticationError),
        (429, groq.RateLimitError),
        (500, groq.InternalServerError),
    ],
)
def test_errors_are_the_sdks_own_and_recorded(gtelemetry, gfake, groq_client, status, error):
    gfake.enqueue(Reply(status=status, error_message="nope"))
    with pytest.raises(error) as with_us:
        groq_client.chat.completions.create(model=MODEL, messages=USER)
    GroqInstrumentor().uninstrument()
    gfake.enqueue(Reply(status=status, error_message="nope"))
    with pytest.raises(error) as without:
        groq_client.chat.completions.create(model=MODEL, messages=USER)
    assert str(with_us.value) == str(without.value)
    assert with_us.value.body == without.value.body
    span = gtelemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == error.__name__
    assert span.attributes["tokenkpi.waste.failed_call_tokens"] == 0
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_bad_json_raises_the_sdks_own_error(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(bad_json=True))
    with pytest.raises(json.JSONDecodeError):  # what the groq SDK raises for a body cut mid-string
        groq_client.chat.completions.create(model=MODEL, messages=USER)
    assert gtelemetry.span().attributes["error.type"] == "JSONDecodeError"


def test_metrics_token_usage_and_duration(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(prompt_tokens=100, completion_tokens=10), Reply(prompt_tokens=50, completion_tokens=4))
    for _ in range(2):
        groq_client.chat.completions.create(model=MODEL, messages=USER)
    usage = {p.attributes["gen_ai.token.type"]: p for p in gtelemetry.metric_points("gen_ai.client.token.usage")}
    assert usage["input"].sum == 150 and usage["input"].count == 2
    assert usage["output"].sum == 14 and usage["output"].count == 2
    assert usage["input"].attributes["gen_ai.provider.name"] == "groq"
    assert usage["input"].attributes["gen_ai.request.model"] == MODEL
    (duration,) = gtelemetry.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 2


async def test_async_create(gtelemetry, gfake, async_groq_client):
    gfake.enqueue(Reply(text="Async.", prompt_tokens=33, completion_tokens=4))
    result = await async_groq_client.chat.completions.create(model=MODEL, messages=USER, tools=[WEATHER_TOOL])
    assert result.choices[0].message.content == "Async."
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 33 and attrs["gen_ai.usage.output_tokens"] == 4
    assert attrs["tokenkpi.tools.defined_count"] == 1


async def test_async_error_passes_through(gtelemetry, gfake, async_groq_client):
    gfake.enqueue(Reply(status=429))
    with pytest.raises(groq.RateLimitError):
        await async_groq_client.chat.completions.create(model=MODEL, messages=USER)
    assert gtelemetry.span().attributes["error.type"] == "RateLimitError"


def test_with_raw_response_is_read_and_parse_is_unchanged(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text="Raw.", prompt_tokens=21, completion_tokens=3))
    raw = groq_client.chat.completions.with_raw_response.create(model=MODEL, messages=USER)
    assert type(raw).__name__ == "APIResponse"  # groq has no LegacyAPIResponse
    assert raw.headers["x-request-id"] == "req_1"
    parsed = raw.parse()
    assert parsed is raw.parse() and parsed.choices[0].message.content == "Raw."
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 21 and attrs["gen_ai.response.id"] == parsed.id


async def test_async_with_raw_response(gtelemetry, gfake, async_groq_client):
    gfake.enqueue(Reply(text="Raw.", prompt_tokens=22, completion_tokens=3))
    raw = await async_groq_client.chat.completions.with_raw_response.create(model=MODEL, messages=USER)
    parsed = await raw.parse()
    assert parsed.choices[0].message.content == "Raw."
    assert gtelemetry.span().attributes["gen_ai.usage.input_tokens"] == 22


def test_with_streaming_response_body_is_read_as_the_user_reads_it(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text="Mine.", prompt_tokens=9))
    with groq_client.chat.completions.with_streaming_response.create(model=MODEL, messages=USER) as response:
        body = json.loads(response.read())
    assert body["choices"][0]["message"]["content"] == "Mine."  # the user's bytes, unchanged
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["gen_ai.usage.input_tokens"] == 9


def test_uninstrument_stops_spans(gtelemetry, gfake, groq_client):
    GroqInstrumentor().uninstrument()
    groq_client.chat.completions.create(model=MODEL, messages=USER)
    assert gtelemetry.spans() == []


def test_entry_point_and_dependencies():
    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "tokenkpi_groq"]
    assert ep.load() is GroqInstrumentor
    assert list(GroqInstrumentor().instrumentation_dependencies()) == ["groq >= 0.4.0"]


def test_a_missing_method_warns_once_and_the_rest_is_instrumented(loaded_data, gfake, groq_client, caplog, monkeypatch):
    from _telemetry import Telemetry

    telemetry = Telemetry()
    instrumentor = GroqInstrumentor()
    missing = Patch("groq.resources.chat.completions", "Completions", "gone", make_wrapper=lambda recorder: None)
    monkeypatch.setattr(instrumentor, "patches", lambda: [missing, *GroqInstrumentor.patches(instrumentor)])
    with caplog.at_level(logging.WARNING):
        instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:
        groq_client.chat.completions.create(model=MODEL, messages=USER)
    finally:
        instrumentor.uninstrument()
    assert [r for r in caplog.records if "Completions.gone not found" in r.getMessage()]
    assert len(telemetry.spans()) == 1
