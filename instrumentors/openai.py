"""OpenAI instrumentor: where the ``openai`` SDK's model calls live.

Patched: chat completions ``create`` / ``parse``, responses ``create`` /
``parse``, embeddings ``create`` (sync and async). The ``stream()`` helpers
call the patched ``create`` themselves, so they get their span from it (one
span per call); they are patched only so that leaving one early ends the span
at the helper's exit. ``responses.stream(response_id=...)`` resumes a stored
response through ``retrieve``: not a new model call, no span.

Behind them, the client's request path (``_stainless.request_path_patches``)
catches the same APIs by URL path when the public method was bound before
``instrument()`` (instructor's ``from_openai(client)``, a ``with_raw_response``
first used earlier), and the SDK's retry hook notes each retried attempt on
the call's span. The public methods stay patched because they see the user's
own objects, which the readers' memos recognise from call to call (the request
path sees a fresh copy of the body each time).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from otel_tokenkpi.helper_wrappers import stream_helper_wrapper
from otel_tokenkpi.instrumentation import Patch, TokenKPIInstrumentor
from otel_tokenkpi.invocation import CallRequest, CallResult, Usage
from otel_tokenkpi.lifecycle import Endpoint

from . import _openai_chat as chat
from . import _openai_responses as responses
from ._shapes import get, given, new_request, read_openai_embeddings_request
from ._stainless import client_and_server, request_path_patches, unwrap_raw_response

# Well-known providers behind an OpenAI-compatible base URL (semconv names).
_PROVIDER_BY_HOST_SUFFIX = (
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.openai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.mistral.ai", "mistral_ai"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.cohere.ai", "cohere"),
    ("api.cohere.com", "cohere"),
    ("api.anthropic.com", "anthropic"),
)


def provider_for(client: Any, host: str | None) -> str:
    if type(client).__name__.startswith(("AzureOpenAI", "AsyncAzureOpenAI")):
        return "azure.ai.openai"
    if host:
        for suffix, provider in _PROVIDER_BY_HOST_SUFFIX:
            if host == suffix.lstrip(".") or host.endswith(suffix):
                return provider
    return "openai"


def _base_request(operation: str, instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    client, server = client_and_server(instance)
    return new_request(operation, provider_for(client, server[0]), kwargs.get("model"), server)


def _read_chat_request(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return chat.read_request(_base_request("chat", instance, kwargs), kwargs)


def _read_responses_request(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return responses.read_request(_base_request("chat", instance, kwargs), kwargs)


def _read_embeddings_request(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return read_openai_embeddings_request(_base_request("embeddings", instance, kwargs), kwargs)


def _read_embeddings_response(response: Any) -> CallResult:
    usage = get(response, "usage")
    return CallResult(
        response_model=get(response, "model") or None,
        usage=Usage(input_tokens=get(usage, "prompt_tokens")) if usage is not None else None,
    )


CHAT = Endpoint(
    name="openai.chat",
    read_request=_read_chat_request,
    read_response=chat.read_response,
    stream_reader=chat.ChunkReader,
    unwrap=unwrap_raw_response,
    materialize=("messages", "tools", "functions"),
)
RESPONSES = Endpoint(
    name="openai.responses",
    read_request=_read_responses_request,
    read_response=responses.read_response,
    stream_reader=responses.EventReader,
    unwrap=unwrap_raw_response,
    materialize=("input", "tools"),
)
EMBEDDINGS = Endpoint(
    name="openai.embeddings",
    read_request=_read_embeddings_request,
    read_response=_read_embeddings_response,
    unwrap=unwrap_raw_response,
)

_CHAT = "openai.resources.chat.completions"
_RESPONSES = "openai.resources.responses"
_EMBEDDINGS = "openai.resources.embeddings"


def _ask_for_stream_usage(kwargs: dict[str, Any]) -> None:
    """Opt-in (``inject_stream_usage=True``): a chat stream without
    ``stream_options`` gets ``include_usage``, so its usage is exact. The
    stream then ends with one extra chunk whose ``choices`` is empty."""
    if kwargs.get("stream") is True and not given(kwargs.get("stream_options")):
        kwargs["stream_options"] = {"include_usage": True}


class OpenAIInstrumentor(TokenKPIInstrumentor):
    """Instruments the ``openai`` SDK (entry point ``tokenkpi_openai``)."""

    instrumentation_scope = "otel_tokenkpi.instrumentors.openai"
    instruments = ("openai >= 1.40",)

    def patches(self) -> list[Patch]:
        table = []
        chat_endpoint = CHAT
        if self.options.get("inject_stream_usage"):
            chat_endpoint = dataclasses.replace(CHAT, adjust=_ask_for_stream_usage)
        for module, sync_cls, async_cls, endpoint, methods in (
            (_CHAT, "Completions", "AsyncCompletions", chat_endpoint, ("create", "parse")),
            (_RESPONSES, "Responses", "AsyncResponses", RESPONSES, ("create", "parse")),
            (_EMBEDDINGS, "Embeddings", "AsyncEmbeddings", EMBEDDINGS, ("create",)),
        ):
            for method in methods:
                table.append(Patch(module, sync_cls, method, endpoint))
                table.append(Patch(module, async_cls, method, endpoint))
        for module, sync_cls, async_cls in (
            (_CHAT, "Completions", "AsyncCompletions"),
            (_RESPONSES, "Responses", "AsyncResponses"),
        ):
            table.append(Patch(module, sync_cls, "stream", make_wrapper=stream_helper_wrapper))
            table.append(Patch(module, async_cls, "stream", make_wrapper=stream_helper_wrapper))
        paths = {"/chat/completions": chat_endpoint, "/responses": RESPONSES, "/embeddings": EMBEDDINGS}
        return table + request_path_patches("openai", paths)
