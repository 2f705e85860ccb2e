"""Mistral ``chat.complete`` / ``complete_async`` and ``embeddings.create`` / ``create_async`` through the real
mistralai SDK against the fake API: one span per call with the request, the response, exact usage (cache reads
inside input), the estimated context breakdown, tool-call fan-out, finish reasons as Mistral spells them,
errors and metrics. The user's result or exception is the same with and without instrumentation."""

from __future__ import annotations

import json
import logging

import _mistral_support
import pytest
from _mistral_support import MODEL, SCOPE, USER, estimate
from mistralai.client import errors, models
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokenkpi.instrumentors import mistral as mistral_instrumentor
from otel_tokenkpi.instrumentors.mistral import MistralInstrumentor
from otel_tokenkpi.testing.fake_mistral import Reply, ToolCall

mistral_server, mfake, mclient, mtelemetry = (
    _mistral_support.mistral_server,
    _mistral_support.mfake,
    _mistral_support.mclient,
    _mistral_support.mtelemetry,
)

SYSTEM = "You are WeatherBot. Answer in one short sentence and use the tools when you need data."
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather for a city.", "parameters": PARAMETERS},
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "description": "Local time.", "parameters": {}}}
RESULT_PARIS = '{"city": "Paris", "temperature_c": 18, "sky": "rain"}'


def tool_tokens(tool: dict) -> int:
    function = tool["function"]
    return estimate(
        function["name"], function["description"], json.dumps(function["parameters"], separators=(",", ":"))
    )


def test_complete_records_request_response_and_usage(mtelemetry, mfake, mclient):
    mfake.enqueue(Reply(text="Rainy, 18 C.", input_tokens=130, output_tokens=12, cache_read_tokens=100))
    response = mclient.chat.complete(
        model=MODEL,
        messages=[{"role": "system", "content": SYSTEM}, *USER],
        max_tokens=256,
        temperature=0.2,
        top_p=0.9,
        random_seed=7,
        stop=["###"],
        presence_penalty=0.1,
        frequency_penalty=0.3,
        response_format={"type": "json_object"},
    )
    assert response.choices[0].message.content == "Rainy, 18 C."
    span = mtelemetry.span()
    attrs = span.attributes
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == SCOPE
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "mistral_ai"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == int(mfake.url.rsplit(":", 1)[1])
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["gen_ai.request.max_tokens"] == 256
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.seed"] == 7
    assert attrs["gen_ai.request.stop_sequences"] == ("###",)
    assert attrs["gen_ai.request.presence_penalty"] == 0.1
    assert attrs["gen_ai.request.frequency_penalty"] == 0.3
    assert attrs["gen_ai.output.type"] == "json"
    assert "gen_ai.request.stream" not in attrs
    assert attrs["gen_ai.response.id"] == response.id == "cmpl-" + "0" * 31 + "1"
    assert attrs["gen_ai.response.model"] == MODEL
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 130  # prompt_tokens already includes the 100 cached
    assert attrs["gen_ai.usage.output_tokens"] == 12
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 100
    assert "gen_ai.usage.cache_write.input_tokens" not in attrs
    assert attrs["tokenkpi.context.system_tokens"] == estimate(SYSTEM)
    assert attrs["tokenkpi.tokens.estimated"] is True  # the breakdown; usage itself is the provider's
    assert attrs["tokenkpi.tool_calls.count"] == 0
    assert attrs["tokenkpi.tools.defined_count"] == 0
    assert attrs["tokenkpi.cost.usd"] > 0
    # Nothing the user did not opt in to, and never the API key.
    assert not any("test-key" in str(v) for v in attrs.values())
    assert "gen_ai.input.messages" not in attrs


def test_results_identical_with_and_without_instrumentation(mtelemetry, mfake, mclient):
    reply = Reply(text="Let me check.", tool_calls=[ToolCall("get_weather", '{"city": "Paris"}', id="abcDEF123")])
    mfake.enqueue(reply)
    with_us = mclient.chat.complete(model=MODEL, messages=USER, tools=[WEATHER_TOOL])
    sent_with_us = mfake.requests[-1].body
    MistralInstrumentor().uninstrument()
    mfake.reset()
    mfake.enqueue(reply)
    without = mclient.chat.complete(model=MODEL, messages=USER, tools=[WEATHER_TOOL])
    assert type(with_us) is type(without) is models.ChatCompletionResponse
    assert with_us.model_dump(exclude={"created"}) == without.model_dump(exclude={"created"})
    assert sent_with_us == mfake.requests[-1].body
    assert len(mtelemetry.spans()) == 1  # and none after uninstrument()


@pytest.mark.parametrize("as_object", [False, True], ids=["arguments-text", "arguments-object"])
def test_fan_out_tool_calls_and_tool_definitions(mtelemetry, mfake, mclient, as_object):
    calls = [
        ToolCall(name, json.dumps({"city": city})) for name, city in (("get_weather", "Paris"), ("get_time", "Rome"))
    ]
    calls.append(ToolCall("get_weather", '{"city": "Oslo"}'))
    # Billed as Mistral bills it: the content plus the [AVAILABLE_TOOLS] block and the chat template.
    mfake.enqueue(Reply(text=None, tool_calls=calls, input_tokens=120, output_tokens=70, arguments_as_object=as_object))
    response = mclient.chat.complete(model=MODEL, messages=USER, tools=[WEATHER_TOOL, TIME_TOOL])
    arguments = [c.function.arguments for c in response.choices[0].message.tool_calls]
    assert all(isinstance(a, dict) for a in arguments) is as_object
    attrs = mtelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["tokenkpi.tool_calls.duplicate_count"] == 0
    assert attrs["tokenkpi.tools.defined_count"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)
    definitions = tool_tokens(WEATHER_TOOL) + tool_tokens(TIME_TOOL)
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == definitions
    assert attrs["gen_ai.usage.output_tokens"] == 70
    local = definitions + estimate(USER[0]["content"])  # a first call: all new
    assert (attrs["tokenkpi.context.new_tokens"], attrs["tokenkpi.context.unattributed_tokens"]) == (local, 120 - local)


def test_context_breakdown_of_an_agent_turn_with_sdk_objects(mtelemetry, mfake, mclient):
    """History as the SDK's own objects (the assistant message of an earlier response, with a dict-valued
    ``arguments``) and dicts: system, tool-definition, tool-result and re-sent tokens all count."""
    mfake.enqueue(
        Reply(
            text=None,
            tool_calls=[ToolCall("get_weather", '{"city": "Paris"}', id="call0000A")],
            arguments_as_object=True,
        )
    )
    first = mclient.chat.complete(
        model=MODEL, messages=[{"role": "system", "content": SYSTEM}, *USER], tools=[WEATHER_TOOL]
    )
    history = [
        models.SystemMessage(content=SYSTEM),
        *USER,
        first.choices[0].message,
        models.ToolMessage(content=RESULT_PARIS, tool_call_id="call0000A", name="get_weather"),
    ]
    mfake.enqueue(Reply(text="Rainy in Paris.", input_tokens=400))
    mclient.chat.complete(model=MODEL, messages=history, tools=[WEATHER_TOOL])
    second = mtelemetry.spans()[1].attributes
    assert second["tokenkpi.context.system_tokens"] == estimate(SYSTEM)
    assert second["tokenkpi.context.tool_results_tokens"] == estimate(RESULT_PARIS)
    assert second["tokenkpi.context.tool_definitions_tokens"] == tool_tokens(WEATHER_TOOL)
    call_tokens = estimate("get_weather", '{"city":"Paris"}')  # the dict arguments as compact JSON
    resent = estimate(SYSTEM) + estimate(USER[0]["content"]) + call_tokens + tool_tokens(WEATHER_TOOL)
    assert second["tokenkpi.context.resent_tokens"] == resent
    assert second["tokenkpi.context.new_tokens"] == estimate(RESULT_PARIS)
    assert second["gen_ai.usage.input_tokens"] == 400  # totals are the provider's, exact
    assert second["tokenkpi.context.unattributed_tokens"] == 400 - resent - estimate(RESULT_PARIS)
    # Mistral is not in the cache-eligibility table (no confirmed minimum prompt length,
    # docs/cache-eligibility.md): whether the re-sent prefix was cacheable is unknown, so no attribute.
    assert "tokenkpi.waste.uncached_resent_tokens" not in second
    assert mfake.requests[1].body["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}


@pytest.mark.parametrize("reason", ["stop", "length", "model_length", "error", "tool_calls"])
def test_finish_reasons_as_mistral_spells_them(mtelemetry, mfake, mclient, reason):
    mfake.enqueue(Reply(text="cut", finish_reason=reason))
    response = mclient.chat.complete(model=MODEL, messages=USER, max_tokens=5)
    assert response.choices[0].finish_reason == reason
    assert mtelemetry.span().attributes["gen_ai.response.finish_reasons"] == (reason,)


def test_length_is_truncated_output(mtelemetry, mfake, mclient):
    mfake.enqueue(Reply(text="It is twenty", finish_reason="length", input_tokens=40, output_tokens=5))
    mclient.chat.complete(model=MODEL, messages=USER, max_tokens=5)
    attrs = mtelemetry.span().attributes
    assert attrs["tokenkpi.waste.truncated_output_tokens"] == 5
    assert attrs["tokenkpi.waste.tokens"] == 5


def test_model_length_is_truncated_output(mtelemetry, mfake, mclient):
    mfake.enqueue(Reply(text="It is twenty", finish_reason="model_length", input_tokens=40, output_tokens=5))
    mclient.chat.complete(model=MODEL, messages=USER)
    assert mtelemetry.span().attributes["tokenkpi.waste.truncated_output_tokens"] == 5


def test_several_choices(mtelemetry, mfake, mclient):
    mfake.enqueue(Reply(text="One of two.", output_tokens=8))
    response = mclient.chat.complete(model=MODEL, messages=USER, n=2)
    assert len(response.choices) == 2
    attrs = mtelemetry.span().attributes
    assert attrs["gen_ai.request.choice.count"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ("stop", "stop")


def test_messages_from_a_generator_reach_the_sdk_and_the_span(mtelemetry, mfake, mclient):
    history = [{"role": "user", "content": RESULT_PARIS}, {"role": "assistant", "content": "Noted."}, *USER]
    mfake.enqueue(Reply(input_tokens=45), Reply(input_tokens=45))
    mclient.chat.complete(model=MODEL, messages=(m for m in history))
    mclient.chat.complete(model=MODEL, messages=history)
    assert mfake.requests[0].body == mfake.requests[1].body  # the generator reached the SDK whole
    assert [m["content"] for m in mfake.requests[0].body["messages"]] == [m["content"] for m in history]
    attrs = mtelemetry.spans()[0].attributes
    resent, new = estimate(RESULT_PARIS) + estimate("Noted."), estimate(USER[0]["content"])
    assert attrs["tokenkpi.context.resent_tokens"] == resent
    assert attrs["tokenkpi.context.new_tokens"] == new
    assert attrs["tokenkpi.context.unattributed_tokens"] == 45 - resent - new


@pytest.mark.parametrize(
    ("status", "error"), [(400, errors.SDKError), (500, errors.SDKError), (422, errors.HTTPValidationError)]
)
def test_errors_are_the_sdks_own_and_recorded(mtelemetry, mfake, mclient, status, error):
    mfake.enqueue(Reply(status=status, error_message=f"boom {status}"))
    with pytest.raises(error) as with_us:
        mclient.chat.complete(model=MODEL, messages=USER)
    MistralInstrumentor().uninstrument()
    mfake.enqueue(Reply(status=status, error_message=f"boom {status}"))
    with pytest.raises(error) as without:
        mclient.chat.complete(model=MODEL, messages=USER)
    assert type(with_us.value) is type(without.value)
    assert str(with_us.value) == str(without.value)
    assert len(mfake.requests) == 2  # no retries: one request per call
    span = mtelemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == error.__name__
    assert span.attributes["tokenkpi.waste.failed_call_tokens"] == 0
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_bad_json_raises_the_sdks_own_error(mtelemetry, mfake, mclient):
    mfake.enqueue(Reply(bad_json=True))
    with pytest.raises(Exception) as raised:
        mclient.chat.complete(model=MODEL, messages=USER)
    assert mtelemetry.span().attributes["error.type"] == type(raised.value).__qualname__


async def test_async_complete(mtelemetry, mfake, mclient):
    mfake.enqueue(Reply(text="Async.", input_tokens=40, output_tokens=3, cache_read_tokens=4))
    response = await mclient.chat.complete_async(model=MODEL, messages=[{"role": "system", "content": SYSTEM}, *USER])
    assert response.choices[0].message.content == "Async."
    attrs = mtelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 40
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 4
    assert attrs["tokenkpi.context.system_tokens"] == estimate(SYSTEM)
    assert attrs["tokenkpi.context.unattributed_tokens"] == 40 - estimate(SYSTEM, USER[0]["content"])
    assert "gen_ai.request.stream" not in attrs


async def test_async_error_passes_through(mtelemetry, mfake, mclient):
    mfake.enqueue(Reply(status=429, error_message="slow down"))
    with pytest.raises(errors.SDKError, match="slow down"):
        await mclient.chat.complete_async(model=MODEL, messages=USER)
    assert mtelemetry.span().attributes["error.type"] == "SDKError"


def test_parse_goes_through_complete_once(mtelemetry, mfake, mclient):
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str

    mfake.enqueue(Reply(text='{"city": "Paris"}', input_tokens=20, output_tokens=6))
    parsed = mclient.chat.parse(Weather, model=MODEL, messages=USER)
    assert parsed.choices[0].message.parsed == Weather(city="Paris")
    attrs = mtelemetry.span().attributes
    assert attrs["gen_ai.output.type"] == "json"
    assert attrs["gen_ai.usage.output_tokens"] == 6


def test_metrics_record_exact_tokens_and_duration(mtelemetry, mfake, mclient):
    mfake.enqueue(Reply(text="ok", input_tokens=21, output_tokens=4))
    mclient.chat.complete(model=MODEL, messages=USER)
    tokens = {p.attributes["gen_ai.token.type"]: p for p in mtelemetry.metric_points("gen_ai.client.token.usage")}
    assert tokens["input"].sum == 21 and tokens["output"].sum == 4
    assert tokens["input"].attributes["gen_ai.provider.name"] == "mistral_ai"
    assert tokens["input"].attributes["gen_ai.operation.name"] == "chat"
    (duration,) = mtelemetry.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert duration.attributes["gen_ai.response.model"] == MODEL


def test_per_call_server_url_is_the_server(mtelemetry, mfake):
    from mistralai.client import Mistral

    client = Mistral(api_key="test-key")  # the default server: api.mistral.ai
    client.chat.complete(model=MODEL, messages=USER, server_url=mfake.url)
    attrs = mtelemetry.span().attributes
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == int(mfake.url.rsplit(":", 1)[1])


def test_uninstrument_restores_the_sdk(mtelemetry, mfake, mclient):
    from mistralai.client import chat, embeddings

    MistralInstrumentor().uninstrument()
    assert not hasattr(chat.Chat.complete, "__wrapped__")
    assert not hasattr(chat.Chat.stream_async, "__wrapped__")
    assert not hasattr(embeddings.Embeddings.create, "__wrapped__")
    mclient.chat.complete(model=MODEL, messages=USER)
    assert mtelemetry.spans() == []


def test_embeddings(mtelemetry, mfake, mclient):
    result = mclient.embeddings.create(model="mistral-embed", inputs=["one", "two", "three"], output_dimension=4)
    assert len(result.data) == 3
    span = mtelemetry.span()
    attrs = span.attributes
    assert span.name == "embeddings mistral-embed"
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.provider.name"] == "mistral_ai"
    assert attrs["gen_ai.usage.input_tokens"] == 24  # 8 per input, as the fake reports
    assert attrs["gen_ai.embeddings.dimension.count"] == 4
    assert attrs["gen_ai.response.model"] == "mistral-embed"
    assert "gen_ai.usage.output_tokens" not in attrs


async def test_async_embeddings(mtelemetry, mfake, mclient):
    result = await mclient.embeddings.create_async(model="mistral-embed", inputs="one")
    assert len(result.data) == 1
    assert mtelemetry.span().attributes["gen_ai.usage.input_tokens"] == 8


def test_missing_client_layout_warns_once_and_patches_nothing(monkeypatch, caplog):
    monkeypatch.setattr(mistral_instrumentor, "_CHAT", "mistralai.no_such_module")
    instrumentor = MistralInstrumentor()
    with caplog.at_level(logging.WARNING, logger="otel_tokenkpi"):
        instrumentor.instrument()
        try:
            from mistralai.client import chat

            assert not hasattr(chat.Chat.complete, "__wrapped__")
        finally:
            instrumentor.uninstrument()
    assert sum("mistralai.client not found" in r.getMessage() for r in caplog.records) == 1


def test_entry_point_and_extra():
    from importlib.metadata import entry_points, metadata

    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "tokenkpi_mistral"]
    assert ep.load() is MistralInstrumentor
    assert 'mistralai>=2.0.0; extra == "mistral"' in metadata("otel-tokenkpi").get_all("Requires-Dist")
