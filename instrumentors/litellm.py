"""LiteLLM instrumentor: one span per ``litellm.completion`` / ``acompletion`` / ``embedding`` /
``aembedding`` call, whatever provider LiteLLM routes it to.

Where the calls live (every supported litellm has the first four; the dispatch modules came in 1.103):

- ``litellm.completion`` & co, the functions users call. In recent releases they are not
  ``litellm.main.completion`` but public dispatchers (``litellm.chat_completions.dispatch``,
  ``litellm.embeddings.dispatch``) that route each call to a native bridge or to the Python
  implementation, which they captured at import as ``_PYTHON_COMPLETION`` & co. Patching
  ``litellm.main.completion`` alone would miss every call; patching only the public names would
  miss a ``from litellm import completion`` done before ``instrument()``. So both are patched,
  and the captured references too: every entry reaches one of them, and a nested patched call is
  the same call (the lifecycle's ``IN_MODEL_CALL`` guard), so there is exactly one span.
- ``litellm.main.completion`` & co, which LiteLLM's own helpers call (``completion_with_retries``,
  ``batch_completion``, ``acompletion``'s worker thread).

LiteLLM reaches providers through the openai SDK (``client.post``, or ``embeddings.create`` when
an ``encoding_format`` is given) or httpx, inside the patched call: retries (``num_retries``) and
fallbacks run inside it too, so the one span covers them, and our OpenAI instrumentor's wrappers
stay quiet there. Streams are proxied like any other.

Importing litellm takes seconds (and, without ``LITELLM_LOCAL_MODEL_COST_MAP``, a network fetch),
so ``instrument()`` never imports it: the patches are applied when the user imports it.
"""

from __future__ import annotations

import sys
from typing import Any

from otel_tokenkpi.instrumentation import Patch, TokenKPIInstrumentor
from otel_tokenkpi.invocation import CallRequest
from otel_tokenkpi.lifecycle import Endpoint

from . import _litellm_shapes as shapes
from ._shapes import new_request, read_openai_embeddings_request, server_of

# (model, custom_llm_provider, api_base) -> (model without provider prefix, LiteLLM provider, api_base)
_ROUTES: dict[tuple[str, str | None, str | None], tuple[str, str, str | None]] = {}
_MAX_ROUTES = 1024


def route(model: str, custom_llm_provider: Any, api_base: Any) -> tuple[str, str, str | None]:
    """How LiteLLM routes ``model``: ``get_llm_provider`` is pure routing, but prints a banner for a
    model it cannot route (the user's call then fails with the same banner), so answers are kept."""
    custom = custom_llm_provider if isinstance(custom_llm_provider, str) else None
    base = api_base if isinstance(api_base, str) else None
    key = (model, custom, base)
    known = _ROUTES.get(key)
    if known is not None:
        return known
    try:
        bare, provider, _, resolved_base = sys.modules["litellm"].get_llm_provider(
            model=model, custom_llm_provider=custom, api_base=base
        )
        answer = (str(bare), str(provider), resolved_base if isinstance(resolved_base, str) else base)
    except Exception:  # noqa: BLE001 - a model LiteLLM cannot route: the call itself will say why
        prefix, _, rest = model.partition("/")
        answer = (rest, prefix, base) if rest else (model, custom or "litellm", base)
    if len(_ROUTES) >= _MAX_ROUTES:
        _ROUTES.clear()
    _ROUTES[key] = answer
    return answer


def _base_request(operation: str, kwargs: dict[str, Any]) -> CallRequest:
    model = kwargs.get("model")
    if not isinstance(model, str):
        return new_request(operation, "litellm", None, (None, None))
    bare, provider, api_base = route(
        model, kwargs.get("custom_llm_provider"), kwargs.get("api_base") or kwargs.get("base_url")
    )
    return new_request(operation, shapes.provider_name(provider), bare, server_of(api_base))


def _read_chat_request(_: Any, kwargs: dict[str, Any]) -> CallRequest | None:
    if kwargs.get("acompletion") is True:  # the sync entry hands over to the async one, which records it
        return None
    return shapes.read_chat_request(_base_request("chat", kwargs), kwargs)


def _read_embeddings_request(_: Any, kwargs: dict[str, Any]) -> CallRequest | None:
    if kwargs.get("aembedding") is True:
        return None
    return read_openai_embeddings_request(_base_request("embeddings", kwargs), kwargs)


CHAT = Endpoint(
    name="litellm.chat",
    read_request=_read_chat_request,
    read_response=shapes.read_chat_response,
    stream_reader=shapes.ChunkReader,
    materialize=("messages", "tools", "functions"),
    positional=("model", "messages"),
)
EMBEDDINGS = Endpoint(
    name="litellm.embeddings",
    read_request=_read_embeddings_request,
    read_response=shapes.read_embeddings_response,
    positional=("model", "input"),
)

_CHAT_DISPATCH = "litellm.chat_completions.dispatch"
_EMBEDDINGS_DISPATCH = "litellm.embeddings.dispatch"
# (function name, endpoint) for the public names and for litellm.main.
_FUNCTIONS = (
    ("completion", CHAT),
    ("acompletion", CHAT),
    ("embedding", EMBEDDINGS),
    ("aembedding", EMBEDDINGS),
)
# What the dispatch modules captured from litellm.main at import: (module, name, endpoint).
_CAPTURED = (
    (_CHAT_DISPATCH, "_PYTHON_COMPLETION", CHAT),
    (_CHAT_DISPATCH, "_PYTHON_ACOMPLETION", CHAT),
    (_EMBEDDINGS_DISPATCH, "_PYTHON_EMBEDDING", EMBEDDINGS),
    (_EMBEDDINGS_DISPATCH, "_PYTHON_AEMBEDDING", EMBEDDINGS),
)


class LiteLLMInstrumentor(TokenKPIInstrumentor):
    """Instruments ``litellm`` (entry point ``tokenkpi_litellm``)."""

    instrumentation_scope = "otel_tokenkpi.instrumentors.litellm"
    instruments = ("litellm >= 1.94.0",)
    patch_when_imported = "litellm"

    def patches(self) -> list[Patch]:
        table = [
            Patch(module, "", name, endpoint) for module in ("litellm", "litellm.main") for name, endpoint in _FUNCTIONS
        ]
        # Releases without the dispatch modules call litellm.main directly: nothing captured to patch.
        table += [Patch(module, "", name, endpoint) for module, name, endpoint in _CAPTURED if module in sys.modules]
        return table
