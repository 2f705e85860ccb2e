"""Shapes shared by Stainless-generated SDKs (openai, anthropic, groq).

Resources keep their client at ``_client``, which knows its ``base_url``.

``with_raw_response`` returns a ``LegacyAPIResponse`` whose ``parse()``
builds the model object (or the stream) once and caches it in
``_parsed_by_type``. We parse it (the user's later ``parse()`` gets the same
cached object) and, for streams, put our proxy into that cache so the user's
``parse()`` returns the proxy and we still see every chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._shapes import server_of


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
    parsed = result.parse()
    key = result._cast_to

    def rewrap(proxy: Any) -> Any:
        cache[key] = proxy
        return result

    return parsed, rewrap
