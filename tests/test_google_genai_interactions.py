# ruff: noqa: F811 - pytest fixtures imported from _gemini_support are parameters here
"""The Gemini Interactions API (``client.interactions.create``, google-genai 3.x): one span per request, sync
and ``client.aio``, plain and streamed, with the usage the API reports (input, output, thoughts, cache),
the response id and status, tool calls, and the request's context read from ``input`` (a string or a list
of steps), ``system_instruction``, ``tools`` and ``generation_config``. Automatic continuation sends one
request per hop: one span each, with that hop's usage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _gemini_support import (  # noqa: F401 - fixtures
    MODEL,
    gemini,
    gemini_server,
    gtelemetry,
    instrumented,
)
from google import genai
from google.genai import types

from otel_tokenkpi.testing.fake_gemini import Reply, ToolCall

pytest.importorskip("google.genai._gaos.interactions", reason="the Interactions client of google-genai 3.x")

SYSTEM = "You are WeatherBot. Answer briefly."
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
RESULT = '{"city": "Paris", "temp_c": 21}'
HISTORY = [
    {"type": "user_input", "content": [{"type": "text", "text": "Weather in Paris?"}]},
    {"type": "function_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
    {"type": "function_result", "call_id": "call_1", "name": "get_weather", "result": RESULT},
]
ONE_ATTEMPT = types.HttpRetryOptions(attempts=1)


def client(fake: Any) -> genai.Client:
    """A client to keep in a variable: a dropped ``genai.Client`` closes the HTTP client its resources use."""
    return genai.Client(api_key="test", http_options=types.HttpOptions(base_url=fake.url, retry_options=ONE_ATTEMPT))


def test_a_plain_interaction_is_one_span_with_its_usage(gtelemetry, gemini):
    gemini.enqueue(Reply(text="Sunny.", input_tokens=40, output_tokens=6, cache_read_tokens=16, thoughts_tokens=12))
    gc = client(gemini)
    answer = gc.interactions.create(
        model=MODEL,
        input="Weather in Paris?",
        system_instruction=SYSTEM,
        generation_config={"temperature": 0.2, "max_output_tokens": 256, "stop_sequences": ["END"]},
    )
    assert answer.output_text == "Sunny."
    attrs = gtelemetry.span().attributes
    assert gtelemetry.span().name == f"chat {MODEL}"
    assert attrs["gen_ai.provider.name"] == "gcp.gemini"
    assert (attrs["gen_ai.request.temperature"], attrs["gen_ai.request.max_tokens"]) == (0.2, 256)
    assert attrs["gen_ai.request.stop_sequences"] == ("END",)
    assert attrs["gen_ai.response.id"] == "v1_interaction-1"
    assert attrs["gen_ai.response.finish_reasons"] == ("completed",)
    assert attrs["gen_ai.usage.input_tokens"] == 40  # the cached part is inside it
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 16
    assert attrs["gen_ai.usage.output_tokens"] == 18  # the answer and the thoughts
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 12
    assert attrs["tokenkpi.context.system_tokens"] > 0
    assert attrs["tokenkpi.cost.usd"] > 0


def test_a_streamed_interaction_with_a_function_call(gtelemetry, gemini):
    gemini.enqueue(
        Reply(text="Let me look.", tool_calls=[ToolCall("get_weather", '{"city": "Rome"}')], thoughts_tokens=3)
    )
    gc = client(gemini)
    events = list(gc.interactions.create(model=MODEL, input="Rome?", tools=[WEATHER], stream=True))
    assert events[-1].event_type == "interaction.completed"
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == "v1_interaction-1"
    assert attrs["gen_ai.response.finish_reasons"] == ("requires_action",)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (10, 8)
    assert attrs["tokenkpi.tools.defined_count"] == 1
    assert attrs["tokenkpi.tool_calls.count"] == 1
    assert attrs["tokenkpi.context.tool_definitions_tokens"] > 0


def test_a_history_of_steps_is_read_as_context(gtelemetry, gemini):
    """The steps up to the last model step were seen by the model: re-sent; the function result is new
    context, counted as a tool result; the repeated call in the answer is a duplicate of the history's."""
    gemini.enqueue(Reply(text=None, tool_calls=[ToolCall("get_weather", '{"city": "Paris"}')]))
    gc = client(gemini)
    gc.interactions.create(model=MODEL, input=HISTORY, tools=[WEATHER])
    attrs = gtelemetry.span().attributes
    assert attrs["tokenkpi.context.tool_results_tokens"] > 0
    assert attrs["tokenkpi.context.resent_tokens"] > 0
    assert attrs["tokenkpi.tool_calls.duplicate_count"] == 1
    sent = gemini.requests[-1].body
    assert sent is not None and sent["input"][1]["name"] == "get_weather"  # the SDK sent the steps as given


async def test_async_interactions(gtelemetry, gemini):
    gemini.enqueue(Reply(text="Plain.", input_tokens=21), Reply(text="Streamed async.", output_tokens=4))
    gc = client(gemini)
    aio = gc.aio
    answer = await aio.interactions.create(model=MODEL, input="One?")
    stream = await aio.interactions.create(model=MODEL, input="Two?", stream=True)
    texts = [e.delta.text async for e in stream if e.event_type == "step.delta" and e.delta.type == "text"]
    assert answer.output_text == "Plain." and "".join(texts) == "Streamed async."
    plain, streamed = gtelemetry.spans()
    assert plain.attributes["gen_ai.usage.input_tokens"] == 21
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 4
    assert streamed.attributes["gen_ai.response.finish_reasons"] == ("completed",)


def test_each_continuation_hop_is_its_own_span(gtelemetry, gemini):
    """The SDK resumes a ``requires_continuation`` answer with a new request (billed again): two spans, each
    with its own hop's usage, while the user gets one merged interaction."""
    gemini.enqueue(
        Reply(text="Part one, ", interaction_status="requires_continuation", input_tokens=30, output_tokens=50),
        Reply(text="part two.", input_tokens=80, output_tokens=20),
    )
    gc = client(gemini)
    answer = gc.interactions.create(model=MODEL, input="Write a long story.")
    assert answer.usage.total_output_tokens == 70  # the SDK sums the hops for the user
    first, second = gtelemetry.spans()
    assert first.attributes["gen_ai.response.finish_reasons"] == ("requires_continuation",)
    assert (first.attributes["gen_ai.usage.input_tokens"], first.attributes["gen_ai.usage.output_tokens"]) == (30, 50)
    assert (second.attributes["gen_ai.usage.input_tokens"], second.attributes["gen_ai.usage.output_tokens"]) == (80, 20)
    resumed = gemini.requests[1].body
    assert resumed is not None and resumed["continuation_token"] == "continue-1"


def test_a_streamed_continuation_gives_each_hop_its_own_events(gtelemetry, gemini):
    gemini.enqueue(
        Reply(text="one two", interaction_status="requires_continuation", output_tokens=2),
        Reply(text="three", output_tokens=1),
    )
    gc = client(gemini)
    stream = gc.interactions.create(model=MODEL, input="Count.", stream=True)
    texts = [e.delta.text for e in stream if e.event_type == "step.delta" and e.delta.type == "text"]
    assert "".join(texts) == "one twothree"
    first, second = gtelemetry.spans()
    assert first.attributes["gen_ai.usage.output_tokens"] == 2
    assert second.attributes["gen_ai.usage.output_tokens"] == 1
    assert second.attributes["gen_ai.response.id"] == "v1_interaction-2"


def test_a_stream_left_early_ends_as_incomplete(gtelemetry, gemini):
    gemini.enqueue(Reply(text="a b c d e f"))
    gc = client(gemini)
    stream = gc.interactions.create(model=MODEL, input="Letters.", stream=True)
    first = next(iter(stream))
    stream.close()
    assert first.event_type == "interaction.created"
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.response.id"] == "v1_interaction-1"
    assert "gen_ai.usage.output_tokens" not in attrs and "gen_ai.response.finish_reasons" not in attrs


def test_an_error_is_the_span_error(gtelemetry, gemini):
    gemini.enqueue(Reply(status=429, error_message="quota"))
    with pytest.raises(Exception) as caught:
        gc = client(gemini)
        gc.interactions.create(model=MODEL, input="Hi")
    attrs = gtelemetry.span().attributes
    assert attrs["error.type"] == type(caught.value).__qualname__
    assert gtelemetry.span().status.status_code.name == "ERROR"


def test_a_create_bound_before_instrument_is_traced(loaded_data, gemini):
    early = client(gemini)
    create = early.interactions.create
    with instrumented() as telemetry:
        create(model=MODEL, input="Hi", system_instruction=SYSTEM)
    (span,) = telemetry.spans()
    assert span.attributes["gen_ai.usage.input_tokens"] == 10
    assert json.loads(json.dumps(dict(span.attributes)))["gen_ai.request.model"] == MODEL


def test_raw_and_streaming_responses(gtelemetry, gemini):
    """``with_streaming_response`` bodies are read as the user reads them (JSON or events);
    ``with_raw_response`` is a span with the request only (its body was read before we see it)."""
    gemini.enqueue(Reply(text="one", input_tokens=11), Reply(text="two", input_tokens=12), Reply(input_tokens=13))
    gc = client(gemini)
    with gc.interactions.with_streaming_response.create(model=MODEL, input="Hi") as raw:
        assert raw.parse().output_text == "one"
    with gc.interactions.with_streaming_response.create(model=MODEL, input="Hi", stream=True) as raw:
        lines = list(raw.iter_lines())
    assert "event: interaction.completed" in lines
    assert gc.interactions.with_raw_response.create(model=MODEL, input="Hi").parse().output_text == "ok"
    plain, streamed, raw_only = gtelemetry.spans()
    assert plain.attributes["gen_ai.usage.input_tokens"] == 11
    assert streamed.attributes["gen_ai.usage.input_tokens"] == 12
    assert streamed.attributes["gen_ai.response.finish_reasons"] == ("completed",)
    assert (
        raw_only.attributes["gen_ai.request.model"] == MODEL and "gen_ai.usage.input_tokens" not in raw_only.attributes
    )
