"""The nine client libraries as :class:`~_faults_support.Driver` objects: one plain call, one sync and one
async stream each, against each library's fake server (see :mod:`_faults_support`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import _litellm_support as litellm_support  # noqa: F401 - sets LITELLM_LOCAL_MODEL_COST_MAP before litellm loads
import anthropic
import cohere
import groq
import litellm
import ollama
import openai
from _bedrock_support import CLAUDE
from _bedrock_support import make_client as make_bedrock_client
from _faults_support import Driver, adrain, drain
from botocore.config import Config
from google import genai
from google.genai import types
from mistralai.client import Mistral

from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.instrumentors.bedrock import BedrockInstrumentor
from otel_tokenkpi.instrumentors.cohere import CohereInstrumentor
from otel_tokenkpi.instrumentors.google_genai import GoogleGenAIInstrumentor
from otel_tokenkpi.instrumentors.groq import GroqInstrumentor
from otel_tokenkpi.instrumentors.litellm import LiteLLMInstrumentor
from otel_tokenkpi.instrumentors.mistral import MistralInstrumentor
from otel_tokenkpi.instrumentors.ollama import OllamaInstrumentor
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing import (
    fake_anthropic,
    fake_bedrock,
    fake_cohere,
    fake_gemini,
    fake_groq,
    fake_mistral,
    fake_ollama,
    fake_openai,
)

# OpenAI-style streams ask for usage (it then arrives in a chunk before ``[DONE]``).
STREAM_USAGE: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
USER = [{"role": "user", "content": "Describe Paris in a few words."}]


# --- openai & groq (same SDK shape) ---------------------------------------------------------------------


def _openai(server: Any, is_async: bool = False, **options: Any) -> Any:
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return cls(api_key="sk-test", base_url=server.url + "/v1", **{"max_retries": 0, **options})


def _groq(server: Any, is_async: bool = False, **options: Any) -> Any:
    cls = groq.AsyncGroq if is_async else groq.Groq
    return cls(api_key="gsk_test", base_url=server.url, **{"max_retries": 0, **options})


def _chat_driver(make: Callable[..., Any], model: str, **stream: Any) -> dict[str, Any]:
    async def astream(client: Any) -> Any:
        return await adrain(await client.chat.completions.create(model=model, messages=USER, **stream))

    return {
        "client": make,
        "aclient": lambda server, **options: make(server, True, **options),
        "plain": lambda client: client.chat.completions.create(model=model, messages=USER),
        "stream": lambda client: drain(client.chat.completions.create(model=model, messages=USER, **stream)),
        "astream": astream,
    }


# --- anthropic ------------------------------------------------------------------------------------------


def _anthropic(server: Any, is_async: bool = False, **options: Any) -> Any:
    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return cls(api_key="sk-ant-test", base_url=server.url, open_telemetry=False, **{"max_retries": 0, **options})


_CLAUDE = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": USER}


async def _anthropic_astream(client: Any) -> Any:
    return await adrain(await client.messages.create(**_CLAUDE, stream=True))


# --- google-genai ---------------------------------------------------------------------------------------

GEMINI = "gemini-2.5-flash"


def _gemini(server: Any, **options: Any) -> Any:
    """``retry_options`` / ``timeout`` (ms) go to HttpOptions; the SDK does not retry unless asked."""
    return genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.url, **options))


async def _gemini_astream(client: Any) -> Any:
    return await adrain(await client.models.generate_content_stream(model=GEMINI, contents="Hi"))


# --- bedrock --------------------------------------------------------------------------------------------

BEDROCK_MESSAGES = [{"role": "user", "content": [{"text": "Describe Paris in a few words."}]}]


def _bedrock(server: Any, **options: Any) -> Any:
    """``options`` are botocore ``Config`` arguments (default: one attempt)."""
    return make_bedrock_client(server.url, Config(**{"retries": {"total_max_attempts": 1}, **options}))


def _bedrock_stream(client: Any) -> Any:
    response = client.converse_stream(modelId=CLAUDE, messages=BEDROCK_MESSAGES)
    return {**response, "stream": drain(response["stream"])}


# --- mistral --------------------------------------------------------------------------------------------

MISTRAL = "mistral-small-latest"


def _mistral(server: Any, **options: Any) -> Any:
    """``options``: ``retry_config``, ``timeout_ms`` (the SDK does not retry unless asked)."""
    return Mistral(api_key="test-key", server_url=server.url, **options)


async def _mistral_astream(client: Any) -> Any:
    return await adrain(await client.chat.stream_async(model=MISTRAL, messages=USER))


# --- cohere ---------------------------------------------------------------------------------------------

COHERE = "command-a-03-2025"


def _cohere(server: Any, is_async: bool = False, **options: Any) -> Any:
    """``ClientV2`` binds ``chat`` at construction: make it after instrument()."""
    cls = cohere.AsyncClientV2 if is_async else cohere.ClientV2
    return cls(api_key="co-test", base_url=server.url, **{"max_retries": 0, **options})


async def _cohere_astream(client: Any) -> Any:
    return await adrain(client.chat_stream(model=COHERE, messages=USER))


# --- ollama ---------------------------------------------------------------------------------------------

LLAMA = "llama3.2"


def _ollama(server: Any, **options: Any) -> Any:
    """``options`` go to the httpx client (e.g. ``timeout``); the SDK has no retries."""
    return ollama.Client(host=server.url, **options)


async def _ollama_astream(client: Any) -> Any:
    return await adrain(await client.chat(LLAMA, USER, stream=True))


# --- litellm --------------------------------------------------------------------------------------------


def _litellm(server: Any, **options: Any) -> dict[str, Any]:
    """litellm has no client object: its "client" is the keyword arguments that aim a call at ``server``."""
    base = {"model": "openai/gpt-4o", "api_base": server.url + "/v1", "api_key": "sk-test", "max_retries": 0}
    return {**base, **options}


async def _litellm_astream(kwargs: Any) -> Any:
    return await adrain(await litellm.acompletion(**kwargs, messages=USER, **STREAM_USAGE))


DRIVERS: dict[str, Driver] = {
    "openai": Driver(
        fake_openai.FakeOpenAIServer,
        (OpenAIInstrumentor,),
        "openai.",
        "openai.chat",
        "openai.chat",
        reply=fake_openai.Reply,
        **_chat_driver(_openai, "gpt-4o", **STREAM_USAGE),
    ),
    "anthropic": Driver(
        fake_anthropic.FakeAnthropicServer,
        (AnthropicInstrumentor,),
        "anthropic.",
        "anthropic.messages",
        "anthropic.messages",
        client=_anthropic,
        plain=lambda client: client.messages.create(**_CLAUDE),
        stream=lambda client: drain(client.messages.create(**_CLAUDE, stream=True)),
        astream=_anthropic_astream,
        aclient=lambda server, **options: _anthropic(server, True, **options),
        reply=fake_anthropic.Reply,
    ),
    "gemini": Driver(
        fake_gemini.FakeGeminiServer,
        (GoogleGenAIInstrumentor,),
        "google_genai.",
        "google_genai.generate_content",
        "google_genai.generate_content_stream",
        client=_gemini,
        plain=lambda client: client.models.generate_content(model=GEMINI, contents="Hi"),
        stream=lambda client: drain(client.models.generate_content_stream(model=GEMINI, contents="Hi")),
        astream=_gemini_astream,
        aclient=lambda server, **options: _gemini(server, **options).aio,
        reply=fake_gemini.Reply,
    ),
    "bedrock": Driver(
        fake_bedrock.FakeBedrockServer,
        (BedrockInstrumentor,),
        "bedrock.",
        "bedrock.converse",
        "bedrock.converse_stream",
        client=_bedrock,
        plain=lambda client: client.converse(modelId=CLAUDE, messages=BEDROCK_MESSAGES),
        stream=_bedrock_stream,
        astream=None,  # boto3 has no async client
        aclient=None,
        reply=fake_bedrock.Reply,
    ),
    "mistral": Driver(
        fake_mistral.FakeMistralServer,
        (MistralInstrumentor,),
        "mistral.",
        "mistral.chat.complete",
        "mistral.chat.stream",
        client=_mistral,
        plain=lambda client: client.chat.complete(model=MISTRAL, messages=USER),
        stream=lambda client: drain(client.chat.stream(model=MISTRAL, messages=USER)),
        astream=_mistral_astream,
        aclient=_mistral,
        reply=fake_mistral.Reply,
    ),
    "cohere": Driver(
        fake_cohere.FakeCohereServer,
        (CohereInstrumentor,),
        "cohere.",
        "cohere.chat",
        "cohere.chat_stream",
        client=_cohere,
        plain=lambda client: client.chat(model=COHERE, messages=USER),
        stream=lambda client: drain(client.chat_stream(model=COHERE, messages=USER)),
        astream=_cohere_astream,
        aclient=lambda server, **options: _cohere(server, True, **options),
        reply=fake_cohere.Reply,
    ),
    "ollama": Driver(
        fake_ollama.FakeOllamaServer,
        (OllamaInstrumentor,),
        "ollama.",
        "ollama.chat",
        "ollama.chat",
        client=_ollama,
        plain=lambda client: client.chat(LLAMA, USER),
        stream=lambda client: drain(client.chat(LLAMA, USER, stream=True)),
        astream=_ollama_astream,
        aclient=lambda server, **options: ollama.AsyncClient(host=server.url, **options),
        reply=fake_ollama.Reply,
    ),
    "groq": Driver(
        fake_groq.FakeGroqServer,
        (GroqInstrumentor,),
        "groq.",
        "groq.chat",
        "groq.chat",
        reply=fake_groq.Reply,
        **_chat_driver(_groq, "qwen/qwen3-32b", stream=True),  # usage comes in x_groq; no stream_options
    ),
    # litellm to OpenAI with the OpenAI instrumentor on too: the inner openai call must stay quiet.
    "litellm": Driver(
        fake_openai.FakeOpenAIServer,
        (LiteLLMInstrumentor, OpenAIInstrumentor),
        "litellm.",
        "litellm.chat",
        "litellm.chat",
        client=_litellm,
        plain=lambda kwargs: litellm.completion(**kwargs, messages=USER),
        stream=lambda kwargs: drain(litellm.completion(**kwargs, messages=USER, **STREAM_USAGE)),
        astream=_litellm_astream,
        aclient=_litellm,
        reply=fake_openai.Reply,
    ),
}
