"""Opt-in content capture for Mistral calls: messages (text chunks joined, thinking chunks left out, tool
calls with their ids and arguments, tool results) in the semconv JSON shape, plain and streamed; nothing of
the prompt or the answer without the opt-in.

The Recorder reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` at ``instrument()``, so the
fixtures set the environment first."""

from __future__ import annotations

import json
from collections.abc import Iterator

import _mistral_support
import pytest
from _mistral_support import CAPTURE_ENV, MODEL, instrumented
from _telemetry import Telemetry

from otel_tokenkpi.testing.fake_mistral import Reply, ToolCall

mistral_server, mfake, mclient = _mistral_support.mistral_server, _mistral_support.mfake, _mistral_support.mclient

CANARY = "canary-5d2e"
SYSTEM = f"You are WeatherBot {CANARY}-system."
RESULT = f'{{"temperature_c": 18, "note": "{CANARY}-result"}}'
ANSWER = f"Rainy, 18 C. {CANARY}-answer"
HISTORY = [
    {"role": "system", "content": SYSTEM},
    {
        "role": "user",
        "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": f"Paris? {CANARY}"}],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": f"secret reasoning {CANARY}"}]},
            {"type": "text", "text": "Let me check."},
        ],
        "tool_calls": [{"id": "wthr00001", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    },
    {"role": "tool", "name": "get_weather", "tool_call_id": "wthr00001", "content": RESULT},
]
EXPECTED_INPUT = [
    {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
    {"role": "user", "parts": [{"type": "text", "content": f"Weather in Paris? {CANARY}"}]},
    {
        "role": "assistant",
        "parts": [
            {"type": "text", "content": "Let me check."},
            {"type": "tool_call", "id": "wthr00001", "name": "get_weather", "arguments": {"city": "Paris"}},
        ],
    },
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "wthr00001", "response": RESULT}]},
]
EXPECTED_OUTPUT = [
    {
        "role": "assistant",
        "parts": [
            {"type": "text", "content": ANSWER},
            {"type": "tool_call", "id": "time00002", "name": "get_time", "arguments": {"city": "Paris"}},
        ],
        "finish_reason": "tool_calls",
    }
]
REPLY = Reply(text=ANSWER, tool_calls=[ToolCall("get_time", '{"city": "Paris"}', id="time00002")])


@pytest.fixture
def capturing(monkeypatch: pytest.MonkeyPatch, loaded_data: None) -> Iterator[Telemetry]:
    monkeypatch.setenv(CAPTURE_ENV, "true")  # before instrument(): the Recorder reads it there
    with instrumented() as telemetry:
        yield telemetry


@pytest.fixture(params=["unset", "false"])
def not_capturing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, loaded_data: None):
    if request.param == "unset":
        monkeypatch.delenv(CAPTURE_ENV, raising=False)
    else:
        monkeypatch.setenv(CAPTURE_ENV, request.param)
    with instrumented() as telemetry:
        yield telemetry


def content(span, name: str):
    assert name in span.attributes, sorted(span.attributes)
    return json.loads(span.attributes[name])


def test_capture_on_records_semconv_messages(capturing, mfake, mclient):
    mfake.enqueue(REPLY)
    mclient.chat.complete(model=MODEL, messages=HISTORY)
    span = capturing.span()
    assert content(span, "gen_ai.input.messages") == EXPECTED_INPUT
    assert content(span, "gen_ai.output.messages") == EXPECTED_OUTPUT
    assert "gen_ai.system_instructions" not in span.attributes  # Mistral's system prompt is a chat message


def test_capture_on_stream_output_accumulates(capturing, mfake, mclient):
    mfake.enqueue(REPLY)
    list(mclient.chat.stream(model=MODEL, messages=HISTORY))
    span = capturing.span()
    assert content(span, "gen_ai.input.messages") == EXPECTED_INPUT
    assert content(span, "gen_ai.output.messages") == EXPECTED_OUTPUT


def test_capture_off_records_no_content(not_capturing, mfake, mclient):
    mfake.enqueue(REPLY)
    mclient.chat.complete(model=MODEL, messages=HISTORY)
    span = not_capturing.span()
    for name in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"):
        assert name not in span.attributes
    assert not any(CANARY in str(value) for value in span.attributes.values())
    assert span.attributes["tokenkpi.context.tool_results_tokens"] > 0  # counts are still there
