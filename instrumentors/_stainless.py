"""Shapes shared by Stainless-generated SDKs (openai, anthropic, groq).

Resources keep their client at ``_client``, which knows its ``base_url``.

``with_raw_response`` returns a ``LegacyAPIResponse`` whose ``parse()``
builds the model object (or the stream) once and caches it in
``_parsed_by_type``. We parse it (the user's later ``parse()`` gets the same
cached object) and, for streams, put our proxy into that cache so the user's
``parse()`` returns the proxy and we still see every chunk.

SDKs without ``LegacyAPIResponse`` (groq, anthropic 2.x) return an
``APIResponse`` from ``with_raw_response`` too; its request carries
``X-Stainless-Raw-Response: raw`` (``with_streaming_response`` sends
``stream``) and its body is already read (or is an SSE stream).
:func:`unwrap_raw_api_response` parses and caches it the same way.

``with_streaming_response`` returns an ``APIResponse`` whose body is unread: it is the user's to read,
so the lifecycle reads it alongside them (:class:`~otel_tokenkpi.bodies.UnreadBody`).

Every API call of a client goes through ``SyncAPIClient.request`` / ``AsyncAPIClient.request`` (looked up
on the class at call time), with the request's path at ``options.url`` and its JSON body, as the SDK
will send it, at ``options.json_data``. :func:`request_route` picks our endpoint by that path, so a
``create`` bound before ``instrument()`` (instructor's ``from_openai``, a cached ``with_raw_response``)
still gets its span there. The SDK retries inside ``request``: it calls ``_sleep_for_retry`` (older
releases: ``_retry_request``) once per failed attempt it sends again, from inside the ``except`` block
of a transport error; :func:`retry_failure` reads the attempt's status or error there.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from otel_tokenkpi.bodies import UnreadBody
from otel_tokenkpi.helper_wrappers import retry_wrapper
from otel_tokenkpi.instrumentation import Patch
from otel_tokenkpi.lifecycle import Endpoint, Route

from ._shapes import server_of

_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"


def client_and_server(owner: Any) -> tuple[Any, tuple[str | None, int | None]]:
    """The client (a resource's ``_client``, or the client itself on the request path) and the
    ``(host, port)`` of its ``base_url``: the client tells the provider (Azure, Bedrock, Vertex
    subclasses), the URL the server. (A client's own ``_client`` is its httpx client: a client is told
    from a resource by its ``base_url``.)"""
    client = owner if hasattr(owner, "base_url") else getattr(owner, "_client", None)
    return client, server_of(getattr(client, "base_url", None))


def request_route(endpoints: Mapping[str, Endpoint]) -> Route:
    """The route of ``SyncAPIClient.request`` / ``AsyncAPIClient.request(cast_to, options, ...)``: a POST
    to one of ``endpoints``' paths (query string aside: anthropic's beta messages add ``?beta=true``) is
    that endpoint's model call, read from its JSON body; any other request passes through."""

    def route(client: Any, args: tuple, kwargs: dict) -> tuple[Endpoint, dict[str, Any]] | None:
        options = args[1] if len(args) > 1 else kwargs.get("options")
        url = getattr(options, "url", None)
        if type(url) is not str:
            return None
        endpoint = endpoints.get(url.partition("?")[0])
        if endpoint is None or str(getattr(options, "method", "")).lower() != "post":
            return None
        body = getattr(options, "json_data", None)
        return (endpoint, body) if isinstance(body, dict) else None

    return route


def retry_failure(client: Any, args: tuple, kwargs: dict) -> tuple[int | None, str | None]:
    """A retried attempt's HTTP status and ``error.type`` (semconv: the status code as a string, or the
    exception's class name when no response came). ``_sleep_for_retry`` is given the failed ``response``
    (None after a transport error); both it and ``_retry_request`` run inside the ``except`` block of
    the attempt's exception, when there is one."""
    response = kwargs.get("response")
    status = getattr(response, "status_code", None)
    if not isinstance(status, int) and response is None:
        error = sys.exc_info()[1]
        status = getattr(getattr(error, "response", None), "status_code", None)
        if not isinstance(status, int):
            return None, type(error).__qualname__ if error is not None else None
    return (status, str(status)) if isinstance(status, int) else (None, None)


def unwrap_raw_response(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    kind = type(result).__name__
    if kind in ("APIResponse", "AsyncAPIResponse"):
        # with_streaming_response: the body is the user's to read; the lifecycle reads it as they do.
        http_response = getattr(result, "http_response", None)
        return (UnreadBody(http_response) if http_response is not None else None), None
    if kind != "LegacyAPIResponse":
        return result, None
    cache = getattr(result, "_parsed_by_type", None)
    if not isinstance(cache, dict):
        return result, None
    return result.parse(), _cache_rewrap(cache, result._cast_to, result)


def unwrap_raw_api_response(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    """:func:`unwrap_raw_response`, and a with_raw_response ``APIResponse`` is read too (SDKs whose
    ``with_raw_response`` returns one, e.g. groq)."""
    if type(result).__name__ in ("APIResponse", "AsyncAPIResponse") and _raw_response_mode(result) == "raw":
        return _parse_raw_api_response(result)
    return unwrap_raw_response(result)


def _raw_response_mode(result: Any) -> str | None:
    """``raw`` (with_raw_response) or ``stream`` (with_streaming_response), as the SDK marked the request."""
    try:
        return result.http_response.request.headers.get(_RAW_RESPONSE_HEADER)
    except (AttributeError, RuntimeError):
        return None


def _parse_raw_api_response(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    """Parse a with_raw_response ``APIResponse`` into its cache, as its own ``parse()`` would (the async
    ``parse()`` is a coroutine; ``_parse`` is the sync step both share). Left alone when a post-parser
    is set or the SDK lacks the cache: nothing read."""
    cache = getattr(result, "_parsed_by_type", None)
    options = getattr(result, "_options", None)
    if not isinstance(cache, dict) or callable(getattr(options, "post_parser", None)):
        return None, None
    key = result._cast_to
    parsed = cache.get(key)
    if parsed is None:
        parsed = cache[key] = result._parse()
    return parsed, _cache_rewrap(cache, key, result)


def _cache_rewrap(cache: dict[Any, Any], key: Any, result: Any) -> Callable[[Any], Any]:
    """Our stream proxy goes where the user's ``parse()`` finds the stream; the user gets ``result``."""

    def rewrap(proxy: Any) -> Any:
        cache[key] = proxy
        return result

    return rewrap


def request_path_patches(package: str, endpoints: Mapping[str, Endpoint]) -> list[Patch]:
    """The request path of ``package``'s clients (sync and async), routed to ``endpoints`` by path, and
    the SDK's per-retry hook (``_sleep_for_retry``, or ``_retry_request`` in releases before it)."""
    module = f"{package}._base_client"
    route = request_route(endpoints)
    table = []
    for cls in ("SyncAPIClient", "AsyncAPIClient"):
        table.append(Patch(module, cls, "request", route=route))
        table.append(Patch(module, cls, _retry_hook(module, cls), make_wrapper=_retry_wrapper))
    return table


def _retry_hook(module: str, cls: str) -> str:
    try:
        owner = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        return "_sleep_for_retry"  # the patch then reports what is missing
    return "_sleep_for_retry" if hasattr(owner, "_sleep_for_retry") else "_retry_request"


def _retry_wrapper(recorder: Any) -> Callable[..., Any]:
    return retry_wrapper(retry_failure)
