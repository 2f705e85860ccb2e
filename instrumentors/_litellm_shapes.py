"""Read LiteLLM shapes: request kwargs, ``ModelResponse`` / ``EmbeddingResponse``, stream chunks.

LiteLLM speaks OpenAI Chat Completions to its caller whatever the provider behind it, so the
OpenAI readers of :mod:`._openai_chat` do the work; this module adds what LiteLLM adds:

- ``prompt_tokens`` already INCLUDES cache reads and writes (for Anthropic it is the sum of
  ``input_tokens``, ``cache_read_input_tokens`` and ``cache_creation_input_tokens``), cache reads are
  in ``prompt_tokens_details.cached_tokens`` as for OpenAI, and cache writes, which OpenAI has no
  field for, in ``cache_creation_input_tokens`` (or ``prompt_tokens_details.cache_creation_tokens``);
- provider names: LiteLLM's own (``vertex_ai``, ``xai``, ...) mapped to semconv names;
- ``top_k``, which LiteLLM forwards to the providers that take it.
"""

from __future__ import annotations

from typing import Any

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.invocation import CallRequest, CallResult, Usage

from . import _openai_chat as chat
from ._shapes import get, param_number

# LiteLLM provider name -> gen_ai.provider.name (semconv). Unknown providers keep LiteLLM's name.
PROVIDER_NAMES = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "anthropic_text": "anthropic",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "text-completion-codestral": "mistral_ai",
    "groq": "groq",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "ollama": "ollama",
    "ollama_chat": "ollama",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
    "watsonx_text": "ibm.watsonx.ai",
}


def provider_name(litellm_provider: str) -> str:
    return PROVIDER_NAMES.get(litellm_provider, litellm_provider)


def read_chat_request(base: CallRequest, kwargs: dict[str, Any]) -> CallRequest:
    request = chat.read_request(base, kwargs)
    top_k = param_number(kwargs.get("top_k"))
    if top_k is not None:
        request.params[sc.REQUEST_TOP_K] = top_k
    return request


def read_usage(usage: Any) -> Usage | None:
    result = chat.read_usage(usage)
    if result is not None:
        write = get(usage, "cache_creation_input_tokens")
        if write is None:
            write = get(get(usage, "prompt_tokens_details"), "cache_creation_tokens")
        result.cache_write_tokens = write if isinstance(write, int) else None
    return result


def read_chat_response(response: Any) -> CallResult:
    result = chat.read_response(response)
    result.usage = read_usage(get(response, "usage"))
    return result


def read_embeddings_response(response: Any) -> CallResult:
    usage = get(response, "usage")
    return CallResult(
        response_model=get(response, "model") or None,
        usage=Usage(input_tokens=get(usage, "prompt_tokens")) if usage is not None else None,
    )


class ChunkReader(chat.ChunkReader):
    """OpenAI chunk reading, plus the cache writes of LiteLLM's usage chunk."""

    def __init__(self, request: CallRequest) -> None:
        super().__init__(request)
        self._usage: Any = None

    def feed(self, chunk: Any) -> None:
        super().feed(chunk)
        usage = get(chunk, "usage")
        if usage is not None:
            self._usage = usage

    def result(self) -> CallResult:
        result = super().result()
        if self._usage is not None:
            result.usage = read_usage(self._usage)
        return result
