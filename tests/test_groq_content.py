"""Opt-in content capture for Groq calls: the history becomes semconv messages (text, tool calls with
their arguments, tool results with their ids), plain and streamed outputs are captured, and nothing of the
prompt is recorded without the opt-in. The Recorder reads the environment at ``instrument()``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from _groq_support import CAPTURE_ENV, MODEL, instrumented
from _telemetry import Telemetry

from otel_tokenkpi.testing.fake_groq import Reply, ToolCall

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_groq_support"]

CANARY = "canary-6d2e"
SYSTEM = f"You are WeatherBot {CANARY}-system."
USER_TEXT = f"Weather in Paris? {CANARY}-user"
RESULT = f'{{"temperature_c": 18, "note": "{CANARY}-result"}}'
ANSWER = f"Rainy, 18 C. {CANARY}-answer"
HISTORY = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": USER_TEXT},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_w", "content": RESULT},
]
EXPECTED_INPUT = [  # a chat "system" message stays a message (as for OpenAI chat)
    {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
    {"role": "user", "parts": [{"type": "text", "content": USER_TEXT}]},
    {
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_w", "name": "get_weather", "arguments": {"city": "Paris"}}],
    },
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_w", "response": RESULT}]},
]


def _instrumented(monkeypatch: pytest.MonkeyPatch, value: str | None) -> Iterator[Telemetry]:
    if value is None:
        monkeypatch.delenv(CAPTURE_ENV, raising=False)
    else:
        monkeypatch.setenv(CAPTURE_ENV, value)
    with instrumented() as telemetry:
        yield telemetry


@pytest.fixture
def capturing(monkeypatch: pytest.MonkeyPatch, loaded_data: None) -> Iterator[Telemetry]:
    yield from _instrumented(monkeypatch, "true")


@pytest.fixture(params=[None, "false"])
def not_capturing(request, monkeypatch: pytest.MonkeyPatch, loaded_data: None) -> Iterator[Telemetry]:
    yield from _instrumented(monkeypatch, request.param)


def content(span, name: str):
    assert name in span.attributes, sorted(span.attributes)
    return json.loads(span.attributes[name])


def test_history_split_into_semconv_messages(capturing, gfake, groq_client):
    gfake.enqueue(Reply(text=ANSWER))
    groq_client.chat.completions.create(model=MODEL, messages=HISTORY)
    span = capturing.span()
    assert content(span, "gen_ai.input.messages") == EXPECTED_INPUT
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}
    ]


def test_streamed_tool_calls_captured_with_assembled_arguments(capturing, gfake, groq_client):
    calls = [ToolCall("get_weather", json.dumps({"city": c, "days": [1, 2]}), id=f"call_{c}") for c in ("Oslo", "Rome")]
    gfake.enqueue(Reply(text=None, tool_calls=calls))
    for _ in groq_client.chat.completions.create(model=MODEL, messages=HISTORY[:2], stream=True):
        pass
    assert content(capturing.span(), "gen_ai.output.messages") == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": c.id, "name": c.name, "arguments": json.loads(c.arguments)} for c in calls
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_nothing_of_the_prompt_without_opt_in(not_capturing, gfake, groq_client):
    gfake.enqueue(Reply(text=ANSWER))
    groq_client.chat.completions.create(model=MODEL, messages=HISTORY)
    span = not_capturing.span()
    for name in ("gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.output.messages"):
        assert name not in span.attributes
    assert not any(CANARY in str(value) for value in span.attributes.values())
    assert span.attributes["tokenkpi.context.tool_results_tokens"] > 0  # counts are still recorded
