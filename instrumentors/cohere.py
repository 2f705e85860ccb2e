"""Cohere instrumentor: where the ``cohere`` SDK's v2 model calls live.

``cohere.ClientV2`` / ``AsyncClientV2`` subclass ``cohere.v2.client.V2Client`` / ``AsyncV2Client`` (and the
v1 client, whose methods the v2 ones shadow); ``cohere.Client().v2`` is a ``V2Client`` too, and so are the
Bedrock, SageMaker and OCI v2 clients. So the v2 methods are patched once, on those two classes: ``chat``,
``chat_stream`` and ``embed``, all keyword-only. The v1 API (``Client.chat``) is not instrumented.

``chat_stream`` is a generator function (``AsyncV2Client.chat_stream`` an async generator function): calling
it sends nothing; the request goes out at the first ``next()``. The span starts at the call and the stream
proxy sees the SDK's typed events; an HTTP error surfaces at the first ``next()`` and ends the span with
``error.type``. Only one layout is known (cohere >= 5.9.3 has all three methods at these paths; 5.8.0 to 5.9.2
lack ``embed``, which is then skipped with one warning); the kind of each stream method is checked rather
than assumed, so a coroutine-returning-iterator layout would be wrapped as such. 5.9.3's ``embed`` takes one
``request=`` object where later releases take keywords: both are read. Before 5.16 the SDK's ``chat_stream``
swallows ``GeneratorExit`` (a bare ``except:`` round its ``yield``), so closing a stream early raises
``RuntimeError`` with or without us; the proxy passes it on and still ends the span.

A client made before ``instrument()`` keeps the plain methods: ``Client.__init__`` binds ``chat`` and
``chat_stream`` onto the instance (``validate_args``, ``experimental_kwarg_decorator``). From cohere 5.16 the
v2 methods delegate to a raw client (``cohere.v2.raw_client.RawV2Client`` / ``AsyncRawV2Client``) looked up
at call time, so its ``chat`` and ``embed`` (returning ``HttpResponse`` objects whose ``data`` is the
response) are patched too: they catch those clients, and stay quiet under a patched v2 method. Its
``chat_stream`` (a context manager that sends on enter and yields an ``HttpResponse`` whose ``data`` is the
event stream) is then the only patch of streams: the v2 ``chat_stream`` is a generator that reaches it
lazily, at the first ``next()``, so the span starts when the request is sent. The raw methods are given every
parameter, unset ones as the SDK's ``OMIT`` (``...``): those are dropped before reading. Before 5.16 there is
no such seam (the v2 methods call the HTTP client themselves): a client made before ``instrument()`` records
only ``embed`` there (a documented limit).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Any

from otel_tokenkpi.helper_wrappers import entered_call_wrapper
from otel_tokenkpi.instrumentation import Patch, TokenKPIInstrumentor
from otel_tokenkpi.invocation import CallRequest, CallResult
from otel_tokenkpi.lifecycle import Endpoint

from . import _cohere_chat as chat
from ._shapes import as_list, get, new_request, server_of

PROVIDER = "cohere"
_MODULE = "cohere.v2.client"
_RAW_MODULE = "cohere.v2.raw_client"  # cohere >= 5.16
# Clients that reach Cohere models through another provider's endpoint (semconv provider names).
_PROVIDER_BY_CLIENT_PREFIX = (("BedrockClient", "aws.bedrock"),)


def provider_for(client: Any) -> str:
    """By the client's class; a raw client (which has no Bedrock subclass) by its endpoint's host."""
    name = type(client).__name__
    for prefix, provider in _PROVIDER_BY_CLIENT_PREFIX:
        if name.startswith(prefix):
            return provider
    if name.endswith("RawV2Client"):
        host = _server(client)[0] or ""
        if host.startswith("bedrock-runtime.") and host.endswith(".amazonaws.com"):
            return "aws.bedrock"
    return PROVIDER


def _server(instance: Any) -> tuple[str | None, int | None]:
    """From the client wrapper's base URL (``ClientV2`` holds it; a bare ``V2Client`` through its raw client)."""
    wrapper = getattr(instance, "_client_wrapper", None) or get(get(instance, "_raw_client"), "_client_wrapper")
    get_base_url = getattr(wrapper, "get_base_url", None)
    return server_of(get_base_url()) if callable(get_base_url) else (None, None)


def _base(operation: str, instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return new_request(operation, provider_for(instance), kwargs.get("model"), _server(instance))


def _read_chat(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return chat.read_request(_base("chat", instance, kwargs), kwargs, stream=False)


def _read_chat_stream(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return chat.read_request(_base("chat", instance, kwargs), kwargs, stream=True)


def _read_embed_request(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    """Keyword arguments from cohere 5.9.4 on; 5.9.3's ``embed`` takes one ``request=`` object instead
    (an ``EmbedRequestV2``: ``SearchDocumentEmbedRequestV2(model=..., texts=..., embedding_types=...)`` etc.)."""
    fields = kwargs if "model" in kwargs else kwargs.get("request")
    request = new_request("embeddings", provider_for(instance), get(fields, "model"), _server(instance))
    formats = [f for f in as_list(get(fields, "embedding_types")) if isinstance(f, str)]
    if formats:
        request.params["gen_ai.request.encoding_formats"] = formats
    return request


def _read_embed_response(response: Any) -> CallResult:
    """``meta.billed_units.input_tokens`` (processed: ``meta.tokens.input_tokens``)."""
    result = CallResult(response_id=get(response, "id") or None)
    chat.read_usage(get(response, "meta"), result)
    return result


CHAT = Endpoint(
    name="cohere.chat",
    read_request=_read_chat,
    read_response=chat.read_response,
    materialize=("messages", "tools", "documents"),
)
CHAT_STREAM = Endpoint(
    name="cohere.chat_stream",
    read_request=_read_chat_stream,
    read_response=chat.read_response,
    stream_reader=chat.EventReader,
    materialize=("messages", "tools", "documents"),
)
EMBED = Endpoint(name="cohere.embed", read_request=_read_embed_request, read_response=_read_embed_response)


Reader = Callable[[Any, dict[str, Any]], "CallRequest | None"]


def _given(read: Reader) -> Reader:
    """``read`` over the raw client's kwargs, without the parameters left at the SDK's ``OMIT`` (``...``)."""
    return lambda instance, kwargs: read(instance, {k: v for k, v in kwargs.items() if v is not Ellipsis})


def _unwrap_http_response(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    """A raw method's ``HttpResponse``: its ``data`` is read (a stream: our proxy goes in its place)."""

    def rewrap(proxy: Any) -> Any:
        result._data = proxy
        return result

    return getattr(result, "data", None), rewrap


def _raw(endpoint: Endpoint) -> Endpoint:
    return dataclasses.replace(endpoint, read_request=_given(endpoint.read_request), unwrap=_unwrap_http_response)


RAW_CHAT, RAW_CHAT_STREAM, RAW_EMBED = _raw(CHAT), _raw(CHAT_STREAM), _raw(EMBED)


class CohereInstrumentor(TokenKPIInstrumentor):
    """Instruments the ``cohere`` SDK's v2 client (entry point ``tokenkpi_cohere``)."""

    instrumentation_scope = "otel_tokenkpi.instrumentors.cohere"
    instruments = ("cohere >= 5.9.3",)

    def patches(self) -> list[Patch]:
        raw = _has_raw_client()
        table = []
        for cls_name in ("V2Client", "AsyncV2Client"):
            for method, endpoint in (("chat", CHAT), ("chat_stream", CHAT_STREAM), ("embed", EMBED)):
                if not (raw and method == "chat_stream"):  # a lazy generator: its raw stream is the one seam
                    table.append(Patch(_MODULE, cls_name, method, endpoint))
        if raw:
            for cls_name in ("RawV2Client", "AsyncRawV2Client"):
                table.append(Patch(_RAW_MODULE, cls_name, "chat", RAW_CHAT))
                table.append(Patch(_RAW_MODULE, cls_name, "embed", RAW_EMBED))
                stream = entered_call_wrapper(RAW_CHAT_STREAM)
                table.append(Patch(_RAW_MODULE, cls_name, "chat_stream", make_wrapper=stream))
        return table


def _has_raw_client() -> bool:
    try:
        return importlib.util.find_spec(_RAW_MODULE) is not None
    except (ImportError, ValueError):  # cohere missing or hidden
        return False
