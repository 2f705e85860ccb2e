"""Fixtures and helpers for the Groq tests: the fake Groq API, real ``groq`` SDK clients pointed at it,
the Groq instrumentor recording into in-memory exporters (conftest's ``Telemetry``), and the
cross-provider waste script played through the groq SDK.

Test modules import the fixtures they use by name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import groq
import pytest
from _planted_waste import ARGS, ARGS_REORDERED, ASK, BIG, PARAMETERS, RESULT_1, RESULT_2, SYSTEM
from _telemetry import Telemetry, instrumented_with

from otel_tokenkpi import tokens
from otel_tokenkpi.instrumentors.groq import GroqInstrumentor
from otel_tokenkpi.testing.fake_groq import FakeGroqServer, Reply, ToolCall

MODEL = "qwen/qwen3-32b"  # priced for groq in genai-prices, context window 131072; no offline tokenizer
SCOPE = "otel_tokenkpi.instrumentors.groq"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
USER = [{"role": "user", "content": "Describe Paris in a few words."}]
GROQ_VERSION = tuple(int(p) for p in version("groq").split(".")[:3] if p.isdigit())


def wire(obj: Any, *path: str) -> Any:
    """A response field by wire name, whether the SDK declares it (attribute) or not: releases before the
    field was typed keep it as pydantic extra data, a plain dict (groq 0.4's ``x_groq``, a chunk's
    ``usage``). A field absent from the answer reads None."""
    for name in path:
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj


def est(*texts: str, model: str = MODEL) -> int:
    """What the engine counts for an open model: the estimator (asserted: no exact count)."""
    counts = [tokens.count_text(t, model) for t in texts if t]
    assert not any(c.exact for c in counts)
    return sum(c.tokens for c in counts)


def instrumented() -> contextlib.AbstractContextManager[Telemetry]:
    return instrumented_with(GroqInstrumentor)


def make_client(server: FakeGroqServer, *, is_async: bool = False) -> Any:
    """A real groq client against the fake; no SDK retries (one attempt per call)."""
    cls = groq.AsyncGroq if is_async else groq.Groq
    return cls(api_key="gsk_test", base_url=server.url, max_retries=0)


@pytest.fixture(scope="session")
def groq_server() -> Iterator[FakeGroqServer]:
    with FakeGroqServer() as fake:
        yield fake


@pytest.fixture
def gfake(groq_server: FakeGroqServer) -> FakeGroqServer:
    groq_server.reset()
    return groq_server


@pytest.fixture
def gtelemetry(loaded_data: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    monkeypatch.delenv(CAPTURE_ENV, raising=False)
    with instrumented() as telemetry:
        yield telemetry


@pytest.fixture
def groq_client(gfake: FakeGroqServer) -> Any:
    return make_client(gfake)


@pytest.fixture
def async_groq_client(gfake: FakeGroqServer) -> Any:
    return make_client(gfake, is_async=True)


def run_waste_script(server: FakeGroqServer, billed: int = BIG) -> None:
    """tests/test_waste_across_providers.py's script, through the groq SDK: (1) a tool call; (2) the same
    call, keys reordered; (3) the duplicate's result sent back, answer cut at the token limit; (4) that
    request repeated; (5) a failed call."""
    client = make_client(server)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": PARAMETERS}}
    ]
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    server.enqueue(
        Reply(text=None, tool_calls=[ToolCall("get_weather", ARGS, "g1")], prompt_tokens=billed),
        Reply(
            text=None,
            tool_calls=[ToolCall("get_weather", ARGS_REORDERED, "g2")],
            prompt_tokens=billed,
            completion_tokens=40,
        ),
        Reply(text="It is 21", finish_reason="length", prompt_tokens=billed, completion_tokens=8),
        Reply(text="It is 21", finish_reason="length", prompt_tokens=billed, completion_tokens=8),
        Reply(status=500),
    )
    for call_id, result in (("g1", RESULT_1), ("g2", RESULT_2)):
        response = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
        messages += [response.choices[0].message, {"role": "tool", "tool_call_id": call_id, "content": result}]
    for _ in range(2):
        client.chat.completions.create(model=MODEL, messages=messages, tools=tools, max_tokens=8)
    with pytest.raises(groq.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=[*messages, {"role": "user", "content": "?"}], tools=tools)
