"""Fixtures for the LiteLLM tests: real ``litellm`` calls over real HTTP to the fake OpenAI and Anthropic
servers, with our LiteLLM, OpenAI and Anthropic instrumentors all on (LiteLLM calls the openai SDK
underneath: one span per call is part of what every test checks).

Import this module before litellm: it sets ``LITELLM_LOCAL_MODEL_COST_MAP`` so that importing litellm
reads its bundled cost map instead of fetching one.
"""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import Any

import litellm
import pytest
from _planted_waste import ARGS, ARGS_REORDERED, ASK, BIG, PARAMETERS, RESULT_1, RESULT_2, SYSTEM
from _telemetry import Telemetry, instrumented_with

from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.instrumentors.litellm import LiteLLMInstrumentor
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing import fake_openai
from otel_tokenkpi.testing.fake_anthropic import FakeAnthropicServer
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer

litellm.suppress_debug_info = True  # no "Give Feedback" banners in the test output

OPENAI_MODEL = "openai/gpt-4o"
ANTHROPIC_MODEL = "anthropic/claude-haiku-4-5"
SCOPE = "otel_tokenkpi.instrumentors.litellm"
MESSAGES = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Describe Paris in a few words."},
]
USAGE = {"include_usage": True}

LITELLM_VERSION = tuple(int(p) for p in version("litellm").split(".")[:3] if p.isdigit())
# litellm 1.103 made litellm.completion a dispatcher that calls litellm.main's function through a reference
# captured at import (litellm.chat_completions.dispatch; embeddings followed in 1.104), so an early
# ``from litellm import completion`` reaches our patch; before it, that name IS the unpatched function.
DISPATCH = (1, 103)


def target(server: FakeOpenAIServer | FakeAnthropicServer) -> dict[str, Any]:
    """The keyword arguments that send a litellm call to ``server``: its model and ``api_base``.
    ``max_retries=0``: the openai SDK's own retries (with back-off) would only slow error tests."""
    if isinstance(server, FakeAnthropicServer):
        return {"model": ANTHROPIC_MODEL, "api_base": server.url, "api_key": "sk-ant-test"}
    return {"model": OPENAI_MODEL, "api_base": server.url + "/v1", "api_key": "sk-test", "max_retries": 0}


def make_client(server: FakeOpenAIServer | FakeAnthropicServer, *, is_async: bool = False) -> Callable[..., Any]:
    """``litellm.completion`` (or ``acompletion``) aimed at ``server``; litellm has no client object. The
    function is looked up at each call, so the client works the same before and after instrument()."""
    base = target(server)

    def call(**kwargs: Any) -> Any:
        entry = litellm.acompletion if is_async else litellm.completion
        return entry(**{**base, **kwargs})

    return call


def our_spans(telemetry: Telemetry) -> list[Any]:
    return [s for s in telemetry.spans() if s.instrumentation_scope.name == SCOPE]


@pytest.fixture(scope="session")
def anthropic_fake_server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        yield server


@pytest.fixture
def afake(anthropic_fake_server: FakeAnthropicServer) -> FakeAnthropicServer:
    anthropic_fake_server.reset()
    return anthropic_fake_server


@pytest.fixture
def instrumentors() -> list[Any]:
    return [LiteLLMInstrumentor(), OpenAIInstrumentor(), AnthropicInstrumentor()]


@pytest.fixture
def ltelemetry(loaded_data: None, instrumentors: list[Any]) -> Iterator[Telemetry]:
    """Every instrumentor litellm could reach through is on, recording into one Telemetry (one instance per
    class: the same ones the ``instrumentors`` fixture hands to tests)."""
    with instrumented_with(*(type(instrumentor) for instrumentor in instrumentors)) as t:
        yield t


def run_waste_script(server: FakeOpenAIServer, billed: int = BIG) -> None:
    """tests/test_waste_across_providers.py's script, through ``litellm.completion`` to OpenAI."""
    complete = make_client(server)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": PARAMETERS}}
    ]
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    reply = fake_openai.Reply
    server.enqueue(
        reply(text=None, tool_calls=[fake_openai.ToolCall("get_weather", ARGS, "c1")], prompt_tokens=billed),
        reply(
            text=None,
            tool_calls=[fake_openai.ToolCall("get_weather", ARGS_REORDERED, "c2")],
            prompt_tokens=billed,
            completion_tokens=40,
        ),
        reply(text="It is 21", finish_reason="length", prompt_tokens=billed, completion_tokens=8),
        reply(text="It is 21", finish_reason="length", prompt_tokens=billed, completion_tokens=8),
        reply(status=500),
    )
    for call_id, result in (("c1", RESULT_1), ("c2", RESULT_2)):
        response = complete(messages=messages, tools=tools)
        messages += [response.choices[0].message, {"role": "tool", "tool_call_id": call_id, "content": result}]
    for _ in range(2):
        complete(messages=messages, tools=tools, max_tokens=8)
    with pytest.raises(litellm.InternalServerError):
        complete(messages=[*messages, {"role": "user", "content": "?"}], tools=tools)
