"""Property-based tests of every adapter's readers (hypothesis): hostile structures shaped like each
provider's messages, tools, content parts, responses and stream chunks never make a reader raise, and the
records they produce go through the engine, content capture and the recorder without an internal error,
with sane counts (see ``_fuzz_support.check_through_engine``).

Each endpoint's own ``read_request`` is called with a real client object of its SDK (built against an
unused local URL: reading a request needs no network), exactly as the lifecycle calls it. The examples are
derandomized (profile ``tokenkpi-fuzz``): every run, in CI too, tries the same ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _fuzz_support as fz
import _litellm_support  # noqa: F401 - sets LITELLM_LOCAL_MODEL_COST_MAP before litellm is imported
import anthropic
import cohere
import groq
import ollama
import openai
import pytest
from _bedrock_support import make_client as make_bedrock_client
from google import genai
from hypothesis import given
from hypothesis import strategies as st
from mistralai.client import Mistral

from otel_tokenkpi import _wellformed
from otel_tokenkpi.instrumentors import anthropic as anthropic_adapter
from otel_tokenkpi.instrumentors import bedrock as bedrock_adapter
from otel_tokenkpi.instrumentors import cohere as cohere_adapter
from otel_tokenkpi.instrumentors import google_genai as gemini_adapter
from otel_tokenkpi.instrumentors import groq as groq_adapter
from otel_tokenkpi.instrumentors import litellm as litellm_adapter
from otel_tokenkpi.instrumentors import mistral as mistral_adapter
from otel_tokenkpi.instrumentors import ollama as ollama_adapter
from otel_tokenkpi.instrumentors import openai as openai_adapter
from otel_tokenkpi.lifecycle import Endpoint

URL = "http://127.0.0.1:9"  # never contacted

CHAT_OPENAI = ("model", "messages", "tools", "functions", "temperature", "max_tokens", "stop", "response_format", "n")


@dataclass(frozen=True)
class Target:
    provider: str  # vocabulary key in _fuzz_support.SOURCES
    endpoint: Endpoint
    instance: Callable[[], Any]
    top: tuple[str, ...]  # the endpoint's top-level keyword arguments
    wrap: Callable[[dict[str, Any]], dict[str, Any]] = lambda kwargs: kwargs  # how the lifecycle passes them


def _bedrock_converse(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"api_params": kwargs, "body": None}


def _bedrock_invoke(kwargs: dict[str, Any]) -> dict[str, Any]:
    body = {**kwargs, "anthropic_version": "bedrock-2023-05-31"}
    return {"api_params": {"modelId": kwargs.get("model"), "body": b"{}"}, "body": body}


_openai = openai.OpenAI(api_key="sk-fuzz", base_url=URL + "/v1", max_retries=0)
_groq = groq.Groq(api_key="gsk-fuzz", base_url=URL, max_retries=0)
_mistral = Mistral(api_key="fuzz", server_url=URL)
CONVERSE = ("modelId", "messages", "system", "toolConfig", "inferenceConfig")
INVOKE = ("model", "messages", "system", "tools", "max_tokens", "stop_sequences", "temperature")

TARGETS = {
    "openai.chat": Target("openai", openai_adapter.CHAT, lambda: _openai.chat.completions, (*CHAT_OPENAI, "stream")),
    "openai.responses": Target(
        "openai",
        openai_adapter.RESPONSES,
        lambda: _openai.responses,
        ("model", "input", "instructions", "tools", "previous_response_id", "conversation", "text", "stream"),
    ),
    "openai.embeddings": Target(
        "openai", openai_adapter.EMBEDDINGS, lambda: _openai.embeddings, ("model", "input", "encoding_format")
    ),
    "anthropic.messages": Target(
        "anthropic",
        anthropic_adapter.MESSAGES,
        lambda: anthropic.Anthropic(api_key="sk-ant-fuzz", base_url=URL).messages,
        ("model", "messages", "system", "tools", "max_tokens", "stop_sequences", "stream", "extra_body"),
    ),
    **{
        name: Target(
            "google_genai",
            endpoint,
            lambda: genai.Client(api_key="fuzz", http_options={"base_url": URL}).models,
            ("model", "contents", "config"),
        )
        for name, endpoint in (
            ("gemini.generate", gemini_adapter.GENERATE),
            ("gemini.stream", gemini_adapter.GENERATE_STREAM),
            ("gemini.embed", gemini_adapter.EMBEDDINGS),
        )
    },
    **{
        name: Target("bedrock", bedrock_adapter.ENDPOINTS[op], lambda: make_bedrock_client(URL), top, wrap)
        for name, op, top, wrap in (
            ("bedrock.converse", "Converse", CONVERSE, _bedrock_converse),
            ("bedrock.converse_stream", "ConverseStream", CONVERSE, _bedrock_converse),
            ("bedrock.invoke", "InvokeModel", INVOKE, _bedrock_invoke),
            ("bedrock.invoke_stream", "InvokeModelWithResponseStream", INVOKE, _bedrock_invoke),
        )
    },
    **{
        name: Target("mistral", endpoint, lambda resource=resource: getattr(_mistral, resource), top)
        for name, endpoint, resource, top in (
            ("mistral.complete", mistral_adapter.COMPLETE, "chat", (*CHAT_OPENAI, "random_seed", "server_url")),
            ("mistral.stream", mistral_adapter.STREAM, "chat", (*CHAT_OPENAI, "random_seed")),
            ("mistral.embeddings", mistral_adapter.EMBEDDINGS, "embeddings", ("model", "inputs", "output_dimension")),
        )
    },
    **{
        name: Target(
            "cohere",
            endpoint,
            lambda: cohere.ClientV2(api_key="co-fuzz", base_url=URL),
            ("model", "messages", "tools", "documents", "response_format", "max_tokens", "k", "p", "texts"),
        )
        for name, endpoint in (
            ("cohere.chat", cohere_adapter.CHAT),
            ("cohere.chat_stream", cohere_adapter.CHAT_STREAM),
            ("cohere.embed", cohere_adapter.EMBED),
        )
    },
    **{
        f"ollama.{name}": Target(
            "ollama",
            endpoint,
            lambda: ollama.Client(host=URL),
            ("model", "messages", "tools", "format", "options", "stream", "prompt", "system", "suffix", "input"),
        )
        for name, endpoint in ollama_adapter.ENDPOINTS.items()
    },
    "groq.chat": Target("groq", groq_adapter.CHAT, lambda: _groq.chat.completions, (*CHAT_OPENAI, "stream")),
    "litellm.chat": Target(
        "litellm", litellm_adapter.CHAT, lambda: None, (*CHAT_OPENAI, "stream", "custom_llm_provider", "api_base")
    ),
    "litellm.embeddings": Target("litellm", litellm_adapter.EMBEDDINGS, lambda: None, ("model", "input")),
}

RECORDER = fz.make_recorder()


@functools.cache
def _instance(target: Target) -> Any:
    """One client per endpoint (building one loads CA certificates: ~50 ms)."""
    return target.instance()


def _read_request(target: Target, kwargs: dict[str, Any]) -> Any:
    # As the lifecycle does: the adapter reads, then the record is made well-typed (otel_tokenkpi._wellformed).
    request = _wellformed.request(target.endpoint.read_request(_instance(target), target.wrap(kwargs)))
    if request is not None:  # None: "not a call of its own" (litellm's sync-to-async hand-over)
        fz.check_request(request)
    return request


@pytest.mark.parametrize("name", list(TARGETS))
@fz.FUZZ
@given(data=st.data())
def test_request_and_response_readers_are_total(loaded_data, name, data):
    target = TARGETS[name]
    request = _read_request(target, data.draw(fz.kwargs_for(target.provider, target.top), label="kwargs"))
    if request is None:
        return
    result = _wellformed.result(target.endpoint.read_response(data.draw(fz.shaped(target.provider), label="response")))
    fz.check_result(result)
    failed = data.draw(st.booleans(), label="failed")
    fz.check_through_engine(request, result, RECORDER, RuntimeError("boom") if failed else None)


STREAMS = {name: target for name, target in TARGETS.items() if target.endpoint.stream_reader is not None}


@pytest.mark.parametrize("name", list(STREAMS))
@fz.FUZZ
@given(data=st.data())
def test_stream_readers_are_total(loaded_data, name, data):
    target = STREAMS[name]
    request = _read_request(target, data.draw(fz.kwargs_for(target.provider, target.top), label="kwargs"))
    if request is None:
        return
    assert target.endpoint.stream_reader is not None
    reader = target.endpoint.stream_reader(request)
    for chunk in data.draw(st.lists(fz.shaped(target.provider), max_size=6), label="chunks"):
        reader.feed(chunk)
    result = _wellformed.result(reader.result())
    fz.check_result(result)
    fz.check_through_engine(request, result, RECORDER)


@pytest.mark.parametrize("name", list(TARGETS))
def test_circular_and_deep_structures_are_read(loaded_data, name):
    """A self-referencing schema and a 3000-deep list (json.dumps raises ValueError / RecursionError on
    them, and so does the SDK when it serialises the body): every reader still returns a record."""
    target = TARGETS[name]
    hostile = [fz.circular(), fz.deep(), {"role": fz.deep(), "content": fz.circular()}]
    kwargs = {key: hostile for key in target.top} | {"model": "gpt-4o"}
    request = _read_request(target, kwargs)
    if request is not None:
        fz.check_through_engine(request, _wellformed.result(target.endpoint.read_response(hostile)), RECORDER)
