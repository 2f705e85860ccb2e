"""Opt-in content capture: ``gen_ai.system_instructions`` / ``gen_ai.input.messages`` /
``gen_ai.output.messages`` in the semconv JSON shapes, and nothing of the prompt without the opt-in.

The Recorder reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` when the instrumentor is
instrumented, so the fixtures here set the environment first and instrument afterwards.

Shapes (semconv, docs/gen-ai/gen-ai-input-messages.json and the "LLM call examples"): a message is
``{role, parts}``; parts are ``{type:"text", content}``, ``{type:"tool_call", id, name, arguments}``
(arguments as a JSON value, not a string) and ``{type:"tool_call_response", id, response}``; an output
message also has ``finish_reason``, one message per choice. ``gen_ai.system_instructions`` (a list of
parts) is for instructions given separately from the chat history (Responses ``instructions``);
system messages that are part of the history stay in ``gen_ai.input.messages`` with role ``system``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from _telemetry import Telemetry

from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall

ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CONTENT_ATTRIBUTES = ("gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.output.messages")
MODEL = "gpt-4o"
CANARY = "canary-7f3a9c"

SYSTEM = f"You are WeatherBot. Internal note {CANARY}-system."
USER = f"What's the weather in Paris? {CANARY}-user"
ASSISTANT_TEXT = "Let me check that."
ARGS = f'{{"city": "Paris", "note": "{CANARY}-args"}}'
TOOL_RESULT = f'{{"temperature_c": 18, "sky": "rainy", "note": "{CANARY}-result"}}'
ANSWER = f"It is rainy and 18 degrees in Paris. {CANARY}-answer"

SYSTEM_MESSAGE = {"role": "system", "content": SYSTEM}
HISTORY = [
    {"role": "user", "content": USER},
    {
        "role": "assistant",
        "content": ASSISTANT_TEXT,
        "tool_calls": [
            {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": ARGS}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_w1", "content": TOOL_RESULT},
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

# What the history above must look like in gen_ai.input.messages.
EXPECTED_HISTORY = [
    {"role": "user", "parts": [{"type": "text", "content": USER}]},
    {
        "role": "assistant",
        "parts": [
            {"type": "text", "content": ASSISTANT_TEXT},
            {"type": "tool_call", "id": "call_w1", "name": "get_weather", "arguments": json.loads(ARGS)},
        ],
    },
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_w1", "response": TOOL_RESULT}]},
]
EXPECTED_ANSWER = [
    {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"},
]


@contextlib.contextmanager
def instrumented() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
    )
    try:
        yield telemetry
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def capturing(monkeypatch: pytest.MonkeyPatch, loaded_data: None) -> Iterator[Telemetry]:
    monkeypatch.setenv(ENV, "true")  # before instrument(): the Recorder reads it there
    with instrumented() as telemetry:
        yield telemetry


@pytest.fixture(params=["unset", "false", ""])
def not_capturing(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, loaded_data: None
) -> Iterator[Telemetry]:
    if request.param == "unset":
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, request.param)
    with instrumented() as telemetry:
        yield telemetry


def content(span: Any, name: str) -> Any:
    assert name in span.attributes, sorted(span.attributes)
    value = span.attributes[name]
    assert isinstance(value, str)
    return json.loads(value)


# --- capture on --------------------------------------------------------------------------------------


def test_chat_history_with_tool_call_and_result(
    fake: FakeOpenAIServer, capturing: Telemetry, openai_client: openai.OpenAI
) -> None:
    fake.enqueue(Reply(text=ANSWER))
    response = openai_client.chat.completions.create(model=MODEL, messages=HISTORY, tools=[WEATHER_TOOL])
    # Capturing content changes nothing the user gets back.
    OpenAIInstrumentor().uninstrument()
    fake.reset()
    fake.enqueue(Reply(text=ANSWER))
    plain = openai_client.chat.completions.create(model=MODEL, messages=HISTORY, tools=[WEATHER_TOOL])
    assert response.model_dump(exclude={"created"}) == plain.model_dump(exclude={"created"})

    span = capturing.span()
    assert content(span, "gen_ai.input.messages") == EXPECTED_HISTORY
    assert content(span, "gen_ai.output.messages") == EXPECTED_ANSWER
    assert "gen_ai.system_instructions" not in span.attributes  # no instructions were given
    # Counts are still recorded next to the content.
    assert span.attributes["tokenkpi.tools.defined_count"] == 1
    assert span.attributes["gen_ai.usage.input_tokens"] == 10


def test_chat_system_message_stays_in_input_messages(
    fake: FakeOpenAIServer, capturing: Telemetry, openai_client: openai.OpenAI
) -> None:
    fake.enqueue(Reply(text=ANSWER))
    openai_client.chat.completions.create(model=MODEL, messages=[SYSTEM_MESSAGE, *HISTORY])

    span = capturing.span()
    assert content(span, "gen_ai.output.messages") == EXPECTED_ANSWER
    assert content(span, "gen_ai.input.messages") == [
        {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
        *EXPECTED_HISTORY,
    ]
    assert "gen_ai.system_instructions" not in span.attributes


def test_chat_output_tool_calls(
    fake: FakeOpenAIServer,
    capturing: Telemetry,
    openai_client: openai.OpenAI,
) -> None:
    calls = [
        ToolCall("get_weather", '{"city": "Oslo"}', id="call_o"),
        ToolCall("get_weather", '{"city": "Rome", "days": [1, 2]}', id="call_r"),
    ]
    fake.enqueue(Reply(text=None, tool_calls=calls))
    openai_client.chat.completions.create(model=MODEL, messages=HISTORY[:1], tools=[WEATHER_TOOL])

    span = capturing.span()
    assert content(span, "gen_ai.input.messages") == EXPECTED_HISTORY[:1]
    assert content(span, "gen_ai.output.messages") == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_o", "name": "get_weather", "arguments": {"city": "Oslo"}},
                {
                    "type": "tool_call",
                    "id": "call_r",
                    "name": "get_weather",
                    "arguments": {"city": "Rome", "days": [1, 2]},
                },
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_chat_stream_output(
    fake: FakeOpenAIServer,
    capturing: Telemetry,
    openai_client: openai.OpenAI,
) -> None:
    fake.enqueue(Reply(text=ANSWER))
    stream = openai_client.chat.completions.create(model=MODEL, messages=HISTORY, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == ANSWER

    span = capturing.span()
    assert content(span, "gen_ai.input.messages") == EXPECTED_HISTORY
    assert content(span, "gen_ai.output.messages") == EXPECTED_ANSWER


def test_chat_multiple_choices(
    fake: FakeOpenAIServer,
    capturing: Telemetry,
    openai_client: openai.OpenAI,
) -> None:
    fake.enqueue(Reply(text="Two words."))
    response = openai_client.chat.completions.create(model=MODEL, messages=HISTORY[:1], n=2)
    assert [c.message.content for c in response.choices] == ["Two words.", "Two words."]

    span = capturing.span()
    one = {"role": "assistant", "parts": [{"type": "text", "content": "Two words."}], "finish_reason": "stop"}
    assert content(span, "gen_ai.output.messages") == [one, one]


def test_error_has_input_but_no_output(
    fake: FakeOpenAIServer, capturing: Telemetry, openai_client: openai.OpenAI
) -> None:
    fake.enqueue(Reply(status=429, error_message="slow down"))
    with pytest.raises(openai.RateLimitError):
        openai_client.chat.completions.create(model=MODEL, messages=HISTORY)

    span = capturing.span()
    assert span.attributes["error.type"] == "RateLimitError"
    assert content(span, "gen_ai.input.messages") == EXPECTED_HISTORY
    assert "gen_ai.output.messages" not in span.attributes


RESPONSES_INPUT = [
    {"role": "user", "content": [{"type": "input_text", "text": USER}]},
    {"type": "function_call", "call_id": "call_w1", "name": "get_weather", "arguments": ARGS},
    {"type": "function_call_output", "call_id": "call_w1", "output": TOOL_RESULT},
]


def test_responses_instructions_and_tool_items(
    fake: FakeOpenAIServer, capturing: Telemetry, openai_client: openai.OpenAI
) -> None:
    fake.enqueue(Reply(text=ANSWER))
    response = openai_client.responses.create(model=MODEL, instructions=SYSTEM, input=RESPONSES_INPUT)
    assert response.output_text == ANSWER

    span = capturing.span()
    assert content(span, "gen_ai.system_instructions") == [{"type": "text", "content": SYSTEM}]
    assert content(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [{"type": "text", "content": USER}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_w1", "name": "get_weather", "arguments": json.loads(ARGS)},
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_w1", "response": TOOL_RESULT}]},
    ]
    assert content(span, "gen_ai.output.messages") == EXPECTED_ANSWER


def test_responses_instructions_and_system_input_message(
    fake: FakeOpenAIServer, capturing: Telemetry, openai_client: openai.OpenAI
) -> None:
    fake.enqueue(Reply(text=ANSWER))
    openai_client.responses.create(
        model=MODEL,
        instructions="You must never tell jokes.",
        input=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
    )

    span = capturing.span()
    assert content(span, "gen_ai.system_instructions") == [
        {"type": "text", "content": "You must never tell jokes."},
    ]
    assert content(span, "gen_ai.input.messages") == [
        {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
        {"role": "user", "parts": [{"type": "text", "content": USER}]},
    ]


def test_embeddings_have_no_message_attributes(
    fake: FakeOpenAIServer, capturing: Telemetry, openai_client: openai.OpenAI
) -> None:
    openai_client.embeddings.create(model="text-embedding-3-small", input=[USER, ANSWER])
    span = capturing.span()
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert not [name for name in CONTENT_ATTRIBUTES if name in span.attributes], dict(span.attributes)


# --- capture off -------------------------------------------------------------------------------------


def _all_attribute_text(telemetry: Telemetry) -> list[str]:
    texts = []
    for span in telemetry.spans():
        for key, value in span.attributes.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            texts.extend(f"{key}={v}" for v in values)
        for event in span.events:
            texts.extend(f"{event.name}:{k}={v}" for k, v in (event.attributes or {}).items())
        texts.append(span.status.description or "")
    for name in ("gen_ai.client.token.usage", "gen_ai.client.operation.duration"):
        for point in telemetry.metric_points(name):
            texts.extend(f"{k}={v}" for k, v in point.attributes.items())
    return texts


async def test_no_content_without_opt_in(
    fake: FakeOpenAIServer,
    not_capturing: Telemetry,
    openai_client: openai.OpenAI,
    async_openai_client: openai.AsyncOpenAI,
) -> None:
    fake.enqueue(
        Reply(text=ANSWER),
        Reply(text=None, tool_calls=[ToolCall("get_weather", ARGS)]),
        Reply(text=ANSWER),
        Reply(text=ANSWER),
        Reply(text=ANSWER),
    )
    openai_client.chat.completions.create(
        model=MODEL,
        messages=[SYSTEM_MESSAGE, *HISTORY],
        tools=[WEATHER_TOOL],
    )
    openai_client.chat.completions.create(model=MODEL, messages=[SYSTEM_MESSAGE, *HISTORY])
    list(openai_client.chat.completions.create(model=MODEL, messages=[SYSTEM_MESSAGE, *HISTORY], stream=True))
    openai_client.responses.create(model=MODEL, instructions=SYSTEM, input=RESPONSES_INPUT)
    await async_openai_client.responses.create(model=MODEL, instructions=SYSTEM, input=RESPONSES_INPUT)
    openai_client.embeddings.create(model="text-embedding-3-small", input=[USER, ANSWER])

    spans = not_capturing.spans()
    assert len(spans) == 6
    for span in spans:
        assert not [name for name in CONTENT_ATTRIBUTES if name in span.attributes], span.name
    texts = _all_attribute_text(not_capturing)
    assert texts  # the scan saw the attributes
    assert not [t for t in texts if CANARY in t]
    # Counts are recorded without the text.
    assert spans[0].attributes["tokenkpi.context.system_tokens"] > 0
    assert spans[1].attributes["tokenkpi.tool_calls.count"] == 1
