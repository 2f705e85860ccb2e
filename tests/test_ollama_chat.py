"""Ollama chat, generate and embed, not streamed: the real ``ollama`` SDK against the fake server, sync and
async, client methods and the module-level functions. Usage numbers come from the fake, so they are exact;
local counts are estimates (no offline tokenizer for Ollama models) and say so."""

from __future__ import annotations

import json

import ollama
import pydantic
import pytest
from _ollama_support import CAPTURE_ENV, MODEL, OLLAMA_VERSION, USER, WEATHER_TOOL, at, estimate, instrumented

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.instrumentors import _ollama_request as shapes
from otel_tokenkpi.instrumentors.ollama import OllamaInstrumentor
from otel_tokenkpi.testing.fake_ollama import Reply, ToolCall

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_ollama_support"]

CITIES = ("Paris", "Rome", "Oslo")


def test_chat_positional_model_and_messages(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(text="Rayleigh scattering.", input_tokens=26, output_tokens=7))
    response = oclient.chat(MODEL, USER)
    assert at(response, "message", "content") == "Rayleigh scattering."
    span = otelemetry.span()
    attrs = span.attributes
    assert span.name == "chat llama3.2"
    assert attrs[sc.OPERATION_NAME] == "chat"
    assert attrs[sc.PROVIDER_NAME] == "ollama"
    assert attrs[sc.REQUEST_MODEL] == MODEL
    assert attrs[sc.RESPONSE_MODEL] == MODEL
    assert attrs[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[sc.SERVER_PORT] == int(ofake.url.rsplit(":", 1)[1])
    assert attrs[sc.USAGE_INPUT_TOKENS] == 26
    assert attrs[sc.USAGE_OUTPUT_TOKENS] == 7
    assert attrs[sc.RESPONSE_FINISH_REASONS] == ("stop",)
    assert sc.RESPONSE_ID not in attrs  # Ollama has none
    assert sc.REQUEST_STREAM not in attrs
    assert attrs[sc.TOKENS_ESTIMATED] is True
    assert attrs[sc.CONTEXT_NEW_TOKENS] == estimate(USER[0]["content"])
    assert attrs[sc.CONTEXT_RESENT_TOKENS] == 0
    assert attrs[sc.TOOL_CALLS_COUNT] == 0
    assert attrs[sc.TOOLS_DEFINED_COUNT] == 0
    assert ofake.requests[-1].body["messages"] == USER


def test_module_level_functions_are_instrumented_and_restored_exactly(loaded_data, ofake, monkeypatch):
    monkeypatch.setattr(ollama._client._client, "base_url", ofake.url)  # the default client, at the fake
    before = {name: getattr(ollama, name) for name in ("chat", "generate", "embed", "embeddings", "pull")}
    with instrumented() as telemetry:
        assert ollama.chat is not before["chat"]
        assert ollama.pull is before["pull"]  # not a model call: untouched
        ollama.chat(MODEL, USER)
        ollama.generate(MODEL, "Why?")
        ollama.embed(MODEL, "sky")
    assert [s.attributes[sc.OPERATION_NAME] for s in telemetry.spans()] == ["chat", "text_completion", "embeddings"]
    assert {name: getattr(ollama, name) for name in before} == before
    assert all(getattr(ollama, name) is before[name] for name in before)
    ollama.chat(MODEL, USER)
    assert len(telemetry.spans()) == 3  # uninstrumented: no new span


def test_module_function_replaced_by_the_user_is_left_alone(loaded_data, ofake, monkeypatch):
    def mine(*args, **kwargs):
        return "mine"

    monkeypatch.setattr(ollama, "chat", mine)
    with instrumented():
        assert ollama.chat is mine
    assert ollama.chat is mine


def test_parallel_tool_calls_fan_out(otelemetry, ofake, oclient):
    calls = [ToolCall("get_weather", json.dumps({"city": c, "unit": "C"})) for c in CITIES]
    # prompt_eval_count as Ollama reports it: the content rendered through the model's tool template.
    ofake.enqueue(Reply(text="", tool_calls=calls, input_tokens=180, output_tokens=60))
    response = oclient.chat(MODEL, USER, tools=[WEATHER_TOOL])
    calls = at(response, "message", "tool_calls")
    assert [at(c, "function", "arguments")["city"] for c in calls] == list(CITIES)
    attrs = otelemetry.span().attributes
    assert attrs[sc.TOOL_CALLS_COUNT] == 3
    assert attrs[sc.TOOL_CALLS_DUPLICATE_COUNT] == 0
    assert attrs[sc.TOOLS_DEFINED_COUNT] == 1
    schema = json.dumps(WEATHER_TOOL["function"]["parameters"], separators=(",", ":"))
    definitions = estimate("get_weather", "Weather.", schema)
    assert attrs[sc.CONTEXT_TOOL_DEFINITIONS_TOKENS] == definitions
    assert attrs[sc.RESPONSE_FINISH_REASONS] == ("stop",)
    local = definitions + estimate(USER[0]["content"])  # a first call: all new
    assert (attrs[sc.CONTEXT_NEW_TOKENS], attrs[sc.CONTEXT_UNATTRIBUTED_TOKENS]) == (local, 180 - local)


def test_history_with_tool_results_is_split_and_ids_pair_calls_with_results(otelemetry, ofake, oclient):
    first = ollama.Message(  # a pydantic model from ollama 0.4 (its tool calls too), a TypedDict (dict) in 0.3
        role="assistant",
        content="",
        tool_calls=[{"function": {"name": "get_weather", "arguments": {"city": c}}} for c in ("Paris", "Rome")],
    )
    history = [
        {"role": "system", "content": "Be brief."},
        *USER,
        first,
        {"role": "tool", "tool_name": "get_weather", "content": "Paris: 21"},
        {"role": "tool", "content": "Rome: 25"},  # no tool_name: answers the next call
    ]
    ofake.enqueue(Reply(text="Rome is warmer.", input_tokens=90))
    oclient.chat(MODEL, history)
    attrs = otelemetry.span().attributes
    assert attrs[sc.CONTEXT_SYSTEM_TOKENS] == estimate("Be brief.")
    assert attrs[sc.CONTEXT_TOOL_RESULTS_TOKENS] == estimate("Paris: 21", "Rome: 25")
    calls = estimate("get_weather", '{"city":"Paris"}', "get_weather", '{"city":"Rome"}')
    resent = estimate("Be brief.", USER[0]["content"]) + calls
    assert attrs[sc.CONTEXT_RESENT_TOKENS] == resent
    assert attrs[sc.CONTEXT_NEW_TOKENS] == estimate("Paris: 21", "Rome: 25")
    assert attrs[sc.CONTEXT_UNATTRIBUTED_TOKENS] == 90 - resent - estimate("Paris: 21", "Rome: 25")
    # Ollama runs locally and bills nothing per token: its cache rule is "none" (docs/cache-eligibility.md),
    # so re-sent context is never waste there.
    assert attrs[sc.WASTE_UNCACHED_RESENT_TOKENS] == 0
    items = shapes.read_messages(history)
    assert [c.id for c in items[2].tool_calls] == ["ollama_2_0", "ollama_2_1"]
    assert [i.tool_call_id for i in items[3:]] == ["ollama_2_0", "ollama_2_1"]


def test_tool_name_picks_the_call_it_answers():
    assistant = {
        "role": "assistant",
        "tool_calls": [
            {"function": {"name": "a", "arguments": {}}},
            {"function": {"name": "b", "arguments": {}}},
        ],
    }
    items = shapes.read_messages(
        [assistant, {"role": "tool", "tool_name": "b", "content": "B"}, {"role": "tool", "content": "A"}]
    )
    assert [i.tool_call_id for i in items[1:]] == ["ollama_0_1", "ollama_0_0"]
    stray = shapes.read_messages([{"role": "tool", "tool_name": "x", "content": "?"}])
    assert stray[0].tool_call_id == ""


def test_options_set_params_and_the_context_window(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(input_tokens=2048, output_tokens=9))
    options = {"num_ctx": 8192, "temperature": 0.2, "top_p": 0.9, "top_k": 40, "num_predict": 64, "seed": 7}
    oclient.chat(MODEL, USER, options={**options, "stop": ["\n\n"]}, format="json")
    attrs = otelemetry.span().attributes
    assert attrs[sc.CONTEXT_WINDOW] == 8192
    assert attrs[sc.CONTEXT_UTILIZATION] == 2048 / 8192
    assert attrs[sc.REQUEST_TEMPERATURE] == 0.2
    assert attrs[sc.REQUEST_TOP_P] == 0.9
    assert attrs[sc.REQUEST_TOP_K] == 40
    assert attrs[sc.REQUEST_MAX_TOKENS] == 64
    assert attrs[sc.REQUEST_SEED] == 7
    assert attrs[sc.REQUEST_STOP_SEQUENCES] == ("\n\n",)
    assert attrs[sc.OUTPUT_TYPE] == "json"
    assert ofake.requests[-1].body["options"]["num_ctx"] == 8192


def test_options_object_sets_the_context_window(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(input_tokens=1000))
    oclient.chat(MODEL, USER, options=ollama.Options(num_ctx=4000))
    attrs = otelemetry.span().attributes
    assert attrs[sc.CONTEXT_WINDOW] == 4000
    assert attrs[sc.CONTEXT_UTILIZATION] == 0.25


def test_prompt_served_from_the_kv_cache_has_no_input_count(otelemetry, ofake, oclient):
    """Older servers leave prompt_eval_count out when the prompt was cached: absent, never 0."""
    ofake.enqueue(Reply(input_tokens=None, output_tokens=12))
    assert at(oclient.chat(MODEL, USER), "prompt_eval_count") is None
    attrs = otelemetry.span().attributes
    assert sc.USAGE_INPUT_TOKENS not in attrs
    assert attrs[sc.USAGE_OUTPUT_TOKENS] == 12
    assert sc.WASTE_UNCACHED_RESENT_TOKENS not in attrs or attrs[sc.WASTE_UNCACHED_RESENT_TOKENS] == 0


def test_length_is_truncation(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(text="It is", finish_reason="length", input_tokens=30, output_tokens=8))
    oclient.chat(MODEL, USER, options={"num_predict": 8})
    attrs = otelemetry.span().attributes
    assert attrs[sc.RESPONSE_FINISH_REASONS] == ("length",)
    assert attrs[sc.WASTE_TRUNCATED_OUTPUT_TOKENS] == 8
    assert attrs[sc.WASTE_TOKENS] == 8
    assert attrs[sc.WASTE_RATIO] == 8 / 38


def test_error_is_the_users_exception_and_the_span_has_error_type(loaded_data, ofake, oclient):
    ofake.enqueue(Reply(status=404, error_message="model 'nope' not found"))
    with pytest.raises(ollama.ResponseError) as plain:
        oclient.chat("nope", USER)
    with instrumented() as telemetry:
        ofake.enqueue(Reply(status=404, error_message="model 'nope' not found"))
        with pytest.raises(ollama.ResponseError) as ours:
            oclient.chat("nope", USER)
    assert (type(ours.value), ours.value.error, ours.value.status_code) == (
        type(plain.value),
        plain.value.error,
        plain.value.status_code,
    )
    attrs = telemetry.span().attributes
    assert attrs[sc.ERROR_TYPE] == "ResponseError"
    assert attrs[sc.WASTE_FAILED_CALL_TOKENS] == 0
    assert sc.USAGE_INPUT_TOKENS not in attrs


def test_request_error_before_sending_is_unchanged(otelemetry, ofake, oclient):
    # The SDK refuses an empty model itself: ollama 0.3 with its RequestError, 0.4+ by pydantic validation.
    expected = ollama.RequestError if OLLAMA_VERSION < (0, 4) else pydantic.ValidationError
    with pytest.raises(expected):
        oclient.chat("", USER)
    assert ofake.requests == []
    assert otelemetry.span().attributes[sc.ERROR_TYPE] == expected.__name__


@pytest.mark.skipif(OLLAMA_VERSION < (0, 4), reason="ollama < 0.4 has no Python-function tools nor ollama.Tool")
def test_callable_and_model_tools_are_defined(otelemetry, ofake, oclient):
    def add_two_numbers(a: int, b: int) -> int:
        """Add two numbers.

        Args:
          a: The first number.
          b: The second number.
        """
        return a + b

    tool = ollama.Tool.model_validate(WEATHER_TOOL)
    oclient.chat(MODEL, USER, tools=[add_two_numbers, tool])
    assert otelemetry.span().attributes[sc.TOOLS_DEFINED_COUNT] == 2
    sent = ofake.requests[-1].body["tools"]
    definitions = [shapes.read_tool(t) for t in (add_two_numbers, tool)]
    assert [d.name for d in definitions] == [t["function"]["name"] for t in sent]
    assert [json.loads(d.parameters_json) for d in definitions] == [t["function"]["parameters"] for t in sent]


def test_generate_reads_system_prompt_and_context(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(text="Blue.", input_tokens=300, output_tokens=2), Reply(input_tokens=40))
    first = oclient.generate(MODEL, "Why is the sky blue?", system="Be brief.", options={"num_predict": 16})
    assert at(first, "response") == "Blue."
    oclient.generate(MODEL, "And at night?", context=at(first, "context"))
    plain, follow_up = otelemetry.spans()
    attrs = plain.attributes
    assert plain.name == "text_completion llama3.2"
    assert attrs[sc.OPERATION_NAME] == "text_completion"
    assert attrs[sc.USAGE_INPUT_TOKENS] == 300
    assert attrs[sc.USAGE_OUTPUT_TOKENS] == 2
    assert attrs[sc.REQUEST_MAX_TOKENS] == 16
    assert attrs[sc.CONTEXT_SYSTEM_TOKENS] == estimate("Be brief.")
    assert attrs[sc.CONTEXT_NEW_TOKENS] == estimate("Be brief.", "Why is the sky blue?")
    # The returned context is history the model already saw: what the prompt does not carry is re-sent.
    carried = estimate("And at night?")
    assert follow_up.attributes[sc.CONTEXT_RESENT_TOKENS] == 40 - carried
    assert follow_up.attributes[sc.CONTEXT_NEW_TOKENS] == carried


def test_embed_positional_input(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(input_tokens=14))
    response = oclient.embed(MODEL, ["sky", "sea"])
    assert len(at(response, "embeddings")) == 2
    attrs = otelemetry.span().attributes
    assert attrs[sc.OPERATION_NAME] == "embeddings"
    assert attrs[sc.USAGE_INPUT_TOKENS] == 14
    assert sc.USAGE_OUTPUT_TOKENS not in attrs
    assert ofake.requests[-1].body["input"] == ["sky", "sea"]


async def test_async_chat_generate_and_embed(otelemetry, ofake, async_oclient):
    ofake.enqueue(Reply(text="Hi", input_tokens=11, output_tokens=2), Reply(input_tokens=12), Reply(input_tokens=5))
    assert at(await async_oclient.chat(MODEL, USER), "message", "content") == "Hi"
    await async_oclient.generate(MODEL, "Hello")
    await async_oclient.embed(MODEL, "sky")
    spans = otelemetry.spans()
    assert [s.attributes[sc.OPERATION_NAME] for s in spans] == ["chat", "text_completion", "embeddings"]
    assert [s.attributes[sc.USAGE_INPUT_TOKENS] for s in spans] == [11, 12, 5]
    assert spans[0].attributes[sc.USAGE_OUTPUT_TOKENS] == 2


def test_metrics_record_exact_token_usage(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(input_tokens=26, output_tokens=7))
    oclient.chat(MODEL, USER)
    points = otelemetry.metric_points(sc.METRIC_TOKEN_USAGE)
    by_type = {p.attributes[sc.TOKEN_TYPE]: p.sum for p in points}
    assert by_type == {"input": 26, "output": 7}
    assert all(p.attributes[sc.PROVIDER_NAME] == "ollama" for p in points)
    assert otelemetry.metric_points(sc.METRIC_OPERATION_DURATION)[0].count == 1


def test_content_capture_is_opt_in(loaded_data, ofake, oclient, monkeypatch):
    monkeypatch.delenv(CAPTURE_ENV, raising=False)
    history = [
        *USER,
        {"role": "assistant", "tool_calls": [{"function": {"name": "look", "arguments": {"q": "sky"}}}]},
        {"role": "tool", "tool_name": "look", "content": "blue"},
    ]
    with instrumented() as telemetry:
        oclient.chat(MODEL, history)
    assert sc.INPUT_MESSAGES not in telemetry.span().attributes
    monkeypatch.setenv(CAPTURE_ENV, "true")
    ofake.enqueue(Reply(text="Blue.", tool_calls=[ToolCall("look", '{"q": "sea"}')]))
    with instrumented() as telemetry:
        oclient.chat(MODEL, history)
    attrs = telemetry.span().attributes
    sent = json.loads(attrs[sc.INPUT_MESSAGES])
    assert sent[1]["parts"] == [{"type": "tool_call", "id": "ollama_1_0", "name": "look", "arguments": {"q": "sky"}}]
    assert sent[2]["parts"] == [{"type": "tool_call_response", "id": "ollama_1_0", "response": "blue"}]
    output = json.loads(attrs[sc.OUTPUT_MESSAGES])
    assert output[0]["parts"][0] == {"type": "text", "content": "Blue."}
    assert output[0]["parts"][1]["name"] == "look"


def test_instrumentor_is_registered_and_guards_missing_methods(monkeypatch, caplog):
    from importlib.metadata import entry_points

    found = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "tokenkpi_ollama"]
    assert found and found[0].load() is OllamaInstrumentor
    monkeypatch.delattr(ollama.AsyncClient, "embeddings")  # an older layout: warn once, instrument the rest
    instrumentor = OllamaInstrumentor()
    instrumentor.instrument()
    try:
        assert hasattr(ollama.Client.chat, "__wrapped__")
        assert not hasattr(ollama.AsyncClient, "embeddings")
    finally:
        instrumentor.uninstrument()
    assert not hasattr(ollama.Client.chat, "__wrapped__")
