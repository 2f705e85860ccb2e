"""Fixtures for the ollama tests: the fake Ollama server, real SDK clients pointed at it, the Ollama
instrumentor recording into in-memory exporters (conftest's ``Telemetry``), and the planted-waste script of
``test_waste_across_providers`` played through the ``ollama`` SDK."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import ollama
import pytest
from _planted_waste import ARGS, ARGS_REORDERED, ASK, BIG, PARAMETERS, RESULT_1, RESULT_2, SYSTEM
from _telemetry import Telemetry, estimated_tokens, instrumented_with

from otel_tokenkpi.instrumentors.ollama import OllamaInstrumentor
from otel_tokenkpi.testing.fake_ollama import FakeOllamaServer, Reply, ToolCall

MODEL = "llama3.2"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
USER = [{"role": "user", "content": "Why is the sky blue?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather.", "parameters": PARAMETERS},
}


estimate = estimated_tokens  # the provider has no offline tokenizer
OLLAMA_VERSION = tuple(int(p) for p in version("ollama").split(".")[:3] if p.isdigit())


def at(obj: Any, *path: str) -> Any:
    """``obj.a.b`` or ``obj["a"]["b"]``: ollama 0.3 returns plain dicts, 0.4+ pydantic models (None if absent)."""
    for key in path:
        if obj is None:
            return None
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return obj


def as_plain(obj: Any) -> dict[str, Any]:
    """A response object as a dict, whichever the SDK returned."""
    return dict(obj) if isinstance(obj, dict) else obj.model_dump()


def instrumented() -> contextlib.AbstractContextManager[Telemetry]:
    return instrumented_with(OllamaInstrumentor)


@pytest.fixture(scope="session")
def ollama_server() -> Iterator[FakeOllamaServer]:
    with FakeOllamaServer() as fake:
        yield fake


@pytest.fixture
def ofake(ollama_server: FakeOllamaServer) -> FakeOllamaServer:
    ollama_server.reset()
    return ollama_server


@pytest.fixture
def otelemetry(loaded_data: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    monkeypatch.delenv(CAPTURE_ENV, raising=False)
    with instrumented() as telemetry:
        yield telemetry


def make_client(server: FakeOllamaServer, *, is_async: bool = False) -> Any:
    """A real client against the fake (the SDK has no retries)."""
    return (ollama.AsyncClient if is_async else ollama.Client)(host=server.url)


@pytest.fixture
def oclient(ofake: FakeOllamaServer) -> Any:
    return make_client(ofake)


@pytest.fixture
def async_oclient(ofake: FakeOllamaServer) -> Any:
    return make_client(ofake, is_async=True)


def run_waste_script(server: FakeOllamaServer, billed: int = BIG) -> None:
    """The script of test_waste_across_providers: (1) a tool call; (2) the same call, keys reordered; (3) the
    duplicate's result sent back, answered with a reply cut at the token limit; (4) that request repeated
    unchanged; (5) a failed call. Ollama answers tool calls with ``role: tool`` messages naming the tool."""
    client = make_client(server)
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    server.enqueue(
        Reply(text=None, tool_calls=[ToolCall("get_weather", ARGS)], input_tokens=billed),
        Reply(text=None, tool_calls=[ToolCall("get_weather", ARGS_REORDERED)], input_tokens=billed, output_tokens=40),
        Reply(text="It is 21", finish_reason="length", input_tokens=billed, output_tokens=8),
        Reply(text="It is 21", finish_reason="length", input_tokens=billed, output_tokens=8),
        Reply(status=500),
    )
    for result in (RESULT_1, RESULT_2):
        response = client.chat(MODEL, messages, tools=[WEATHER_TOOL])
        messages += [at(response, "message"), {"role": "tool", "tool_name": "get_weather", "content": result}]
    for _ in range(2):
        client.chat(MODEL, messages, tools=[WEATHER_TOOL], options={"num_predict": 8})
    with pytest.raises(ollama.ResponseError):
        client.chat(MODEL, [*messages, {"role": "user", "content": "?"}], tools=[WEATHER_TOOL])
