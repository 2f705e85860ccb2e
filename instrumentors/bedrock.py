"""Amazon Bedrock instrumentor: model calls made through ``boto3``'s ``bedrock-runtime`` client.

botocore generates its client classes at runtime; every generated method of every AWS client goes through
``botocore.client.BaseClient._make_api_call(operation_name, api_params)``. That one method is patched, and
the wrapper's first act is a frozenset membership test on the operation name: any other AWS call (S3,
DynamoDB, ...) goes straight to the original with one tuple index and one set lookup added
(``benchmarks/bedrock_patch_overhead.py`` measures it). Hooking client creation instead would miss clients
created before ``instrument()`` and need per-session event registration; the patch sees every client.

Instrumented operations of ``bedrock-runtime``: ``Converse``, ``ConverseStream`` (the event stream at
``response["stream"]`` is replaced by our proxy), ``InvokeModel`` and ``InvokeModelWithResponseStream``
with an Anthropic Messages body (``anthropic_version``; the response body is read and replaced by an
equivalent ``StreamingBody``, the response stream at ``response["body"]`` proxied). Other model families'
InvokeModel bodies are not parsed: their span carries what the call itself says (model id, operation,
server, duration, errors). SDK retries happen inside ``_make_api_call``: one span per user call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from otel_tokenkpi._safety import run_hook
from otel_tokenkpi.instrumentation import Patch, TokenKPIInstrumentor
from otel_tokenkpi.invocation import CallRequest, CallResult
from otel_tokenkpi.lifecycle import Endpoint, model_call_wrapper

from . import _anthropic_messages as anthropic_messages
from . import _bedrock_anthropic as anthropic
from . import _bedrock_converse as converse
from ._shapes import new_request, server_of

PROVIDER = "aws.bedrock"
SERVICE = "bedrock-runtime"
INSTRUMENTED_OPERATIONS = frozenset({"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"})
_INVOKE_OPERATIONS = frozenset({"InvokeModel", "InvokeModelWithResponseStream"})
_OPAQUE = ":opaque"  # endpoint-key suffix for InvokeModel bodies of other model families


@functools.lru_cache(maxsize=64)
def _server(endpoint_url: str | None) -> tuple[str | None, int | None]:
    return server_of(endpoint_url)


def _base_request(instance: Any, kwargs: dict[str, Any], operation: str = "chat") -> CallRequest:
    server = _server(getattr(getattr(instance, "meta", None), "endpoint_url", None))
    return new_request(operation, PROVIDER, kwargs["api_params"].get("modelId"), server)


def _read_converse(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return converse.read_request(_base_request(instance, kwargs), kwargs["api_params"], stream=False)


def _read_converse_stream(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return converse.read_request(_base_request(instance, kwargs), kwargs["api_params"], stream=True)


def _read_invoke(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return anthropic.read_request(_base_request(instance, kwargs), kwargs["body"], stream=False)


def _read_invoke_stream(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return anthropic.read_request(_base_request(instance, kwargs), kwargs["body"], stream=True)


def _read_opaque_invoke(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    """A body of another model family: not parsed. Bedrock model ids name embedding models ``*embed*``
    (amazon.titan-embed-*, cohere.embed-*); anything else is content generation."""
    model = kwargs["api_params"].get("modelId")
    is_embedding = isinstance(model, str) and "embed" in model.rsplit("/", 1)[-1].lower()
    request = _base_request(instance, kwargs, "embeddings" if is_embedding else "generate_content")
    request.content_known = False
    return request


def _not_read(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    return None, None


def _stream_at(key: str) -> Callable[[Any], tuple[Any, Callable[[Any], Any] | None]]:
    """An unwrap for a response dict whose event stream lives at ``result[key]`` (``stream`` for
    ConverseStream, ``body`` for InvokeModelWithResponseStream): our proxy goes there."""

    def unwrap(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
        if not isinstance(result, dict) or result.get(key) is None:
            return None, None

        def rewrap(proxy: Any) -> Any:
            result[key] = proxy
            return result

        return result[key], rewrap

    return unwrap


def _no_result(response: Any) -> CallResult:  # pragma: no cover - opaque endpoints never read a response
    return CallResult()


ENDPOINTS: dict[str, Endpoint] = {
    "Converse": Endpoint(name="bedrock.converse", read_request=_read_converse, read_response=converse.read_response),
    "ConverseStream": Endpoint(
        name="bedrock.converse_stream",
        read_request=_read_converse_stream,
        read_response=converse.read_response,
        stream_reader=converse.EventReader,
        unwrap=_stream_at("stream"),
    ),
    "InvokeModel": Endpoint(
        name="bedrock.invoke_model",
        read_request=_read_invoke,
        read_response=anthropic_messages.read_response,
        unwrap=anthropic.unwrap_invoke_response,
    ),
    "InvokeModelWithResponseStream": Endpoint(
        name="bedrock.invoke_model_stream",
        read_request=_read_invoke_stream,
        read_response=anthropic_messages.read_response,
        stream_reader=anthropic.ChunkReader,
        unwrap=_stream_at("body"),
    ),
    "InvokeModel" + _OPAQUE: Endpoint(
        name="bedrock.invoke_model_other", read_request=_read_opaque_invoke, read_response=_no_result, unwrap=_not_read
    ),
    "InvokeModelWithResponseStream" + _OPAQUE: Endpoint(
        name="bedrock.invoke_model_stream_other",
        read_request=_read_opaque_invoke,
        read_response=_no_result,
        unwrap=_not_read,
    ),
}


def _endpoint_key(operation: str, params: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    if operation not in _INVOKE_OPERATIONS:
        return operation, None
    body = anthropic.parse_body(params.get("body"))
    return (operation if body is not None else operation + _OPAQUE), body


def api_call_wrapper(recorder: Any) -> Callable[..., Any]:
    """The wrapper of ``BaseClient._make_api_call``: a set lookup for every AWS call, the model-call
    lifecycle for the four Bedrock Runtime operations."""
    calls = {key: model_call_wrapper(recorder, endpoint, is_async=False) for key, endpoint in ENDPOINTS.items()}

    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if (args[0] if args else kwargs.get("operation_name")) not in INSTRUMENTED_OPERATIONS:
            return wrapped(*args, **kwargs)
        operation = args[0] if args else kwargs["operation_name"]
        params = args[1] if len(args) > 1 else kwargs.get("api_params")
        service = getattr(getattr(instance, "_service_model", None), "service_name", None)
        if service != SERVICE or not isinstance(params, dict):
            return wrapped(*args, **kwargs)
        key, body = run_hook("bedrock.endpoint_key", _endpoint_key, operation, params, default=(None, None))
        if key is None:
            return wrapped(*args, **kwargs)

        def original(**_: Any) -> Any:  # botocore's own arguments, positional as other wrappers expect
            return wrapped(*args, **kwargs)

        return calls[key](original, instance, (), {"api_params": params, "body": body})

    return wrapper


class BedrockInstrumentor(TokenKPIInstrumentor):
    """Instruments Amazon Bedrock Runtime calls made with boto3 (entry point ``tokenkpi_bedrock``)."""

    instrumentation_scope = "otel_tokenkpi.instrumentors.bedrock"
    # Converse and ConverseStream appeared in botocore 1.34.116 (boto3 1.34.116, 2024-05-30).
    instruments = ("botocore >= 1.34.116",)

    def patches(self) -> list[Patch]:
        return [Patch("botocore.client", "BaseClient", "_make_api_call", make_wrapper=api_call_wrapper)]
