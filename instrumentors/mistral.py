"""Mistral instrumentor: where the ``mistralai`` SDK's model calls live.

Patched (mistralai >= 2.0, the ``mistralai.client`` layout): ``Chat.complete`` / ``complete_async``
(one JSON answer), ``Chat.stream`` / ``stream_async`` (an ``EventStream`` / ``EventStreamAsync`` of
``CompletionEvent``s, which our stream proxy wraps, keeping its iteration, context manager and
``close()``, which the SDK has from 2.10), and ``Embeddings.create`` / ``create_async``. ``Chat.parse*``
call ``complete`` / ``stream`` themselves and get their span from them.

mistralai 1.x kept the same classes at ``mistralai.chat`` / ``mistralai.embeddings`` and returned plain
generators from ``stream``; it is not instrumented (one warning), and neither are the Azure and GCP
clients (``mistralai.azure.client``, ``mistralai.gcp.client``).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from otel_tokenkpi import semconv as sc
from otel_tokenkpi._safety import log_once
from otel_tokenkpi.instrumentation import Patch, TokenKPIInstrumentor
from otel_tokenkpi.invocation import CallRequest, CallResult, ContextItem, Usage
from otel_tokenkpi.lifecycle import Endpoint

from . import _mistral_chat as chat
from ._shapes import get, new_request, param_number, server_of

PROVIDER = "mistral_ai"
_CHAT, _EMBEDDINGS = "mistralai.client.chat", "mistralai.client.embeddings"


def _server(instance: Any, kwargs: dict[str, Any]) -> tuple[str | None, int | None]:
    """The per-call ``server_url`` if given, else the client's (``server_url`` or its named server)."""
    url = kwargs.get("server_url")
    if not isinstance(url, str) or not url:
        config = getattr(instance, "sdk_configuration", None)
        try:
            url = config.get_server_details()[0] if config is not None else None
        except Exception:  # noqa: BLE001 - an invalid server name: the SDK itself will say so
            url = None
    return server_of(url) if url else (None, None)


def _base_request(operation: str, instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return new_request(operation, PROVIDER, kwargs.get("model"), _server(instance, kwargs))


def _read_complete_request(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return chat.read_request(_base_request("chat", instance, kwargs), kwargs, stream=False)


def _read_stream_request(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return chat.read_request(_base_request("chat", instance, kwargs), kwargs, stream=True)


def _read_embeddings_request(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    request = _base_request("embeddings", instance, kwargs)
    fmt = kwargs.get("encoding_format")
    if isinstance(fmt, str):
        request.params[sc.REQUEST_ENCODING_FORMATS] = [fmt]
    dimensions = param_number(kwargs.get("output_dimension"))
    if isinstance(dimensions, int):
        request.params["gen_ai.embeddings.dimension.count"] = dimensions
    # The inputs, for the repeated-request rule (embeddings are never counted or captured).
    inputs = kwargs.get("inputs")
    if isinstance(inputs, str):
        request.messages = [ContextItem("user", inputs)]
    elif isinstance(inputs, list) and all(isinstance(text, str) for text in inputs):
        request.messages = [ContextItem("user", text) for text in inputs]
    else:
        request.content_known = False
    return request


def _read_embeddings_response(response: Any) -> CallResult:
    usage = get(response, "usage")
    tokens = get(usage, "prompt_tokens")
    return CallResult(
        response_id=get(response, "id") or None,
        response_model=get(response, "model") or None,
        usage=Usage(input_tokens=tokens) if isinstance(tokens, int) else None,
    )


COMPLETE = Endpoint(
    name="mistral.chat.complete",
    read_request=_read_complete_request,
    read_response=chat.read_response,
    materialize=("messages", "tools"),
)
STREAM = Endpoint(
    name="mistral.chat.stream",
    read_request=_read_stream_request,
    read_response=chat.read_response,
    stream_reader=chat.ChunkReader,
    materialize=("messages", "tools"),
)
EMBEDDINGS = Endpoint(
    name="mistral.embeddings",
    read_request=_read_embeddings_request,
    read_response=_read_embeddings_response,
    materialize=("inputs",),
)


def _has_client_layout() -> bool:
    try:
        return importlib.util.find_spec(_CHAT) is not None
    except ImportError:  # no mistralai at all
        return False


class MistralInstrumentor(TokenKPIInstrumentor):
    """Instruments the ``mistralai`` SDK (entry point ``tokenkpi_mistral``)."""

    instrumentation_scope = "otel_tokenkpi.instrumentors.mistral"
    instruments = ("mistralai >= 2.0.0",)

    def patches(self) -> list[Patch]:
        if not _has_client_layout():
            log_once(
                "mistral:layout",
                message="otel-tokenkpi: mistralai.client not found (mistralai < 2.0 or not installed); "
                "Mistral calls are not instrumented",
            )
            return []
        table = []
        for module, cls, methods in (
            (_CHAT, "Chat", (("complete", COMPLETE), ("stream", STREAM))),
            (_EMBEDDINGS, "Embeddings", (("create", EMBEDDINGS),)),
        ):
            for method, endpoint in methods:
                table.append(Patch(module, cls, method, endpoint))
                table.append(Patch(module, cls, f"{method}_async", endpoint))
        return table
