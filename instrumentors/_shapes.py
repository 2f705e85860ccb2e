"""Small readers shared by adapters: dict-or-object access, sentinels, JSON.

Client libraries accept both plain dicts and their own model objects (users
append ``response.choices[0].message`` to the history), and use sentinel
defaults (openai's ``NOT_GIVEN`` / ``omit``). These helpers read all of those
the same way, so adapters stay a list of field names. What every adapter
does alike with what it read (numeric parameters, cache-inclusive input,
the call-level request fields) is here too, written once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.invocation import CallRequest, ContextItem

# openai/anthropic/groq (Stainless): NotGiven, Omit; mistralai (Speakeasy): Unset (its UNSET default, also the
# value of fields a response omitted).
_SENTINEL_TYPES = frozenset({"NotGiven", "Omit", "_NotGiven", "_Omit", "Unset"})


def given(value: Any) -> bool:
    """False for None and for client-library 'not given' sentinels."""
    return value is not None and type(value).__name__ not in _SENTINEL_TYPES


def get(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` for mappings, ``obj.key`` otherwise; sentinels read as default."""
    if obj is None:
        return default
    value = obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)
    # given() inlined: this runs a dozen times per stream chunk.
    if value is None or type(value).__name__ in _SENTINEL_TYPES:
        return default
    return value


def get_rare(obj: Any, key: str) -> Any:
    """``get`` for a key that objects usually lack (a vendor extension such as Groq's ``x_groq``).

    On a pydantic model, ``getattr`` of a missing attribute costs ~5 us (pydantic's ``__getattr__``
    builds an AttributeError): per stream chunk, that was most of our cost. A model's undeclared fields
    live in ``__pydantic_extra__``, so an undeclared key is looked up there instead.
    """
    fields = getattr(type(obj), "__pydantic_fields__", None)
    if isinstance(fields, dict) and key not in fields:
        extra = getattr(obj, "__pydantic_extra__", None)
        return get(extra, key) if isinstance(extra, dict) else None
    return get(obj, key)


def type_of(obj: Any) -> str:
    """``obj``'s ``type`` field when it is a string, else "": readers compare it with sets and dict keys,
    where an unhashable value (a list from a malformed part) would raise."""
    kind = get(obj, "type")
    return kind if isinstance(kind, str) else ""


def as_list(value: Any) -> list[Any]:
    if not given(value):
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def compact_json(value: Any) -> str:
    """Compact JSON the way a schema is counted (docs/architecture.md "Counting")."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if hasattr(value, "model_dump"):
        value = value.model_dump(exclude_none=True)
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):  # circular or ~1000-deep schemas: the SDK fails on them too
        try:
            return str(value)
        except RecursionError:
            return ""


def text_of(
    content: Any, text_keys: tuple[str, ...] = ("text",), other_part: Callable[[Any], str] | None = None
) -> str:
    """Text of a message content: a string, or a list of parts whose text lives under one of
    ``text_keys``; a part without one is ``other_part(part)`` when given (a provider's documents), else no
    text (images, audio, files)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        pieces = []
        for part in content:
            if isinstance(part, str):
                pieces.append(part)
                continue
            for key in text_keys:
                text = get(part, key)
                if isinstance(text, str):
                    pieces.append(text)
                    break
            else:
                if other_part is not None:
                    pieces.append(other_part(part))
        return "".join(pieces)
    return ""


def tool_choice_of(value: Any) -> str | None:
    """A request's tool choice, provider-neutral: "auto", "none", "required" (OpenAI "required",
    Anthropic/Bedrock "any"), or the name of the one tool the model must call."""
    if isinstance(value, str):
        return "required" if value == "any" else value
    kind = type_of(value)
    if kind in ("auto", "none", "required", "any") and get(value, "name") is None:
        return "required" if kind == "any" else kind
    name = get(get(value, "function"), "name") or get(value, "name") or get(get(value, "tool"), "name")
    if isinstance(name, str):
        return name
    for key in ("auto", "any", "none"):  # Bedrock Converse: {"auto": {}} / {"any": {}}
        if get(value, key) is not None:
            return "required" if key == "any" else key
    return None


def input_with_cache(uncached: Any, cache_read: Any, cache_write: Any) -> int | None:
    """Input tokens as semconv counts them, cached ones included, for APIs that report the uncached
    input apart from cache reads and writes (Anthropic Messages, Bedrock Converse): the three added."""
    if not isinstance(uncached, int):
        return None
    return uncached + (cache_read or 0) + (cache_write or 0)


def new_request(operation: str, provider: str, model: Any, server: tuple[str | None, int | None]) -> CallRequest:
    """The call-level fields every adapter starts from. A model that is not a string is the user's
    mistake (the SDK rejects it): it is not recorded."""
    host, port = server
    return CallRequest(
        operation=operation,
        provider=provider,
        model=model if isinstance(model, str) else None,
        server_address=host,
        server_port=port,
    )


def server_of(base_url: Any) -> tuple[str | None, int | None]:
    """``(host, port)`` of a base URL (httpx URL or string)."""
    if base_url is None:
        return None, None
    host = getattr(base_url, "host", None)
    port = getattr(base_url, "port", None)
    if host is None:
        parts = urlsplit(str(base_url))
        host, port = parts.hostname, parts.port
        scheme = parts.scheme
    else:
        scheme = getattr(base_url, "scheme", "https")
    if port is None:
        port = 443 if scheme == "https" else 80
    return host or None, port


def param_number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def stop_sequences(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


@dataclass(frozen=True)
class ParamNames:
    """Where an API keeps its request parameters. Every API names them differently; reading them is the
    same, so an adapter lists only the names (``read_params`` reads them)."""

    numbers: tuple[tuple[str, str | tuple[str, ...]], ...]  # (semconv attribute, field or fields, first wins)
    stop: str | None = None  # the stop-sequence field
    choices: str | None = None  # the choice-count field (n, candidate_count); 1 is the default, left out


def read_params(
    fields: Any, names: ParamNames, *, stream: bool = False, output_type: str | None = None
) -> dict[str, Any]:
    """The ``gen_ai.request.*`` attributes (and ``gen_ai.output.type``) from an API's request fields (a
    kwargs dict or a config object): numbers only where they are numbers, stop sequences only where they
    are strings."""
    params: dict[str, Any] = {}
    for attribute, field in names.numbers:
        for name in (field,) if isinstance(field, str) else field:
            number = param_number(get(fields, name))
            if number is not None:
                params[attribute] = number
                break
    if names.choices is not None:
        count = param_number(get(fields, names.choices))
        if count is not None and count != 1:
            params[sc.REQUEST_CHOICE_COUNT] = count
    if names.stop is not None:
        stops = stop_sequences(get(fields, names.stop))
        if stops:
            params[sc.REQUEST_STOP_SEQUENCES] = stops
    if stream:
        params[sc.REQUEST_STREAM] = True
    if output_type:
        params[sc.OUTPUT_TYPE] = output_type
    return params


class IdentityMemo:
    """Remembers what was read from objects the user sends again unchanged.

    Agents re-send their whole history on every call, as the same message
    and tool objects. Reading them again (and serialising every tool schema
    to JSON) would make each call cost O(history). An entry is reused only
    for the very same object (``is``) whose field values are still the same
    objects, so a replaced field is a miss; in-place edits of a nested list
    are not seen (rare; the cost of being exact there is O(history) again).
    Bounded by entries and by the characters of text it keeps alive.
    """

    def __init__(self, read: Any, max_entries: int = 4096, max_chars: int = 4_000_000) -> None:
        self._read = read
        self._entries: dict[int, tuple[Any, tuple[Any, ...], Any, int]] = {}
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._chars = 0
        self._lock = threading.Lock()  # writers only; a read is one dict lookup

    def __call__(self, obj: Any, context: Any = None) -> Any:
        """``context`` (hashable, optional) is what the reading depends on besides ``obj``, e.g. the
        message's place in the request for ids an API does not send: it is passed on to the reader and
        an entry is reused only for the same context."""
        fields = obj if type(obj) is dict else getattr(obj, "__dict__", None)
        if fields is None:
            return self._read(obj) if context is None else self._read(obj, context)
        signature: tuple[Any, ...] = tuple(map(id, fields.values()))
        if context is not None:
            signature += (context,)
        key = id(obj)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is obj and entry[1] == signature:
            return entry[2]
        value = self._read(obj) if context is None else self._read(obj, context)
        parts = value if isinstance(value, (list, tuple)) else (value,)  # a reader may return several items
        # (a reader may have kept a non-str text as it read it: the lifecycle fixes the record's types later)
        size = sum(len(text) for part in parts if isinstance(text := getattr(part, "text", None), str)) + 64
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._chars -= old[3]
            self._entries[key] = (obj, signature, value, size)
            self._chars += size
            while self._entries and (len(self._entries) > self._max_entries or self._chars > self._max_chars):
                oldest = next(iter(self._entries))
                self._chars -= self._entries.pop(oldest)[3]
        return value


def read_openai_embeddings_request(base: CallRequest, kwargs: dict[str, Any]) -> CallRequest:
    """An OpenAI-format embeddings request (the openai SDK, litellm): encoding format and inputs."""
    fmt = kwargs.get("encoding_format")
    if isinstance(fmt, str):
        base.params[sc.REQUEST_ENCODING_FORMATS] = [fmt]
    # The inputs, for the repeated-request rule (embeddings are never counted or captured).
    inputs = kwargs.get("input")
    if isinstance(inputs, str):
        base.messages = [ContextItem("user", inputs)]
    elif isinstance(inputs, list) and all(isinstance(text, str) for text in inputs):
        base.messages = [ContextItem("user", text) for text in inputs]
    else:  # token arrays: not read
        base.content_known = False
    return base
