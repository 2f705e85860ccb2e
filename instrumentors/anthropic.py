"""Anthropic instrumentor: where the ``anthropic`` SDK's model calls live.

Patched, sync and async, on the GA ``messages`` resource and (where the installed version has it) the
beta one: ``create`` (plain and ``stream=True``), ``parse``, and ``stream()``. ``count_tokens`` is not a
model call: no span.

``messages.stream()`` does not go through ``create``: it builds the request and returns a
``MessageStreamManager`` that sends it on ``__enter__`` and wraps the raw event stream in a
``MessageStream``. So ``stream()`` is wrapped with the lifecycle's deferred-call wrapper: the manager's
pending request is swapped for one that runs through the same span lifecycle as ``create(stream=True)``
and hands the ``MessageStream`` our stream proxy. Every way of reading the helper (``text_stream``,
``get_final_message()``, ``until_done()``, iteration) pulls events through the proxy, and every way of
leaving it (exhaustion, ``close()``, the context manager's exit, garbage collection) ends the one span.

The SDK's own tracing (anthropic >= 2) is not touched: see ``tests/test_anthropic_coexistence.py``.
"""

from __future__ import annotations

from typing import Any

from otel_tokenkpi.helper_wrappers import deferred_call_wrapper
from otel_tokenkpi.instrumentation import Patch, TokenKPIInstrumentor
from otel_tokenkpi.invocation import CallRequest
from otel_tokenkpi.lifecycle import Endpoint

from . import _anthropic_messages as messages
from ._shapes import new_request
from ._stainless import client_and_server, request_path_patches, unwrap_raw_api_response

# Clients that reach Claude through another provider's endpoint (semconv provider names).
_PROVIDER_BY_CLIENT_PREFIX = (
    ("AnthropicBedrock", "aws.bedrock"),
    ("AsyncAnthropicBedrock", "aws.bedrock"),
    ("AnthropicVertex", "gcp.vertex_ai"),
    ("AsyncAnthropicVertex", "gcp.vertex_ai"),
)


def provider_for(client: Any) -> str:
    name = type(client).__name__
    for prefix, provider in _PROVIDER_BY_CLIENT_PREFIX:
        if name.startswith(prefix):
            return provider
    return "anthropic"


def _read_request(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    client, server = client_and_server(instance)
    return messages.read_request(new_request("chat", provider_for(client), kwargs.get("model"), server), kwargs)


def defer_stream_request(manager: Any, wrap: Any) -> bool:
    """Swap a stream manager's pending request (``MessageStreamManager.__api_request``, name-mangled
    per class: GA, beta, sync, async) for ``wrap(pending)``."""
    for name, pending in vars(manager).items():
        if name.endswith("__api_request"):
            setattr(manager, name, wrap(pending))
            return True
    return False


MESSAGES = Endpoint(
    name="anthropic.messages",
    read_request=_read_request,
    read_response=messages.read_response,
    stream_reader=messages.EventReader,
    unwrap=unwrap_raw_api_response,
    materialize=("messages", "tools", "system"),
)

_RESOURCES = ("anthropic.resources.messages", "anthropic.resources.beta.messages")


def _deferred(is_async: bool) -> Any:
    return lambda recorder: deferred_call_wrapper(recorder, MESSAGES, defer_stream_request, is_async=is_async)


class AnthropicInstrumentor(TokenKPIInstrumentor):
    """Instruments the ``anthropic`` SDK (entry point ``tokenkpi_anthropic``)."""

    instrumentation_scope = "otel_tokenkpi.instrumentors.anthropic"
    instruments = ("anthropic >= 0.43",)

    def patches(self) -> list[Patch]:
        table = []
        for module in _RESOURCES:
            for cls, is_async in (("Messages", False), ("AsyncMessages", True)):
                table.append(Patch(module, cls, "create", MESSAGES))
                table.append(Patch(module, cls, "parse", MESSAGES))
                table.append(Patch(module, cls, "stream", make_wrapper=_deferred(is_async)))
        # A create bound before instrument() is caught on the request path (the beta resource posts to
        # /v1/messages?beta=true); retries are noted there.
        return table + request_path_patches("anthropic", {"/v1/messages": MESSAGES})
