"""Opt-in content capture for Anthropic calls: ``system`` goes to ``gen_ai.system_instructions``; the
message blocks are split into semconv messages (text, tool calls, tool results with their ids);
thinking is not captured as text; nothing of the prompt is recorded without the opt-in.

The Recorder reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` at ``instrument()``, so the
fixtures set the environment first (as tests/test_content_capture.py does)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from _anthropic_support import MODEL
from _telemetry import Telemetry

from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.testing.fake_anthropic import Reply, ToolCall

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_anthropic_support"]

ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CANARY = "canary-41b7"
SYSTEM = f"You are WeatherBot {CANARY}-system."
USER_TEXT = f"Weather in Paris? {CANARY}-user"
RESULT = f'{{"temperature_c": 18, "note": "{CANARY}-result"}}'
ANSWER = f"Rainy, 18 C. {CANARY}-answer"
HISTORY = [
    {"role": "user", "content": USER_TEXT},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": f"secret reasoning {CANARY}", "signature": "sig"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_w", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_w", "content": RESULT},
            {"type": "text", "text": "Thanks!"},
        ],
    },
]
EXPECTED_INPUT = [
    {"role": "user", "parts": [{"type": "text", "content": USER_TEXT}]},
    {
        "role": "assistant",
        "parts": [
            {"type": "text", "content": "Let me check."},
            {"type": "tool_call", "id": "toolu_w", "name": "get_weather", "arguments": {"city": "Paris"}},
        ],
    },
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "toolu_w", "response": RESULT}]},
    {"role": "user", "parts": [{"type": "text", "content": "Thanks!"}]},
]


def instrumented(monkeypatch: pytest.MonkeyPatch, value: str | None) -> Iterator[Telemetry]:
    if value is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, value)
    telemetry = Telemetry()
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        yield telemetry
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def capturing(monkeypatch: pytest.MonkeyPatch, loaded_data: None) -> Iterator[Telemetry]:
    yield from instrumented(monkeypatch, "true")


@pytest.fixture(params=[None, "false"])
def not_capturing(request, monkeypatch: pytest.MonkeyPatch, loaded_data: None) -> Iterator[Telemetry]:
    yield from instrumented(monkeypatch, request.param)


def content(span, name: str):
    assert name in span.attributes, sorted(span.attributes)
    return json.loads(span.attributes[name])


def test_history_split_into_semconv_messages(capturing, afake, anthropic_client):
    afake.enqueue(Reply(text=ANSWER, thinking=f"more reasoning {CANARY}"))
    anthropic_client.messages.create(model=MODEL, max_tokens=64, system=SYSTEM, messages=HISTORY)
    span = capturing.span()
    assert content(span, "gen_ai.system_instructions") == [{"type": "text", "content": SYSTEM}]
    assert content(span, "gen_ai.input.messages") == EXPECTED_INPUT
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "end_turn"}
    ]
    assert "reasoning" not in span.attributes["gen_ai.input.messages"]
    assert "reasoning" not in span.attributes["gen_ai.output.messages"]


def test_streamed_tool_calls_captured_with_assembled_arguments(capturing, afake, anthropic_client):
    calls = [
        ToolCall("get_weather", json.dumps({"city": c, "days": [1, 2]}), id=f"toolu_{c}") for c in ("Oslo", "Rome")
    ]
    afake.enqueue(Reply(text=None, tool_calls=calls))
    with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=HISTORY[:1]) as stream:
        stream.until_done()
    assert content(capturing.span(), "gen_ai.output.messages") == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": c.id, "name": c.name, "arguments": json.loads(c.arguments)} for c in calls
            ],
            "finish_reason": "tool_use",
        }
    ]


def test_nothing_of_the_prompt_without_opt_in(not_capturing, afake, anthropic_client):
    afake.enqueue(Reply(text=ANSWER))
    anthropic_client.messages.create(model=MODEL, max_tokens=64, system=SYSTEM, messages=HISTORY)
    span = not_capturing.span()
    for name in ("gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.output.messages"):
        assert name not in span.attributes
    assert not any(CANARY in str(value) for value in span.attributes.values())
    assert span.attributes["tokenkpi.context.tool_results_tokens"] > 0  # counts are still recorded
