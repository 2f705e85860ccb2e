"""Cohere v2 ``chat`` and ``embed`` (sync and async), not streamed: one span per call with the request,
the response, billed usage as semconv usage and processed usage as ``tokenkpi.usage.processed.*``, cache
reads, the context breakdown (estimated: no offline Cohere tokenizer), tool fan-out, finish reasons as
Cohere spells them, metrics, content capture, and errors. The user's result or exception is the same with
and without instrumentation."""

from __future__ import annotations

import json
from typing import Any

import cohere
import pytest
from _cohere_support import (
    COHERE_VERSION,
    EMBED_MODEL,
    MODEL,
    NO_RETRIES,
    SCOPE,
    USER,
    embed_args,
    est,
    instrumented,
    make_client,
    sdk_close_error,
)
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.instrumentors.cohere import CohereInstrumentor
from otel_tokenkpi.testing.fake_cohere import Reply, ToolCall

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_cohere_support"]

SYSTEM = "You are WeatherBot. Answer in one short sentence and use the tools when you need data."
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def tool(name: str, description: str) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": PARAMETERS}}


WEATHER, TIME, NEWS = tool("get_weather", "Weather."), tool("get_time", "Local time."), tool("get_news", "Headline.")
RESULT_PARIS = '{"city": "Paris", "temperature_c": 18, "sky": "rain"}'
RESULT_ROME = {"city": "Rome", "temperature_c": 24}


def tool_tokens(t: dict) -> int:
    function = t["function"]
    return est(function["name"], function["description"], json.dumps(function["parameters"], separators=(",", ":")))


def test_chat_records_request_response_and_billed_usage(ctelemetry, cfake, cohere_client):
    cfake.enqueue(Reply(text="Rainy, 18 C.", input_tokens=30, output_tokens=12, processed_input_tokens=95))
    response = cohere_client.chat(
        model=MODEL,
        messages=[{"role": "system", "content": SYSTEM}, *USER],
        max_tokens=256,
        temperature=0.2,
        p=0.9,
        k=40,
        seed=7,
        frequency_penalty=0.1,
        presence_penalty=0.3,
        stop_sequences=["###"],
        response_format={"type": "json_object"},
    )
    assert response.message.content[0].text == "Rainy, 18 C."
    span = ctelemetry.span()
    attrs = span.attributes
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == SCOPE
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "cohere"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == int(cfake.url.rsplit(":", 1)[1])
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["gen_ai.request.max_tokens"] == 256
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.top_k"] == 40
    assert attrs["gen_ai.request.seed"] == 7
    assert attrs["gen_ai.request.frequency_penalty"] == 0.1
    assert attrs["gen_ai.request.presence_penalty"] == 0.3
    assert attrs["gen_ai.request.stop_sequences"] == ("###",)
    assert attrs["gen_ai.output.type"] == "json"
    assert "gen_ai.request.stream" not in attrs
    assert attrs["gen_ai.response.id"] == response.id == "00000000-0000-4000-8000-000000000001"
    assert attrs["gen_ai.response.finish_reasons"] == ("COMPLETE",)
    assert attrs["gen_ai.usage.input_tokens"] == 30  # billed, per semconv
    assert attrs["gen_ai.usage.output_tokens"] == 12
    assert attrs[sc.USAGE_PROCESSED_INPUT_TOKENS] == 95  # usage.tokens: what the model processed
    assert attrs[sc.USAGE_PROCESSED_OUTPUT_TOKENS] == 12
    assert isinstance(attrs["gen_ai.usage.input_tokens"], int)  # the SDK types counts as floats
    assert "gen_ai.usage.cache_read.input_tokens" not in attrs
    assert attrs["tokenkpi.context.system_tokens"] == est(SYSTEM)
    assert attrs["tokenkpi.context.new_tokens"] == est(SYSTEM) + est(USER[0]["content"])
    assert attrs["tokenkpi.context.resent_tokens"] == 0
    assert attrs["tokenkpi.tokens.estimated"] is True
    assert attrs["tokenkpi.cost.usd"] == pytest.approx((30 * 2.5 + 12 * 10.0) / 1e6)  # command-a prices
    assert attrs["tokenkpi.tool_calls.count"] == 0


def test_cached_tokens_are_cache_reads(ctelemetry, cfake, cohere_client):
    cfake.enqueue(Reply(text="ok", input_tokens=500, output_tokens=3, cache_read_tokens=320))
    cohere_client.chat(model=MODEL, messages=USER)
    attrs = ctelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 500
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 320


def test_results_identical_with_and_without_instrumentation(ctelemetry, cfake, cohere_client):
    reply = Reply(
        text=None,
        tool_plan="I will look it up.",
        tool_calls=[ToolCall("get_weather", '{"city": "Paris"}', id="get_weather_a")],
        cache_read_tokens=4,
    )
    cfake.enqueue(reply)
    with_us = cohere_client.chat(model=MODEL, messages=USER, tools=[WEATHER])
    CohereInstrumentor().uninstrument()
    cfake.reset()
    cfake.enqueue(reply)
    without = make_client(cfake).chat(model=MODEL, messages=USER, tools=[WEATHER])
    assert type(with_us) is type(without)
    assert with_us.dict() == without.dict()
    assert cfake.requests[-1].body["tools"] == [WEATHER]
    assert len(ctelemetry.spans()) == 1  # and none after uninstrument()


def test_parallel_tool_calls_tool_plan_and_tool_definitions(ctelemetry, cfake, cohere_client):
    calls = [ToolCall(name, json.dumps({"city": "Paris"})) for name in ("get_weather", "get_time", "get_news")]
    # A realistic bill: the content plus the tool-use preamble Cohere renders around the definitions.
    cfake.enqueue(Reply(text=None, tool_plan="Three lookups.", tool_calls=calls, input_tokens=300, output_tokens=70))
    response = cohere_client.chat(model=MODEL, messages=USER, tools=[WEATHER, TIME, NEWS])
    assert [c.function.name for c in response.message.tool_calls] == ["get_weather", "get_time", "get_news"]
    attrs = ctelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["tokenkpi.tools.defined_count"] == 3
    assert attrs["gen_ai.response.finish_reasons"] == ("TOOL_CALL",)
    definitions = sum(tool_tokens(t) for t in (WEATHER, TIME, NEWS))
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == definitions
    assert attrs["gen_ai.usage.output_tokens"] == 70
    # A first call is all new, and the breakdown adds up to the bill.
    assert (attrs["tokenkpi.context.resent_tokens"], attrs["tokenkpi.context.new_tokens"]) == (
        0,
        definitions + est(USER[0]["content"]),
    )
    assert attrs["tokenkpi.context.unattributed_tokens"] == 300 - definitions - est(USER[0]["content"])


def test_context_breakdown_of_an_agent_turn(ctelemetry, cfake, cohere_client):
    """An assistant turn with a plan and two tool calls; two tool results (a string, and document and text
    blocks); RAG documents; system content as blocks: every part counts where it belongs."""
    history = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        *USER,
        {
            "role": "assistant",
            "tool_plan": "Checking both cities.",
            "tool_calls": [
                {"id": "w1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "w2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "w1", "content": RESULT_PARIS},
        {
            "role": "tool",
            "tool_call_id": "w2",
            "content": [{"type": "document", "document": {"data": RESULT_ROME}}, {"type": "text", "text": " (live)"}],
        },
        {"role": "user", "content": [{"type": "text", "text": "Which one is warmer?"}]},
    ]
    cfake.enqueue(Reply(text="Rome is warmer.", input_tokens=400))
    cohere_client.chat(model=MODEL, messages=history, tools=[WEATHER], documents=["Rome is in Italy."])
    attrs = ctelemetry.span().attributes
    rome = json.dumps(RESULT_ROME, separators=(",", ":")) + " (live)"
    assert attrs["tokenkpi.context.system_tokens"] == est(SYSTEM)
    assert attrs["tokenkpi.context.tool_results_tokens"] == est(RESULT_PARIS) + est(rome)
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == tool_tokens(WEATHER)
    # Re-sent: the documents, system, question, tool definitions and the assistant turn (plan + two calls).
    assistant = est("Checking both cities.") + 2 * est("get_weather") + est('{"city":"Paris"}', '{"city":"Rome"}')
    resent = est("Rome is in Italy.") + est(SYSTEM) + est(USER[0]["content"]) + tool_tokens(WEATHER) + assistant
    assert attrs["tokenkpi.context.resent_tokens"] == resent
    assert attrs["tokenkpi.context.new_tokens"] == est(RESULT_PARIS) + est(rome) + est("Which one is warmer?")
    assert attrs["gen_ai.usage.input_tokens"] == 400  # totals are the provider's, exact
    new = attrs["tokenkpi.context.new_tokens"]
    assert attrs["tokenkpi.context.unattributed_tokens"] == 400 - resent - new
    # Cohere is not in the cache-eligibility table (no confirmed minimum prompt length,
    # docs/cache-eligibility.md): whether the re-sent prefix was cacheable is unknown, so no attribute.
    assert "tokenkpi.waste.uncached_resent_tokens" not in attrs


@pytest.mark.parametrize("reason", ["MAX_TOKENS", "STOP_SEQUENCE", "ERROR", "TIMEOUT", "COMPLETE"])
def test_finish_reasons_as_cohere_spells_them(ctelemetry, cfake, cohere_client, reason):
    cfake.enqueue(Reply(text="cut", finish_reason=reason, output_tokens=5))
    response = cohere_client.chat(model=MODEL, messages=USER, max_tokens=5)
    assert response.finish_reason == reason
    attrs = ctelemetry.span().attributes
    assert attrs["gen_ai.response.finish_reasons"] == (reason,)
    assert attrs["tokenkpi.waste.truncated_output_tokens"] == (5 if reason == "MAX_TOKENS" else 0)


@pytest.mark.skipif(COHERE_VERSION < (5, 17), reason="cohere < 5.17 has no thinking= parameter on chat")
def test_thinking_is_not_answer_text(capturing, cfake):
    cfake.enqueue(Reply(text="Paris.", thinking="The user wants a short answer."))
    make_client(cfake).chat(model=MODEL, messages=USER, thinking={"type": "enabled", "token_budget": 100})
    output = json.loads(capturing.span().attributes["gen_ai.output.messages"])
    assert output[0]["parts"] == [{"type": "text", "content": "Paris."}]


CALL_W1 = {"id": "w1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
HISTORY = [
    {"role": "system", "content": SYSTEM},
    *USER,
    {"role": "assistant", "tool_calls": [CALL_W1]},
    {"role": "tool", "tool_call_id": "w1", "content": RESULT_PARIS},
]


def test_no_content_without_the_opt_in(ctelemetry, cfake, cohere_client):
    cohere_client.chat(model=MODEL, messages=HISTORY)
    attrs = ctelemetry.span().attributes
    assert not [k for k in attrs if k in ("gen_ai.input.messages", "gen_ai.output.messages")]
    assert "gen_ai.system_instructions" not in attrs


def test_content_capture_opted_in(capturing, cfake):
    cfake.enqueue(Reply(text=None, tool_calls=[ToolCall("get_time", '{"city": "Paris"}', id="t9")]))
    make_client(cfake).chat(model=MODEL, messages=HISTORY)
    attrs = capturing.span().attributes
    messages = json.loads(attrs["gen_ai.input.messages"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2]["parts"] == [
        {"type": "tool_call", "id": "w1", "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    assert messages[3]["parts"][0]["id"] == "w1"
    output = json.loads(attrs["gen_ai.output.messages"])
    assert output[0]["parts"][0]["name"] == "get_time"
    assert output[0]["finish_reason"] == "TOOL_CALL"


def test_metrics_record_billed_tokens_and_duration(ctelemetry, cfake, cohere_client):
    cfake.enqueue(Reply(text="ok", input_tokens=21, output_tokens=4))
    cohere_client.chat(model=MODEL, messages=USER)
    points = ctelemetry.metric_points("gen_ai.client.token.usage")
    by_type = {p.attributes["gen_ai.token.type"]: p.sum for p in points}
    assert by_type == {"input": 21, "output": 4}
    assert all(p.attributes["gen_ai.provider.name"] == "cohere" for p in points)
    assert len(ctelemetry.metric_points("gen_ai.client.operation.duration")) == 1


async def test_async_chat(ctelemetry, cfake, async_cohere_client):
    cfake.enqueue(Reply(text="Bonjour.", input_tokens=8, output_tokens=2, tool_calls=[ToolCall("get_time", "{}")]))
    response = await async_cohere_client.chat(model=MODEL, messages=USER, tools=[TIME])
    assert response.message.content[0].text == "Bonjour."
    attrs = ctelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 8
    assert attrs["tokenkpi.tool_calls.count"] == 1
    assert attrs["gen_ai.response.finish_reasons"] == ("TOOL_CALL",)


def test_v2_namespace_of_the_v1_client_is_instrumented(ctelemetry, cfake):
    client = cohere.Client(api_key="co-test", base_url=cfake.url, **NO_RETRIES)
    client.v2.chat(model=MODEL, messages=USER)
    attrs = ctelemetry.span().attributes
    assert attrs["gen_ai.provider.name"] == "cohere"
    assert attrs["server.port"] == int(cfake.url.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, cohere.BadRequestError),
        (429, cohere.TooManyRequestsError),
        (500, cohere.InternalServerError),
        (503, cohere.ServiceUnavailableError),
    ],
)
def test_errors_reach_the_user_unchanged(ctelemetry, cfake, cohere_client, status, error):
    cfake.enqueue(Reply(status=status, error_message="nope"))
    with pytest.raises(error) as with_us:
        cohere_client.chat(model=MODEL, messages=USER)
    span = ctelemetry.span()
    assert span.attributes["error.type"] == error.__qualname__
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["tokenkpi.waste.failed_call_tokens"] == 0
    assert "gen_ai.usage.input_tokens" not in span.attributes
    CohereInstrumentor().uninstrument()
    cfake.reset()
    cfake.enqueue(Reply(status=status, error_message="nope"))
    with pytest.raises(error) as without:
        make_client(cfake).chat(model=MODEL, messages=USER)
    assert (with_us.value.status_code, with_us.value.body) == (without.value.status_code, without.value.body)


def test_positional_arguments_fail_as_without_us(ctelemetry, cohere_client):
    """The v2 methods are keyword-only: the SDK's TypeError is the user's, and no span is left open."""
    with pytest.raises(TypeError):
        cohere_client.chat(MODEL, USER)
    assert ctelemetry.span().attributes["error.type"] == "TypeError"


def test_embed_records_billed_input(ctelemetry, cfake, cohere_client):
    cfake.enqueue(Reply(input_tokens=6, processed_input_tokens=9))
    response = cohere_client.embed(
        **embed_args(EMBED_MODEL, ["a", "b"], "search_document", embedding_types=["float", "int8"])
    )
    assert len(response.embeddings.float_) == 2
    span = ctelemetry.span()
    attrs = span.attributes
    assert span.name == f"embeddings {EMBED_MODEL}"
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.request.encoding_formats"] == ("float", "int8")
    assert attrs["gen_ai.usage.input_tokens"] == 6
    assert attrs[sc.USAGE_PROCESSED_INPUT_TOKENS] == 9
    assert "gen_ai.usage.output_tokens" not in attrs
    assert attrs["tokenkpi.context.window"] == 128000
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(6 * 0.12 / 1e6)


async def test_async_embed_and_its_errors(ctelemetry, cfake, async_cohere_client):
    cfake.enqueue(Reply(input_tokens=3), Reply(status=500))
    await async_cohere_client.embed(**embed_args(EMBED_MODEL, ["x"], "search_query"))
    with pytest.raises(cohere.InternalServerError):
        await async_cohere_client.embed(**embed_args(EMBED_MODEL, ["x"], "search_query"))
    ok, failed = ctelemetry.spans()
    assert ok.attributes["gen_ai.usage.input_tokens"] == 3
    assert failed.attributes["error.type"] == "InternalServerError"


def test_entry_point_and_missing_methods_are_skipped(loaded_data, caplog, monkeypatch):
    from importlib.metadata import entry_points

    from cohere.v2 import client as v2

    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "tokenkpi_cohere"]
    assert ep.load() is CohereInstrumentor
    monkeypatch.delattr(v2.V2Client, "embed")  # as in cohere 5.8.0 to 5.9.2
    with instrumented():
        assert hasattr(v2.V2Client.chat, "__wrapped__")
        if COHERE_VERSION >= (5, 16):  # streams are patched on the raw client the v2 generator reaches
            from cohere.v2 import raw_client

            assert hasattr(raw_client.AsyncRawV2Client.chat_stream, "__wrapped__")
        else:
            assert hasattr(v2.AsyncV2Client.chat_stream, "__wrapped__")
    assert "cohere.v2.client.V2Client.embed not found" in caplog.text


@pytest.mark.skipif(COHERE_VERSION >= (5, 16), reason="cohere >= 5.16: the raw client catches early clients")
def test_clients_made_before_instrument_miss_chat_before_5_16(loaded_data, cfake):
    """A known limit of cohere < 5.16's layout: ``Client.__init__`` binds ``chat`` and ``chat_stream`` onto
    the instance, so a client made before ``instrument()`` keeps the plain methods (``embed`` is still
    seen), and those methods call the HTTP client themselves: no class-level seam below them."""
    early = make_client(cfake)
    with instrumented() as telemetry:
        early.chat(model=MODEL, messages=USER)
        early.embed(**embed_args(EMBED_MODEL, ["x"], "search_query"))
        make_client(cfake).chat(model=MODEL, messages=USER)
    assert [s.name for s in telemetry.spans()] == [f"embeddings {EMBED_MODEL}", f"chat {MODEL}"]


@pytest.mark.skipif(COHERE_VERSION < (5, 16), reason="cohere < 5.16 has no raw client to catch early clients")
def test_clients_made_before_instrument_are_traced_through_the_raw_client(loaded_data, cfake):
    """cohere >= 5.16: the v2 methods a client bound when it was made delegate to the raw client, patched
    at class level: the same one span per call, with the same attributes as from a client made later."""
    early, late = make_client(cfake), None
    spans = {}
    with instrumented() as telemetry:
        late = make_client(cfake)
        for name, client in (("early", early), ("late", late)):
            cfake.reset()
            cfake.enqueue(Reply(text="Bright.", input_tokens=13), Reply(text="Streamed bright.", output_tokens=6))
            client.chat(model=MODEL, messages=USER)
            text = "".join(
                event.delta.message.content.text
                for event in client.chat_stream(model=MODEL, messages=USER)
                if event.type == "content-delta"
            )
            assert text == "Streamed bright."
            client.embed(**embed_args(EMBED_MODEL, ["x"], "search_query"))
            spans[name] = telemetry.spans()
            telemetry.exporter.clear()
    for name in spans:
        assert [s.name for s in spans[name]] == [f"chat {MODEL}", f"chat {MODEL}", f"embeddings {EMBED_MODEL}"]

    def comparable(span: Any) -> dict[str, Any]:
        return {k: v for k, v in span.attributes.items() if k not in ("gen_ai.response.id", "server.port")}

    assert [comparable(s) for s in spans["early"]] == [comparable(s) for s in spans["late"]]
    plain, streamed, _ = spans["early"]
    assert plain.attributes["gen_ai.usage.input_tokens"] == 13
    assert streamed.attributes["gen_ai.request.stream"] is True
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 6


@pytest.mark.skipif(COHERE_VERSION < (5, 16), reason="cohere < 5.16 has no raw client to catch early clients")
async def test_async_clients_made_before_instrument_are_traced(loaded_data, cfake):
    early = make_client(cfake, is_async=True)
    cfake.enqueue(Reply(text="A.", input_tokens=11), Reply(text="B c.", output_tokens=4))
    with instrumented() as telemetry:
        await early.chat(model=MODEL, messages=USER)
        events = [event.type async for event in early.chat_stream(model=MODEL, messages=USER)]
    assert events[-1] == "message-end"
    plain, streamed = telemetry.spans()
    assert plain.attributes["gen_ai.usage.input_tokens"] == 11
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 4


def test_a_stream_left_early_ends_once(loaded_data, cfake):
    """Through a patched v2 method, the raw client's stream context stays quiet (one span), and leaving
    the stream early ends it once."""
    cfake.enqueue(Reply(text="one two three four five"))
    with instrumented() as telemetry:
        stream = make_client(cfake).chat_stream(model=MODEL, messages=USER)
        next(iter(stream))
        with sdk_close_error():
            stream.close()
    (span,) = telemetry.spans()
    assert span.attributes["gen_ai.request.model"] == MODEL
    assert "gen_ai.response.finish_reasons" not in span.attributes
