"""Fixtures for the Mistral tests: the fake Mistral API, the real ``mistralai`` client pointed at it, the
Mistral instrumentor recording into in-memory SDK exporters (conftest's ``Telemetry``), and the planted-waste
script of tests/test_waste_across_providers.py played through this SDK.

Test modules assign the fixtures they use (``x = _mistral_support.x``) so test arguments may use the names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from _planted_waste import ARGS, ARGS_REORDERED, ASK, BIG, PARAMETERS, RESULT_1, RESULT_2, SYSTEM
from _telemetry import Telemetry, instrumented_with
from mistralai.client import Mistral, errors

from otel_tokenkpi.instrumentors.mistral import MistralInstrumentor
from otel_tokenkpi.testing import fake_mistral
from otel_tokenkpi.testing.fake_mistral import FakeMistralServer

MODEL = "mistral-small-latest"  # priced in genai-prices (with a cache-read price)
SCOPE = "otel_tokenkpi.instrumentors.mistral"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
USER = [{"role": "user", "content": "Describe Paris in a few words."}]


def estimate(*texts: str) -> int:
    """What the engine counts for a Mistral model: the estimator (no offline Mistral tokenizer)."""
    from otel_tokenkpi import tokens

    counts = [tokens.count_text(t, MODEL) for t in texts if t]
    assert not any(c.exact for c in counts)
    return sum(c.tokens for c in counts)


def instrumented() -> contextlib.AbstractContextManager[Telemetry]:
    return instrumented_with(MistralInstrumentor)


def make_client(server: FakeMistralServer, *, is_async: bool = False) -> Mistral:
    """A real client against the fake. One ``Mistral`` serves sync and async calls (``complete`` /
    ``complete_async``); ``is_async`` is accepted for symmetry with the other providers' helpers. The SDK
    does not retry unless asked, so every scripted error is one attempt."""
    return Mistral(api_key="test-key", server_url=server.url)


@pytest.fixture(scope="session")
def mistral_server() -> Iterator[FakeMistralServer]:
    with FakeMistralServer() as fake:
        yield fake


@pytest.fixture
def mfake(mistral_server: FakeMistralServer) -> FakeMistralServer:
    mistral_server.reset()
    return mistral_server


@pytest.fixture
def mtelemetry(loaded_data: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    monkeypatch.delenv(CAPTURE_ENV, raising=False)
    with instrumented() as telemetry:
        yield telemetry


@pytest.fixture
def mclient(mfake: FakeMistralServer) -> Mistral:
    return make_client(mfake)


def run_waste_script(server: FakeMistralServer, billed: int = BIG) -> None:
    """tests/test_waste_across_providers.py's script through the real mistralai SDK: (1) a tool call; (2) the
    same call with its argument keys reordered; (3) the duplicate's result sent back, answered with a reply
    cut at the token limit; (4) that request repeated; (5) a failed call."""
    client = make_client(server)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": PARAMETERS}}
    ]
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    reply, call = fake_mistral.Reply, fake_mistral.ToolCall
    server.enqueue(
        reply(text=None, tool_calls=[call("get_weather", ARGS, "m1")], input_tokens=billed),
        reply(text=None, tool_calls=[call("get_weather", ARGS_REORDERED, "m2")], input_tokens=billed, output_tokens=40),
        reply(text="It is 21", finish_reason="length", input_tokens=billed, output_tokens=8),
        reply(text="It is 21", finish_reason="length", input_tokens=billed, output_tokens=8),
        reply(status=500),
    )
    for call_id, result in (("m1", RESULT_1), ("m2", RESULT_2)):
        response = client.chat.complete(model=MODEL, messages=messages, tools=tools)
        messages += [
            response.choices[0].message,
            {"role": "tool", "name": "get_weather", "tool_call_id": call_id, "content": result},
        ]
    for _ in range(2):
        client.chat.complete(model=MODEL, messages=messages, tools=tools, max_tokens=8)
    with pytest.raises(errors.SDKError):
        client.chat.complete(model=MODEL, messages=[*messages, {"role": "user", "content": "?"}], tools=tools)
