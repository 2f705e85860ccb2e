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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._shapes import server_of

_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"


def client_and_server(resource: Any) -> tuple[Any, tuple[str | None, int | None]]:
    """A resource's client (``resource._client``) and the ``(host, port)`` of its ``base_url``: the
    client tells the provider (Azure, Bedrock, Vertex subclasses), the URL the server."""
    client = getattr(resource, "_client", None)
    return client, server_of(getattr(client, "base_url", None))


def unwrap_raw_response(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    kind = type(result).__name__
    if kind in ("APIResponse", "AsyncAPIResponse"):
        # with_streaming_response: the body is the user's to read; reading it would change
        # their call. The span records the request only (None: nothing was read).
        return None, None
    if kind != "LegacyAPIResponse":
        return result, None
    cache = getattr(result, "_parsed_by_type", None)
    if not isinstance(cache, dict):
        return result, None
    return result.parse(), _cache_rewrap(cache, result._cast_to, result)


def unwrap_raw_api_response(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    """:func:`unwrap_raw_response`, and a with_raw_response ``APIResponse`` is read too (SDKs whose
    ``with_raw_response`` returns one, e.g. groq); ``with_streaming_response`` bodies stay the user's."""
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
