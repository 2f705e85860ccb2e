"""Google GenAI instrumentor: where the ``google-genai`` SDK's model calls live.

One span per model request. The public ``Models.generate_content`` / ``generate_content_stream``
(and ``AsyncModels``) may send several HTTP requests per user call: automatic function calling
(AFC) sends the model's function calls' results back in a new request, up to
``maximum_remote_calls`` times, and automatic continuation follows ``continuation_token``s. Each of
those requests is billed and carries its own usage, so each is a model call: we patch the per-request
methods the public ones call once per request (``_generate_content``, ``_generate_content_stream``),
which also covers ``Chat.send_message``. The spans of one AFC call are siblings under the caller's
span, and the Python functions the SDK runs in between are not inside any of them. Should an SDK
version lack those private methods, the public ones are patched instead (one span per user call).

``embed_content`` (one request per call) is patched as it is. The async stream method is a coroutine
that returns an async iterator: the shared async wrapper awaits it and proxies the iterator.

The Interactions API (``client.interactions.create``, sync and ``client.aio``, plain and streamed): the
public ``create`` may send several requests (automatic continuation: each hop is billed and reports its
own usage), each through the generated resource's ``create`` (``google.genai._gaos.interactions
.Interactions`` / ``AsyncInteractions``, reached with ``super()``), which is patched: one span per
request. Releases without that module (before the Interactions client moved there) are not patched there.
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

from otel_tokenkpi.bodies import UnreadBody
from otel_tokenkpi.instrumentation import Patch, TokenKPIInstrumentor
from otel_tokenkpi.invocation import CallRequest, CallResult, Usage
from otel_tokenkpi.lifecycle import Endpoint

from . import _google_genai_interactions as interaction_shapes
from . import _google_genai_request as request_shapes
from . import _google_genai_response as response_shapes
from ._shapes import as_list, get, new_request, server_of

GEMINI, VERTEX_AI = "gcp.gemini", "gcp.vertex_ai"
_MODELS = "google.genai.models"
_PER_REQUEST = ("_generate_content", "_generate_content_stream")
_INTERACTIONS = "google.genai._gaos.interactions"
_PUBLIC = ("generate_content", "generate_content_stream")


def _base_request(operation: str, instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    """Provider from the client's mode; server from the request's or the client's base URL."""
    api_client = getattr(instance, "_api_client", None)
    base_url = get(get(kwargs.get("config"), "http_options"), "base_url")
    if not base_url:
        base_url = get(get(api_client, "_http_options"), "base_url")
    server = server_of(base_url) if base_url else (None, None)
    return new_request(operation, VERTEX_AI if get(api_client, "vertexai") else GEMINI, kwargs.get("model"), server)


def _read_generate(instance: Any, kwargs: dict[str, Any], stream: bool) -> CallRequest:
    request = _base_request("generate_content", instance, kwargs)
    config = kwargs.get("config")
    request.params = request_shapes.request_params(config, stream)
    request.messages = request_shapes.read_messages(kwargs.get("contents"), config)
    request.tools = request_shapes.read_tools(get(config, "tools"))
    request.stream = stream
    return request


def _read_generate_plain(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return _read_generate(instance, kwargs, stream=False)


def _read_generate_stream(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return _read_generate(instance, kwargs, stream=True)


def _read_embeddings_request(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return _base_request("embeddings", instance, kwargs)


def _read_embeddings_response(response: Any) -> CallResult:
    """Gemini API: ``usage_metadata.prompt_token_count`` where reported; Vertex AI: the sum of the
    embeddings' ``statistics.token_count``."""
    tokens = get(get(response, "usage_metadata"), "prompt_token_count")
    if tokens is None:
        counts = [get(get(e, "statistics"), "token_count") for e in as_list(get(response, "embeddings"))]
        numbers = [int(c) for c in counts if isinstance(c, (int, float))]
        tokens = sum(numbers) if numbers else None
    return CallResult(usage=Usage(input_tokens=tokens) if tokens is not None else None)


GENERATE = Endpoint(
    name="google_genai.generate_content",
    read_request=_read_generate_plain,
    read_response=response_shapes.read_response,
)
GENERATE_STREAM = Endpoint(
    name="google_genai.generate_content_stream",
    read_request=_read_generate_stream,
    read_response=response_shapes.read_response,
    stream_reader=response_shapes.ChunkReader,
)
EMBEDDINGS = Endpoint(
    name="google_genai.embed_content",
    read_request=_read_embeddings_request,
    read_response=_read_embeddings_response,
)


def _read_interaction_request(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    body = interaction_shapes.request_body(kwargs)
    model = get(body, "model") or get(body, "agent")
    return interaction_shapes.read_request(_base_request("chat", instance, {"model": model}), kwargs)


def _unwrap_interaction(result: Any) -> tuple[Any, Any]:
    """An ``Interaction`` as it is. A ``Stream`` yields what its ``generator`` attribute yields, and the SDK
    re-plumbs that attribute (error translation, automatic continuation across hops), so our proxy goes
    there, not around the stream. A raw or streamed response wrapper (``with_raw_response`` /
    ``with_streaming_response``) is read by its HTTP body, as the user reads it."""
    http_response = getattr(result, "http_response", None)
    if http_response is not None and hasattr(result, "_parser"):
        return UnreadBody(http_response), None
    generator = getattr(result, "generator", None)
    if generator is not None and (hasattr(generator, "__next__") or hasattr(generator, "__anext__")):

        def rewrap(proxy: Any) -> Any:
            result.generator = proxy
            return result

        return generator, rewrap
    return result, None


INTERACTION = Endpoint(
    name="google_genai.interactions",
    read_request=_read_interaction_request,
    read_response=interaction_shapes.read_response,
    stream_reader=interaction_shapes.EventReader,
    unwrap=_unwrap_interaction,
)


def _has_interactions() -> bool:
    try:
        return importlib.util.find_spec(_INTERACTIONS) is not None
    except (ImportError, ValueError):
        return False


def _generate_methods() -> tuple[str, str]:
    """The per-request methods when this SDK version has them (async ones as coroutine functions,
    which the async wrapper can stand in for), else the public ones."""
    try:
        from google.genai import models
    except ImportError:
        return _PUBLIC
    for cls in (models.Models, models.AsyncModels):
        if not all(callable(getattr(cls, name, None)) for name in _PER_REQUEST):
            return _PUBLIC
    if not all(inspect.iscoroutinefunction(getattr(models.AsyncModels, name)) for name in _PER_REQUEST):
        return _PUBLIC
    return _PER_REQUEST


class GoogleGenAIInstrumentor(TokenKPIInstrumentor):
    """Instruments the ``google-genai`` SDK (entry point ``tokenkpi_google_genai``)."""

    instrumentation_scope = "otel_tokenkpi.instrumentors.google_genai"
    # 1.8.0 is the first whose usage_metadata keeps thoughts_token_count / tool_use_prompt_token_count (older
    # releases drop them: output and input tokens would be undercounted) and whose stream errors keep the message.
    instruments = ("google-genai >= 1.8.0",)

    def patches(self) -> list[Patch]:
        generate, stream = _generate_methods()
        table = []
        for method, endpoint in ((generate, GENERATE), (stream, GENERATE_STREAM), ("embed_content", EMBEDDINGS)):
            table.append(Patch(_MODELS, "Models", method, endpoint))
            table.append(Patch(_MODELS, "AsyncModels", method, endpoint))
        if _has_interactions():
            table.append(Patch(_INTERACTIONS, "Interactions", "create", INTERACTION))
            table.append(Patch(_INTERACTIONS, "AsyncInteractions", "create", INTERACTION))
        return table
