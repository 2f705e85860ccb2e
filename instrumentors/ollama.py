"""Ollama instrumentor: where the ``ollama`` SDK's model calls live.

Patched, sync and async (``Client`` / ``AsyncClient`` in ``ollama._client``): ``chat`` (operation ``chat``),
``generate`` (``text_completion``), ``embed`` and the deprecated ``embeddings`` (``embeddings``), plain and
``stream=True``. A sync stream is a generator and an async one an async generator that sends the request on
its first step: the proxy sees every object, and an error status surfaces (and ends the span) there.

The module-level functions (``ollama.chat(...)`` and friends) are methods of a default client bound when
``ollama`` was imported (``chat = _client.chat``): patching the class does not reach a method bound before.
So ``_instrument`` re-binds each of them through the patched class, and ``_uninstrument`` puts the very
objects it found back (unless the user replaced them meanwhile).

Users pass the model and messages positionally (``ollama.chat("llama3.2", [...])``); which parameters take
positions changed between releases (0.3: every one; 0.4+: ``model, messages`` for chat), so the names are
read from the installed signatures.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

from otel_tokenkpi._safety import log_once
from otel_tokenkpi.instrumentation import Patch, TokenKPIInstrumentor
from otel_tokenkpi.invocation import CallRequest, CallResult
from otel_tokenkpi.lifecycle import Endpoint

from . import _ollama_request as requests
from . import _ollama_response as responses
from ._shapes import get, new_request, server_of

PROVIDER = "ollama"
_MODULE = "ollama._client"
_CLASSES = ("Client", "AsyncClient")
_MODULE_FUNCTIONS = ("chat", "generate", "embed", "embeddings")


def _base(operation: str, instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    """Server from the client's httpx base URL (``host=`` / ``OLLAMA_HOST``)."""
    base_url = get(get(instance, "_client"), "base_url")
    return new_request(operation, PROVIDER, kwargs.get("model"), server_of(base_url) if base_url else (None, None))


def _read_chat(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return requests.read_chat(_base("chat", instance, kwargs), kwargs)


def _read_generate(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return requests.read_generate(_base("text_completion", instance, kwargs), kwargs)


def _read_embed(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    return requests.read_embed(_base("embeddings", instance, kwargs), kwargs)


def _read_embeddings(instance: Any, kwargs: dict[str, Any]) -> CallRequest:
    """The deprecated ``embeddings(model, prompt)``: one input; its response carries no counts."""
    return requests.read_embed(_base("embeddings", instance, kwargs), {**kwargs, "input": kwargs.get("prompt")})


def _read_embeddings_response(response: Any) -> CallResult:
    return CallResult()


CHAT = Endpoint(
    name="ollama.chat",
    read_request=_read_chat,
    read_response=responses.read_chat_response,
    stream_reader=responses.ChatChunkReader,
    materialize=("messages", "tools"),
    positional=("model", "messages"),
)
GENERATE = Endpoint(
    name="ollama.generate",
    read_request=_read_generate,
    read_response=responses.read_generate_response,
    stream_reader=responses.GenerateChunkReader,
    positional=("model", "prompt", "suffix"),
)
EMBED = Endpoint(
    name="ollama.embed",
    read_request=_read_embed,
    read_response=responses.read_embed_response,
    positional=("model", "input", "truncate", "options", "keep_alive", "dimensions"),
)
EMBEDDINGS = Endpoint(
    name="ollama.embeddings",
    read_request=_read_embeddings,
    read_response=_read_embeddings_response,
    positional=("model", "prompt", "options", "keep_alive"),
)
ENDPOINTS = {"chat": CHAT, "generate": GENERATE, "embed": EMBED, "embeddings": EMBEDDINGS}


def positional_names(cls: Any, method: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Names of the parameters ``cls.method`` takes by position after ``self``, in order."""
    try:
        parameters = list(inspect.signature(getattr(cls, method)).parameters.values())[1:]
    except (AttributeError, TypeError, ValueError):
        return default
    return tuple(p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _installed_class(name: str) -> Any:
    try:
        return getattr(importlib.import_module(_MODULE), name, None)
    except ImportError:
        return None


class OllamaInstrumentor(TokenKPIInstrumentor):
    """Instruments the ``ollama`` SDK (entry point ``tokenkpi_ollama``)."""

    instrumentation_scope = "otel_tokenkpi.instrumentors.ollama"
    # 0.3.0 is the first release with embed() and tools; responses are dicts there, models from 0.4.0.
    instruments = ("ollama >= 0.3.0",)

    def patches(self) -> list[Patch]:
        table = []
        for cls_name in _CLASSES:
            cls = _installed_class(cls_name)
            for method, endpoint in ENDPOINTS.items():
                if cls is not None and callable(getattr(cls, method, None)):
                    names = positional_names(cls, method, endpoint.positional)
                    endpoint = dataclasses.replace(endpoint, positional=names)
                table.append(Patch(_MODULE, cls_name, method, endpoint))
        return table

    def _instrument(self, **kwargs: Any) -> None:
        super()._instrument(**kwargs)
        self._rebound: dict[str, tuple[Any, Any]] = {}
        try:
            self._rebind_module_functions()
        except Exception as exc:  # noqa: BLE001 - never stop the user's app
            log_once("OllamaInstrumentor.rebind", exc)

    def _rebind_module_functions(self) -> None:
        """Point ``ollama.chat`` etc. at the patched class's methods of the same default client."""
        try:
            import ollama
        except ImportError:  # installed but not importable: the patch table already warned, once per method
            return

        for name in _MODULE_FUNCTIONS:
            found = getattr(ollama, name, None)
            client = getattr(found, "__self__", None)
            if client is None or not isinstance(client, ollama.Client):
                continue  # not the default client's method (missing here, or replaced by the user)
            patched = getattr(type(client), name, None)
            if getattr(found, "__func__", None) is not getattr(patched, "__wrapped__", None):
                continue  # its class method was not patched here
            rebound = getattr(client, name)
            setattr(ollama, name, rebound)
            self._rebound[name] = (found, rebound)

    def _uninstrument(self, **kwargs: Any) -> None:
        try:
            rebound_functions = getattr(self, "_rebound", {})
            if rebound_functions:  # else nothing to restore (and an unimportable ollama is not imported)
                import ollama

                for name, (original, rebound) in rebound_functions.items():
                    if getattr(ollama, name, None) is rebound:
                        setattr(ollama, name, original)
        except Exception as exc:  # noqa: BLE001
            log_once("OllamaInstrumentor.restore", exc)
        self._rebound = {}
        super()._uninstrument(**kwargs)
