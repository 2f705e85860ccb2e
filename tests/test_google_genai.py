"""generate_content through the real google-genai SDK against the fake Gemini server: span shape, exact
usage (cached, thoughts, tool-use prompt tokens), estimated context breakdown, function calls, automatic
function calling, errors, Vertex AI mode, metrics, and identity of what the user gets.

No ``from __future__ import annotations`` here: google-genai 1.x cannot read string annotations of a
function given as a tool (automatic function calling), and these tests run at the SDK's floor too."""

import json

import _gemini_support
import genai_prices
import pytest
from _gemini_support import HAS_EMBED_USAGE, HAS_JSON_SCHEMA, MODEL, RESPONSE_ID, estimate, make_client
from google.genai import errors, types
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokenkpi.instrumentors.google_genai import GoogleGenAIInstrumentor
from otel_tokenkpi.testing.fake_gemini import EMBEDDING_TOKENS_PER_INPUT, Reply, ToolCall

# The shared fixtures (assigned, not imported by name, so that test arguments may use the names).
gemini_server, gemini, gclient, gtelemetry = (
    _gemini_support.gemini_server,
    _gemini_support.gemini,
    _gemini_support.gclient,
    _gemini_support.gtelemetry,
)

SYSTEM = "You are a travel agent. Answer in one sentence."
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
# A JSON Schema goes on the wire as given; google-genai < 1.21 has no ``parameters_json_schema``, so there the
# same schema is declared as an OpenAPI Schema (``parameters``), which the SDK sends with upper-case types.
WEATHER_DECLARATION = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters_json_schema" if HAS_JSON_SCHEMA else "parameters": WEATHER_SCHEMA,
}
WEATHER_WIRE_SCHEMA = (
    json.dumps(WEATHER_SCHEMA, separators=(",", ":"))
    if HAS_JSON_SCHEMA
    else '{"properties":{"city":{"type":"STRING"}},"required":["city"],"type":"OBJECT"}'
)
HOTEL_DECLARATION = {
    "name": "find_hotel",
    "description": "Hotels in a city under a price.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "max_price": {"type": "number"}}},
}
# How the SDK puts HOTEL_DECLARATION's ``parameters`` (an OpenAPI Schema) on the wire.
HOTEL_WIRE_SCHEMA = '{"properties":{"city":{"type":"STRING"},"max_price":{"type":"NUMBER"}},"type":"OBJECT"}'
WEATHER_RESULT = {"city": "Paris", "temp_c": 21, "sky": "clear"}
HISTORY = [
    {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
    {"role": "model", "parts": [{"function_call": {"id": "fc_1", "name": "get_weather", "args": {"city": "Paris"}}}]},
    {
        "role": "user",
        "parts": [{"function_response": {"id": "fc_1", "name": "get_weather", "response": WEATHER_RESULT}}],
    },
]


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def oracle_cost(model: str, input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    usage = genai_prices.Usage(input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=output_tokens)
    return float(genai_prices.calc_price(usage, model_ref=model, provider_id="google").total_price)


def test_plain_call_span_has_semconv_shape_and_exact_usage(gtelemetry, gemini, gclient):
    gemini.enqueue(
        Reply(
            text="Sunny.",
            input_tokens=120,
            output_tokens=7,
            cache_read_tokens=64,
            thoughts_tokens=3,
            tool_use_prompt_tokens=5,
            thought_text="The user wants the weather.",
        )
    )
    config = types.GenerateContentConfig(
        system_instruction=SYSTEM,
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        max_output_tokens=50,
        stop_sequences=["END"],
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=0.25,
    )
    result = gclient.models.generate_content(model=MODEL, contents="Weather in Paris?", config=config)
    assert result.text == "Sunny."
    span = gtelemetry.span()
    attrs = dict(span.attributes)
    assert span.name == f"generate_content {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    host, port = gemini.url.removeprefix("http://").split(":")
    assert attrs["gen_ai.operation.name"] == "generate_content"
    assert attrs["gen_ai.provider.name"] == "gcp.gemini"
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["server.address"] == host and attrs["server.port"] == int(port)
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.top_k"] == 40
    assert attrs["gen_ai.request.stop_sequences"] == ("END",)
    assert attrs["gen_ai.request.seed"] == 7
    assert attrs["gen_ai.request.presence_penalty"] == 0.5
    assert attrs["gen_ai.request.frequency_penalty"] == 0.25
    assert "gen_ai.request.choice.count" not in attrs
    assert "gen_ai.request.stream" not in attrs
    assert attrs.get("gen_ai.response.id") == result.response_id == RESPONSE_ID
    assert attrs["gen_ai.response.model"] == MODEL
    assert attrs["gen_ai.response.finish_reasons"] == ("STOP",)
    # input = prompt (cached included) + tool-use prompt; output = candidates + thoughts.
    assert attrs["gen_ai.usage.input_tokens"] == 125
    assert attrs["gen_ai.usage.output_tokens"] == 10
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 64
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 3
    # No offline Gemini tokenizer: the breakdown is estimated, and says so.
    assert attrs["tokenkpi.context.system_tokens"] == estimate(SYSTEM)
    assert attrs["tokenkpi.context.tool_results_tokens"] == 0
    assert attrs["tokenkpi.tools.defined_count"] == 0
    assert attrs["tokenkpi.tool_calls.count"] == 0
    assert attrs["tokenkpi.tokens.estimated"] is True
    assert attrs["tokenkpi.context.window"] == 1048576
    assert attrs["tokenkpi.context.utilization"] == pytest.approx(125 / 1048576)
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(oracle_cost(MODEL, 125, 10, 64), rel=1e-9)


def test_history_tools_and_tool_results_are_counted(gtelemetry, gemini, gclient):
    # Billed as Gemini bills a request: the content plus its rendering of the declarations and turns.
    gemini.enqueue(Reply(text="It is clear and 21C.", input_tokens=200, output_tokens=9))
    config = {
        "system_instruction": {"parts": [{"text": SYSTEM}]},
        "tools": [{"function_declarations": [WEATHER_DECLARATION, HOTEL_DECLARATION]}],
    }
    gclient.models.generate_content(model=MODEL, contents=HISTORY, config=config)
    attrs = gtelemetry.span().attributes
    assert attrs["tokenkpi.tools.defined_count"] == 2
    weather = estimate("get_weather", WEATHER_DECLARATION["description"], WEATHER_WIRE_SCHEMA)
    hotel = estimate("find_hotel", HOTEL_DECLARATION["description"], HOTEL_WIRE_SCHEMA)
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == weather + hotel
    assert attrs["tokenkpi.context.tool_results_tokens"] == estimate(compact(WEATHER_RESULT))
    assert attrs["tokenkpi.context.system_tokens"] == estimate(SYSTEM)
    assert attrs["gen_ai.usage.input_tokens"] == 200
    # Re-sent: everything up to the model's function call; new: the function's result.
    call = estimate("get_weather", compact({"city": "Paris"}))
    resent = weather + hotel + estimate(SYSTEM, "Weather in Paris?") + call
    assert attrs["tokenkpi.context.resent_tokens"] == resent
    assert attrs["tokenkpi.context.new_tokens"] == estimate(compact(WEATHER_RESULT))
    assert attrs["tokenkpi.context.unattributed_tokens"] == 200 - resent - estimate(compact(WEATHER_RESULT))


def test_builtin_tools_count_as_defined(gtelemetry, gemini, gclient):
    config = types.GenerateContentConfig(
        tools=[types.Tool(google_search=types.GoogleSearch()), {"function_declarations": [WEATHER_DECLARATION]}]
    )
    gemini.enqueue(Reply(input_tokens=100))  # the content plus the grounding tool's hidden prompt
    gclient.models.generate_content(model=MODEL, contents="Search the weather.", config=config)
    attrs = gtelemetry.span().attributes
    assert attrs["tokenkpi.tools.defined_count"] == 2
    weather = estimate("get_weather", WEATHER_DECLARATION["description"], WEATHER_WIRE_SCHEMA)
    definitions = weather + estimate("google_search")
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == definitions
    local = definitions + estimate("Search the weather.")
    assert (attrs["tokenkpi.context.new_tokens"], attrs["tokenkpi.context.unattributed_tokens"]) == (local, 100 - local)


def test_three_function_calls_in_one_candidate_are_fan_out(gtelemetry, gemini, gclient):
    calls = [ToolCall("get_weather", compact({"city": c})) for c in ("Paris", "Rome", "Oslo")]
    gemini.enqueue(Reply(text=None, tool_calls=calls, input_tokens=40, output_tokens=30))
    config = {"tools": [{"function_declarations": [WEATHER_DECLARATION]}]}
    result = gclient.models.generate_content(model=MODEL, contents="Weather in three cities?", config=config)
    assert [c.args["city"] for c in result.function_calls] == ["Paris", "Rome", "Oslo"]
    attrs = gtelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["gen_ai.response.finish_reasons"] == ("STOP",)
    assert attrs["gen_ai.usage.output_tokens"] == 30


@pytest.mark.parametrize("reason", ["MAX_TOKENS", "SAFETY", "RECITATION"])
def test_finish_reasons_as_the_api_spells_them(gtelemetry, gemini, gclient, reason):
    gemini.enqueue(Reply(text="cut", finish_reason=reason))
    gclient.models.generate_content(model=MODEL, contents="Tell me everything.")
    assert gtelemetry.span().attributes["gen_ai.response.finish_reasons"] == (reason,)


def test_several_candidates(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(text="One of two."))
    result = gclient.models.generate_content(model=MODEL, contents="Hi", config={"candidate_count": 2})
    assert len(result.candidates) == 2
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.request.choice.count"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ("STOP", "STOP")


def test_json_output_type(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(text='{"a": 1}'))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    config = {
        "response_mime_type": "application/json",
        "response_json_schema" if HAS_JSON_SCHEMA else "response_schema": schema,
    }
    gclient.models.generate_content(model=MODEL, contents="JSON please", config=config)
    assert gtelemetry.span().attributes["gen_ai.output.type"] == "json"


def test_result_and_request_identical_with_and_without_instrumentation(gtelemetry, gemini, gclient):
    reply = Reply(text="Same.", tool_calls=[ToolCall("get_weather", '{"city":"Paris"}', id="fc_9")])
    config = {"system_instruction": SYSTEM, "tools": [{"function_declarations": [WEATHER_DECLARATION]}]}
    gemini.enqueue(reply)
    with_us = gclient.models.generate_content(model=MODEL, contents=HISTORY, config=config)
    sent_with_us = gemini.requests[-1].body
    GoogleGenAIInstrumentor().uninstrument()
    gemini.reset()
    gemini.enqueue(reply)
    without = gclient.models.generate_content(model=MODEL, contents=HISTORY, config=config)
    assert type(with_us) is type(without) is types.GenerateContentResponse
    dump = {"exclude": {"sdk_http_response"}}
    assert with_us.model_dump(**dump) == without.model_dump(**dump)
    assert sent_with_us == gemini.requests[-1].body
    assert len(gtelemetry.spans()) == 1  # the uninstrumented call made none


@pytest.mark.parametrize(("status", "error"), [(400, errors.ClientError), (500, errors.ServerError)])
def test_http_errors_pass_through_and_mark_the_span(gtelemetry, gemini, gclient, status, error):
    gemini.enqueue(Reply(status=status, error_message=f"boom {status}"))
    with pytest.raises(error) as with_us:
        gclient.models.generate_content(model=MODEL, contents="Hi")
    GoogleGenAIInstrumentor().uninstrument()
    gemini.enqueue(Reply(status=status, error_message=f"boom {status}"))
    with pytest.raises(error) as without:
        gclient.models.generate_content(model=MODEL, contents="Hi")
    assert type(with_us.value) is type(without.value)
    assert str(with_us.value) == str(without.value)
    assert with_us.value.code == status
    assert len(gemini.requests) == 2  # no retries: one request per call
    span = gtelemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == error.__name__
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_bad_json_raises_the_sdks_own_error(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(bad_json=True))
    with pytest.raises(Exception) as with_us:
        gclient.models.generate_content(model=MODEL, contents="Hi")
    assert gtelemetry.span().attributes["error.type"] == type(with_us.value).__qualname__


async def test_async_generate_content(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(text="Async.", input_tokens=24, output_tokens=3, cache_read_tokens=4))
    result = await gclient.aio.models.generate_content(
        model=MODEL, contents="Hi", config={"system_instruction": SYSTEM}
    )
    assert result.text == "Async."
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 24
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 4
    assert attrs["tokenkpi.context.system_tokens"] == estimate(SYSTEM)
    assert attrs["tokenkpi.context.unattributed_tokens"] == 24 - estimate(SYSTEM, "Hi")
    assert "gen_ai.request.stream" not in attrs


async def test_async_error_passes_through(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(status=400, error_message="nope"))
    with pytest.raises(errors.ClientError, match="nope"):
        await gclient.aio.models.generate_content(model=MODEL, contents="Hi")
    assert gtelemetry.span().attributes["error.type"] == "ClientError"


def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return dict(WEATHER_RESULT, city=city)


def test_automatic_function_calling_is_one_span_per_request(gtelemetry, gemini, gclient):
    """AFC: the SDK runs the function and sends its result back in a second request. Each request is
    billed and reported on its own span; the user gets the last response."""
    gemini.enqueue(
        Reply(text=None, tool_calls=[ToolCall("get_weather", '{"city":"Paris"}')], input_tokens=60, output_tokens=6),
        Reply(text="Clear, 21C.", input_tokens=110, output_tokens=8),
    )
    result = gclient.models.generate_content(model=MODEL, contents="Weather in Paris?", config={"tools": [get_weather]})
    assert result.text == "Clear, 21C."
    assert len(gemini.requests) == 2
    first, second = gtelemetry.spans()
    assert first.attributes["tokenkpi.tool_calls.count"] == 1
    assert second.attributes["tokenkpi.tool_calls.count"] == 0
    assert (first.attributes["gen_ai.usage.input_tokens"], second.attributes["gen_ai.usage.input_tokens"]) == (60, 110)
    assert (first.attributes["gen_ai.usage.output_tokens"], second.attributes["gen_ai.usage.output_tokens"]) == (6, 8)
    # The second request carries the function's result (as the SDK sent it) and the same tool.
    sent = gemini.requests[1].body["contents"][-1]["parts"][0]["functionResponse"]["response"]
    assert second.attributes["tokenkpi.context.tool_results_tokens"] == estimate(compact(sent))
    for span, billed in ((first, 60), (second, 110)):
        assert span.attributes["tokenkpi.tools.defined_count"] == 1
        assert span.attributes["tokenkpi.context.tool_definitions_tokens"] > estimate("get_weather")
        parts = ("resent", "new", "unattributed")
        assert sum(span.attributes[f"tokenkpi.context.{part}_tokens"] for part in parts) == billed
    assert second.attributes["tokenkpi.context.new_tokens"] == estimate(compact(sent))


def test_chat_send_message_gets_a_span_per_turn(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(text="Hello!", input_tokens=20), Reply(text="Still here.", input_tokens=32))
    chat = gclient.chats.create(model=MODEL, config={"system_instruction": SYSTEM})
    chat.send_message("Hi")
    chat.send_message("Are you there?")
    spans = gtelemetry.spans()
    assert len(spans) == 2
    assert all(s.attributes["tokenkpi.context.system_tokens"] == estimate(SYSTEM) for s in spans)
    resent, new = estimate(SYSTEM, "Hi", "Hello!"), estimate("Are you there?")
    second = spans[1].attributes
    assert (second["tokenkpi.context.resent_tokens"], second["tokenkpi.context.new_tokens"]) == (resent, new)
    assert second["tokenkpi.context.unattributed_tokens"] == 32 - resent - new
    # The second turn re-sends the first one: history read from the SDK's Content objects.
    assert len(gemini.requests[1].body["contents"]) == 3


def test_vertex_ai_mode_is_named_gcp_vertex_ai(gtelemetry, gemini):
    client = make_client(gemini, vertexai=True)
    gemini.enqueue(Reply(text="From Vertex.", input_tokens=9, output_tokens=2))
    client.models.generate_content(model=MODEL, contents="Hi")
    assert "/publishers/google/models/" in gemini.requests[-1].path
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert attrs["gen_ai.usage.input_tokens"] == 9


def test_metrics_record_exact_tokens_and_duration(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(text="ok", input_tokens=21, output_tokens=4, thoughts_tokens=2))
    gclient.models.generate_content(model=MODEL, contents="Hi")
    tokens = {p.attributes["gen_ai.token.type"]: p for p in gtelemetry.metric_points("gen_ai.client.token.usage")}
    assert tokens["input"].sum == 21 and tokens["output"].sum == 6
    assert tokens["input"].attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert tokens["input"].attributes["gen_ai.operation.name"] == "generate_content"
    (duration,) = gtelemetry.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert duration.attributes["gen_ai.response.model"] == MODEL


def test_uninstrument_restores_the_sdk(gtelemetry, gemini, gclient):
    from google.genai import models

    GoogleGenAIInstrumentor().uninstrument()
    assert not hasattr(models.Models._generate_content, "__wrapped__")
    assert not hasattr(models.AsyncModels._generate_content_stream, "__wrapped__")
    gclient.models.generate_content(model=MODEL, contents="Hi")
    assert gtelemetry.spans() == []


def test_embed_content(gtelemetry, gemini, gclient):
    result = gclient.models.embed_content(model="gemini-embedding-001", contents=["one", "two", "three"])
    assert len(result.embeddings) == 3
    span = gtelemetry.span()
    attrs = span.attributes
    assert span.name == "embeddings gemini-embedding-001"
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.provider.name"] == "gcp.gemini"
    # google-genai < 3.1 drops the Gemini API's embedding usage (no EmbedContentResponse.usage_metadata).
    assert attrs.get("gen_ai.usage.input_tokens") == (3 * EMBEDDING_TOKENS_PER_INPUT if HAS_EMBED_USAGE else None)
    assert "tokenkpi.context.system_tokens" not in attrs


async def test_async_embed_content(gtelemetry, gemini, gclient):
    result = await gclient.aio.models.embed_content(model="gemini-embedding-001", contents="one")
    assert len(result.embeddings) == 1
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs.get("gen_ai.usage.input_tokens") == (EMBEDDING_TOKENS_PER_INPUT if HAS_EMBED_USAGE else None)


def test_vertex_embedding_statistics_are_the_usage():
    """Vertex AI reports embedding tokens per input (``statistics.token_count``), not as usage metadata."""
    from otel_tokenkpi.instrumentors.google_genai import EMBEDDINGS

    response = types.EmbedContentResponse(
        embeddings=[
            types.ContentEmbedding(values=[0.1], statistics=types.ContentEmbeddingStatistics(token_count=4)),
            types.ContentEmbedding(values=[0.2], statistics=types.ContentEmbeddingStatistics(token_count=6)),
        ]
    )
    assert EMBEDDINGS.read_response(response).usage.input_tokens == 10
    assert EMBEDDINGS.read_response(types.EmbedContentResponse(embeddings=[])).usage is None
