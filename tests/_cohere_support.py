"""Fixtures for the Cohere tests: the fake Cohere API v2, the real SDK's clients pointed at it, the
``CohereInstrumentor`` recording into in-memory SDK exporters, and the planted-waste script of
``test_waste_across_providers.py`` played through ``cohere.ClientV2``.

Test modules import the fixtures they use by name.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import cohere
import pytest
from _planted_waste import ARGS, ARGS_REORDERED, ASK, BIG, PARAMETERS, RESULT_1, RESULT_2, SYSTEM
from _telemetry import Telemetry, instrumented_with

from otel_tokenkpi.instrumentors.cohere import CohereInstrumentor
from otel_tokenkpi.testing import fake_cohere
from otel_tokenkpi.testing.fake_cohere import FakeCohereServer
from otel_tokenkpi.tokens import estimate_tokens

MODEL = "command-a-03-2025"  # priced in genai-prices (as command-a); no published context window there
EMBED_MODEL = "embed-v4.0"
SCOPE = "otel_tokenkpi.instrumentors.cohere"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
USER = [{"role": "user", "content": "Describe Paris in a few words."}]


def est(*texts: str) -> int:
    """What the engine counts for a Cohere model: the estimator (no offline Cohere tokenizer)."""
    return sum(estimate_tokens(t) for t in texts if t)


def instrumented() -> contextlib.AbstractContextManager[Telemetry]:
    return instrumented_with(CohereInstrumentor)


@pytest.fixture(scope="session")
def cohere_server() -> Iterator[FakeCohereServer]:
    with FakeCohereServer() as fake:
        yield fake


@pytest.fixture
def cfake(cohere_server: FakeCohereServer) -> FakeCohereServer:
    cohere_server.reset()
    return cohere_server


@pytest.fixture
def ctelemetry(loaded_data: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    monkeypatch.delenv(CAPTURE_ENV, raising=False)
    with instrumented() as telemetry:
        yield telemetry


COHERE_VERSION = tuple(int(p) for p in version("cohere").split(".")[:3] if p.isdigit())
# Before 5.16 the SDK's chat_stream wraps its ``yield`` in a bare ``except: pass``, which swallows GeneratorExit:
# closing a stream early raises this RuntimeError, with or without instrumentation.
CLOSE_EARLY_RAISES = COHERE_VERSION < (5, 16)


def sdk_close_error() -> contextlib.AbstractContextManager[Any]:
    """Around ``close()`` / ``aclose()`` of a stream left early: the SDK's own RuntimeError where it raises one."""
    if CLOSE_EARLY_RAISES:
        return pytest.raises(RuntimeError, match="ignored GeneratorExit")
    return contextlib.nullcontext()


# cohere 5.9.3's embed takes one typed ``request=`` object (SearchQueryEmbedRequestV2 etc.); 5.9.4 on, keywords.
EMBED_TAKES_KEYWORDS = "model" in inspect.signature(cohere.ClientV2.embed).parameters


def embed_args(model: str, texts: list[str], input_type: str, **more: Any) -> dict[str, Any]:
    """``embed``'s arguments in the shape this cohere release takes."""
    fields = {"model": model, "texts": texts, "input_type": input_type, **more}
    if EMBED_TAKES_KEYWORDS:
        return fields
    request_type = getattr(cohere, "".join(w.title() for w in input_type.split("_")) + "EmbedRequestV2")
    return {"request": request_type(**fields)}


# max_retries= is newer than cohere 5.9.3 (which makes one attempt per call unless a request option asks more).
NO_RETRIES = {"max_retries": 0} if "max_retries" in inspect.signature(cohere.Client.__init__).parameters else {}


def make_client(server: FakeCohereServer, *, is_async: bool = False) -> Any:
    """A real v2 client against the fake, with the SDK's retries off (one attempt per call)."""
    cls = cohere.AsyncClientV2 if is_async else cohere.ClientV2
    return cls(api_key="co-test", base_url=server.url, **NO_RETRIES)


# ``cohere.Client.__init__`` (which ``ClientV2`` runs) binds ``chat`` and ``chat_stream`` onto the instance, so a
# client sees the instrumentation that was in place when it was made: these fixtures make theirs after it.
@pytest.fixture
def cohere_client(ctelemetry: Telemetry, cfake: FakeCohereServer) -> Any:
    return make_client(cfake)


@pytest.fixture
def async_cohere_client(ctelemetry: Telemetry, cfake: FakeCohereServer) -> Any:
    return make_client(cfake, is_async=True)


@pytest.fixture
def capturing(loaded_data: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    """Instrumented with content capture on (the Recorder reads the switch at ``instrument()``)."""
    monkeypatch.setenv(CAPTURE_ENV, "true")
    with instrumented() as telemetry:
        yield telemetry


def run_waste_script(server: FakeCohereServer, billed: int = BIG) -> None:
    """The script of ``test_waste_across_providers.py`` through ``cohere.ClientV2``: a tool call; the same
    call with its argument keys reordered; the duplicate's result sent back, answered with a reply cut at
    ``MAX_TOKENS``; that request again, unchanged; a failed call."""
    client = make_client(server)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": PARAMETERS}}
    ]
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    reply, call = fake_cohere.Reply, fake_cohere.ToolCall
    server.enqueue(
        reply(text=None, tool_calls=[call("get_weather", ARGS, "k1")], input_tokens=billed),
        reply(text=None, tool_calls=[call("get_weather", ARGS_REORDERED, "k2")], input_tokens=billed, output_tokens=40),
        reply(text="It is 21", finish_reason="MAX_TOKENS", input_tokens=billed, output_tokens=8),
        reply(text="It is 21", finish_reason="MAX_TOKENS", input_tokens=billed, output_tokens=8),
        reply(status=500),
    )
    for call_id, result in (("k1", RESULT_1), ("k2", RESULT_2)):
        response = client.chat(model=MODEL, messages=messages, tools=tools)
        messages += [response.message, {"role": "tool", "tool_call_id": call_id, "content": result}]
    for _ in range(2):
        client.chat(model=MODEL, messages=messages, tools=tools, max_tokens=8)
    with pytest.raises(cohere.InternalServerError):
        more = [*messages, {"role": "assistant", "content": "It is 21"}, {"role": "user", "content": "?"}]
        client.chat(model=MODEL, messages=more, tools=tools)
