"""Chat Completions through the real openai SDK: span shape, exact usage,
locally counted context, cost, metrics, and identity of what the user gets."""

from __future__ import annotations

import json

import genai_prices
import openai
import pytest
import tiktoken
from _telemetry import billed_tool_tokens
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing.fake_openai import Reply, ToolCall

O200K = tiktoken.get_encoding("o200k_base")

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
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "max_price": {"type": "number"}},
        },
    },
}
TOOL_RESULT = '{"city": "Paris", "temp_c": 21, "sky": "clear"}'
HISTORY = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_a", "content": TOOL_RESULT},
]


def tokens_of(*texts: str) -> int:
    return sum(len(O200K.encode_ordinary(t)) for t in texts)


def oracle_cost(model: str, input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    usage = genai_prices.Usage(input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=output_tokens)
    return float(genai_prices.calc_price(usage, model_ref=model, provider_id="openai").total_price)


def test_plain_call_span_has_semconv_shape_and_exact_usage(telemetry, fake, openai_client):
    fake.enqueue(Reply(text="Sunny.", prompt_tokens=120, completion_tokens=7, cached_tokens=64, reasoning_tokens=3))
    result = openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HISTORY,
        tools=[WEATHER_TOOL, HOTEL_TOOL],
        max_tokens=50,
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        seed=7,
        n=1,
    )
    assert result.choices[0].message.content == "Sunny."
    span = telemetry.span()
    attrs = dict(span.attributes)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    host, port = fake.url.removeprefix("http://").split(":")
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["server.address"] == host and attrs["server.port"] == int(port)
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.stop_sequences"] == ("END",)
    assert attrs["gen_ai.request.seed"] == 7
    assert "gen_ai.request.choice.count" not in attrs  # n=1 is the default
    assert "gen_ai.request.stream" not in attrs
    assert attrs["gen_ai.response.id"] == result.id
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["gen_ai.usage.output_tokens"] == 7
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 64
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 3
    # Context breakdown, counted locally with the model's encoding.
    assert attrs["tokenkpi.context.system_tokens"] == tokens_of(SYSTEM)
    assert attrs["tokenkpi.context.tool_results_tokens"] == tokens_of(TOOL_RESULT)
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == billed_tool_tokens([WEATHER_TOOL, HOTEL_TOOL], HISTORY)
    assert attrs["tokenkpi.tools.defined_count"] == 2
    assert attrs["tokenkpi.tool_calls.count"] == 0
    assert "tokenkpi.tokens.estimated" not in attrs  # everything here is exact
    # Price and window from genai-prices (cache-aware).
    assert attrs["tokenkpi.context.window"] == 128000
    assert attrs["tokenkpi.context.utilization"] == pytest.approx(120 / 128000)
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(oracle_cost("gpt-4o-mini", 120, 7, 64), rel=1e-9)


def test_parallel_tool_calls_are_fan_out(telemetry, fake, openai_client):
    calls = [ToolCall("get_weather", json.dumps({"city": c})) for c in ("Paris", "Rome", "Oslo")]
    fake.enqueue(Reply(text=None, tool_calls=calls, prompt_tokens=40, completion_tokens=30))
    result = openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY[:2], tools=[WEATHER_TOOL])
    assert len(result.choices[0].message.tool_calls) == 3
    attrs = telemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)


def test_legacy_function_call_counts_as_one_tool_call(telemetry, fake, openai_client):
    functions = [WEATHER_TOOL["function"]]
    fake.enqueue(Reply(text="ok", prompt_tokens=70))  # the content plus OpenAI's rendering of the function
    openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY[:2], functions=functions)
    attrs = telemetry.span().attributes
    assert attrs["tokenkpi.tools.defined_count"] == 1
    definitions = billed_tool_tokens([WEATHER_TOOL], HISTORY[:2])
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == definitions
    local = definitions + tokens_of(SYSTEM, "Weather in Paris?")
    assert (attrs["tokenkpi.context.new_tokens"], attrs["tokenkpi.context.unattributed_tokens"]) == (local, 70 - local)


def test_result_identical_with_and_without_instrumentation(telemetry, fake, openai_client):
    reply = Reply(text="Same.", tool_calls=[ToolCall("get_weather", '{"city":"Paris"}', id="call_x")])
    fake.enqueue(reply)
    with_us = openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY, tools=[WEATHER_TOOL])
    OpenAIInstrumentor().uninstrument()
    fake.reset()
    fake.enqueue(reply)
    without = openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY, tools=[WEATHER_TOOL])
    assert type(with_us) is type(without) is openai.types.chat.ChatCompletion
    assert with_us.model_dump(exclude={"created"}) == without.model_dump(exclude={"created"})
    assert len(telemetry.spans()) == 1  # the uninstrumented call made none


def test_request_sent_unchanged(telemetry, fake, openai_client):
    fake.enqueue(Reply())
    openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY, stream=False)
    body = fake.requests[-1].body
    assert body["messages"] == HISTORY
    assert "stream_options" not in body


def test_generator_messages_are_not_consumed_by_us(telemetry, fake, openai_client):
    fake.enqueue(Reply(prompt_tokens=60))
    openai_client.chat.completions.create(model="gpt-4o", messages=(m for m in HISTORY))
    assert fake.requests[-1].body["messages"] == HISTORY
    attrs = telemetry.span().attributes
    assert attrs["tokenkpi.context.system_tokens"] == tokens_of(SYSTEM)
    resent = tokens_of(SYSTEM, "Weather in Paris?", "get_weather", '{"city":"Paris"}')
    assert (attrs["tokenkpi.context.resent_tokens"], attrs["tokenkpi.context.new_tokens"]) == (
        resent,
        tokens_of(TOOL_RESULT),
    )
    assert attrs["tokenkpi.context.unattributed_tokens"] == 60 - resent - tokens_of(TOOL_RESULT)


def test_pydantic_history_messages_are_read(telemetry, fake, openai_client):
    fake.enqueue(Reply(text=None, tool_calls=[ToolCall("get_weather", '{"city":"Rome"}')], prompt_tokens=70))
    first = openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY[:2], tools=[WEATHER_TOOL])
    assistant = first.choices[0].message  # a pydantic object, as agents append it
    fake.enqueue(Reply(text="Warm.", prompt_tokens=90))
    history = [*HISTORY[:2], assistant, {"role": "tool", "tool_call_id": assistant.tool_calls[0].id, "content": "25C"}]
    openai_client.chat.completions.create(model="gpt-4o", messages=history, tools=[WEATHER_TOOL])
    second = telemetry.spans()[-1].attributes
    assert second["tokenkpi.context.tool_results_tokens"] == tokens_of("25C")
    # The pydantic assistant message is read: its call is re-sent with everything before it.
    resent = tokens_of(SYSTEM, "Weather in Paris?", "get_weather", '{"city":"Rome"}') + billed_tool_tokens(
        [WEATHER_TOOL], history
    )
    assert second["tokenkpi.context.resent_tokens"] == resent
    assert second["tokenkpi.context.new_tokens"] == tokens_of("25C")
    assert second["tokenkpi.context.unattributed_tokens"] == 90 - resent - tokens_of("25C")


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError), (400, openai.BadRequestError)],
)
def test_http_errors_pass_through_and_mark_the_span(telemetry, fake, openai_client, status, error):
    fake.enqueue(Reply(status=status, error_message=f"boom {status}"))
    with pytest.raises(error) as with_us:
        openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY[:2])
    OpenAIInstrumentor().uninstrument()
    fake.enqueue(Reply(status=status, error_message=f"boom {status}"))
    with pytest.raises(error) as without:
        openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY[:2])
    assert str(with_us.value) == str(without.value)
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == error.__name__
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_bad_json_raises_the_sdks_own_error(telemetry, fake, openai_client):
    fake.enqueue(Reply(bad_json=True))
    with pytest.raises(json.JSONDecodeError):
        openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY[:2])
    assert telemetry.span().attributes["error.type"] == "JSONDecodeError"


def test_sdk_retries_make_one_span(telemetry, fake):
    client = openai.OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=2)
    fake.enqueue(Reply(status=500, headers={"retry-after-ms": "1"}), Reply(text="third time", prompt_tokens=9))
    result = client.chat.completions.create(model="gpt-4o", messages=HISTORY[:2])
    assert result.choices[0].message.content == "third time"
    span = telemetry.span()
    assert span.attributes["gen_ai.usage.input_tokens"] == 9
    assert len(fake.requests) == 2


@pytest.mark.skipif(
    not hasattr(openai.resources.chat.completions.Completions, "parse"),
    reason="this openai release has parse() only under client.beta (chat.completions.parse from openai 1.92)",
)
def test_parse_with_pydantic_format_is_one_json_span(telemetry, fake, openai_client):
    from pydantic import BaseModel

    class Answer(BaseModel):
        city: str
        temp_c: int

    fake.enqueue(Reply(text='{"city": "Paris", "temp_c": 21}', prompt_tokens=30, completion_tokens=11))
    parsed = openai_client.chat.completions.parse(model="gpt-4o", messages=HISTORY[:2], response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(city="Paris", temp_c=21)
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.output.type"] == "json"
    assert attrs["gen_ai.usage.output_tokens"] == 11


def test_with_raw_response_is_instrumented(telemetry, fake, openai_client):
    fake.enqueue(Reply(text="raw", prompt_tokens=13, completion_tokens=2))
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HISTORY[:2])
    assert raw.http_response.status_code == 200
    completion = raw.parse()
    assert completion.choices[0].message.content == "raw"
    assert raw.parse() is completion  # the SDK's cache still works after we parsed it
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 13
    assert attrs["gen_ai.response.id"] == completion.id


def test_with_raw_response_bound_before_uninstrument_goes_quiet(telemetry, fake, openai_client):
    raw_api = openai_client.chat.completions.with_raw_response  # binds the wrapped create now
    OpenAIInstrumentor().uninstrument()
    fake.enqueue(Reply(text="quiet"))
    assert raw_api.create(model="gpt-4o", messages=HISTORY[:2]).parse().choices[0].message.content == "quiet"
    assert telemetry.spans() == []


async def test_async_plain_call(telemetry, fake, async_openai_client):
    fake.enqueue(Reply(text="async hi", prompt_tokens=120, completion_tokens=3))
    result = await async_openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY, tools=[WEATHER_TOOL])
    assert result.choices[0].message.content == "async hi"
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["tokenkpi.context.tool_results_tokens"] == tokens_of(TOOL_RESULT)
    resent = tokens_of(SYSTEM, "Weather in Paris?", "get_weather", '{"city":"Paris"}') + billed_tool_tokens(
        [WEATHER_TOOL], HISTORY
    )
    assert attrs["tokenkpi.context.resent_tokens"] == resent
    assert attrs["tokenkpi.context.unattributed_tokens"] == 120 - resent - tokens_of(TOOL_RESULT)
    # gpt-4o caches prefixes from 1,024 tokens on (docs/cache-eligibility.md): this short one is not waste.
    assert attrs["tokenkpi.waste.uncached_resent_tokens"] == 0


async def test_async_error_passes_through(telemetry, fake, async_openai_client):
    fake.enqueue(Reply(status=429))
    with pytest.raises(openai.RateLimitError):
        await async_openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY[:2])
    assert telemetry.span().attributes["error.type"] == "RateLimitError"


def test_metrics_token_usage_and_duration(telemetry, fake, openai_client):
    fake.enqueue(Reply(prompt_tokens=100, completion_tokens=10), Reply(prompt_tokens=50, completion_tokens=4))
    for _ in range(2):
        openai_client.chat.completions.create(model="gpt-4o", messages=HISTORY[:2])
    usage = {p.attributes["gen_ai.token.type"]: p for p in telemetry.metric_points("gen_ai.client.token.usage")}
    assert usage["input"].sum == 150 and usage["input"].count == 2
    assert usage["output"].sum == 14 and usage["output"].count == 2
    assert usage["input"].attributes["gen_ai.provider.name"] == "openai"
    assert usage["input"].attributes["gen_ai.request.model"] == "gpt-4o"
    assert usage["input"].explicit_bounds[:4] == (1, 4, 16, 64)
    (duration,) = telemetry.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 2 and 0 < duration.sum < 5


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("my-res.openai.azure.com", "azure.ai.openai"),
        ("api.groq.com", "groq"),
        ("api.deepseek.com", "deepseek"),
        ("api.x.ai", "x_ai"),
        ("api.perplexity.ai", "perplexity"),
        ("api.mistral.ai", "mistral_ai"),
        ("api.openai.com", "openai"),
    ],
)
def test_provider_from_base_url(host, provider):
    from otel_tokenkpi.instrumentors.openai import provider_for

    assert provider_for(object(), host) == provider


def test_with_streaming_response_body_is_read_as_the_user_reads_it(telemetry, fake, openai_client):
    fake.enqueue(Reply(text="streamed body", prompt_tokens=8))
    with openai_client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=HISTORY[:2]) as raw:
        body = json.loads(b"".join(raw.iter_bytes()))
    assert body["choices"][0]["message"]["content"] == "streamed body"  # the user's bytes, unchanged
    span = telemetry.span()
    assert span.attributes["gen_ai.request.model"] == "gpt-4o"
    assert span.attributes["gen_ai.usage.input_tokens"] == 8  # seen through the body the user read
    assert span.attributes["gen_ai.response.id"] == body["id"]
