"""Hypothesis strategies for the fuzz tests: structures shaped like each provider's messages, tools, content
parts, responses and stream chunks, with hostile leaves.

A structure is "shaped like" a provider's when its dict keys come from the names that provider's adapter
reads (extracted from the adapter's source, so the vocabulary follows the code) and its strings are often
the roles, part types and finish reasons those adapters compare against. The leaves are what users and
servers really send and what breaks naive readers: None, bytes and images, huge strings, lone surrogates,
pydantic models, objects that are not JSON-serialisable, circular and very deep structures.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import os
import re
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pydantic
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

settings.register_profile(
    "tokenkpi-fuzz",
    derandomize=True,  # reproducible in CI: the same examples on every run
    deadline=None,
    max_examples=int(os.environ.get("TOKENKPI_FUZZ_EXAMPLES", "20")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    database=None,
    # TOKENKPI_FUZZ_SHRINK=0 reports the first failing example as found (fast when exploring)
    phases=[p for p in Phase if p is not Phase.shrink or os.environ.get("TOKENKPI_FUZZ_SHRINK", "1") == "1"],
)
FUZZ = settings.get_profile("tokenkpi-fuzz")

_ADAPTERS = Path(__file__).resolve().parents[1] / "instrumentors"
_KEY = re.compile(r'(?:get\([\w.]+, |\.get\(|\[)"([A-Za-z_-]+)"')

# Adapter source files per provider: the names they read are the keys the fuzzer uses.
SOURCES = {
    "openai": ("openai.py", "_openai_chat.py", "_openai_responses.py"),
    "anthropic": ("anthropic.py", "_anthropic_messages.py"),
    "google_genai": ("google_genai.py", "_google_genai_request.py", "_google_genai_response.py"),
    "bedrock": ("bedrock.py", "_bedrock_converse.py", "_bedrock_anthropic.py", "_anthropic_messages.py"),
    "mistral": ("mistral.py", "_mistral_chat.py"),
    "cohere": ("cohere.py", "_cohere_chat.py"),
    "ollama": ("ollama.py", "_ollama_request.py", "_ollama_response.py"),
    "groq": ("groq.py", "_openai_chat.py"),
    "litellm": ("litellm.py", "_litellm_shapes.py", "_openai_chat.py"),
}


def vocabulary(provider: str) -> list[str]:
    names: set[str] = set()
    for source in SOURCES[provider]:
        names.update(_KEY.findall((_ADAPTERS / source).read_text()))
    return sorted(names)


# Strings the readers compare against (roles, part types, finish reasons, JSON-ish arguments).
WORDS = [
    "system", "developer", "user", "assistant", "tool", "function", "model", "chatbot", "text", "image",
    "image_url", "input_text", "output_text", "input_image", "function_call", "function_call_output", "message",
    "tool_use", "tool_result", "thinking", "document", "reasoning", "custom", "stop", "length", "tool_calls",
    "max_tokens", "MAX_TOKENS", "end_turn", "content_block_start", "content_block_delta", "message_delta",
    "message_start", "message_stop", "input_json_delta", "text_delta", "content-delta", "tool-call-start",
    "message-end", "response.completed", "response.output_text.delta", "{}", '{"city": "Paris"}', "[1, 2]",
    "not json", "gpt-4o", "claude-haiku-4-5", "gemini-2.5-flash", "llama3.2", "openai/gpt-4o",
]  # fmt: skip

LONE_SURROGATES = ["\ud800", "\udfff", "a\ud83d", "\ude00b", '{"k": "\ud800"}']
MEGABYTE = "word " * 200_000  # 1 MB: the 10 MB case runs end to end, in test_fuzz_sdk.py
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


class Part(pydantic.BaseModel):
    """A pydantic model carrying whatever fields it is given (as SDK types do for extra fields)."""

    model_config = pydantic.ConfigDict(extra="allow")


class NotSerializable:
    """Neither JSON nor a mapping: readers must treat it as 'no text'."""

    def __repr__(self) -> str:
        return "<NotSerializable>"


def circular() -> dict[str, Any]:
    loop: dict[str, Any] = {"type": "object"}
    loop["properties"] = loop
    return loop


def deep(depth: int = 3000) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


ODD_LEAVES = [
    NotSerializable(),
    {1, 2},
    frozenset({"a"}),
    complex(1, 2),
    decimal.Decimal("1.5"),
    datetime.datetime(2025, 1, 1),
    PNG,
    bytearray(PNG),
    memoryview(b"abc"),
    MEGABYTE,
    float("nan"),
    float("inf"),
    10**40,
    -1,
    True,
    Part(role="user", content="pydantic"),
    Part(type="text", text="pydantic part"),
    circular(),
    MappingProxyType({"role": "user", "content": "proxy"}),
    object,
    print,
]

text = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)  # surrogates included
leaves = st.one_of(
    st.none(),
    st.sampled_from(WORDS),
    text,
    st.sampled_from(LONE_SURROGATES),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.binary(max_size=32),
    # By index: hypothesis reprs a sampled_from's elements, and the 3000-deep list has no repr.
    st.integers(min_value=0, max_value=len(ODD_LEAVES) - 1).map(lambda index: ODD_LEAVES[index]),
)


def _as_object(fields: dict[str, Any]) -> Any:
    return SimpleNamespace(**{k: v for k, v in fields.items() if k.isidentifier()})


@functools.cache
def shaped(provider: str, max_leaves: int = 40) -> st.SearchStrategy[Any]:
    """Nested lists/tuples/dicts/objects whose keys are the names ``provider``'s adapter reads."""
    keys = st.one_of(st.sampled_from(vocabulary(provider)), text)

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        mapping = st.dictionaries(keys, children, max_size=5)
        return st.one_of(
            st.lists(children, max_size=4),
            st.lists(children, max_size=3).map(tuple),
            mapping,
            mapping.map(_as_object),
            mapping.map(lambda fields: Part(**{k: v for k, v in fields.items() if k.isidentifier()})),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


@functools.cache
def kwargs_for(provider: str, top: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Call keyword arguments: the endpoint's top-level names (often present) with shaped values."""
    value = shaped(provider)
    fixed = st.fixed_dictionaries({}, optional={name: value for name in top})
    return st.tuples(fixed, st.dictionaries(st.sampled_from(vocabulary(provider)), value, max_size=3)).map(
        lambda pair: {**pair[1], **pair[0]}
    )


# -- what every record and every span must satisfy ------------------------------------------------------


def check_request(request: Any) -> None:
    """What the engine relies on in an adapter's CallRequest, whatever the adapter read."""
    from otel_tokenkpi.invocation import CallRequest

    assert isinstance(request, CallRequest)
    assert request.model is None or isinstance(request.model, str)
    for item in request.messages:  # the engine hashes these (fingerprints, tool-call identity)
        assert isinstance(item.role, str) and isinstance(item.text, str), item
        assert isinstance(item.tool_call_id, str), item
        for call in item.tool_calls:
            check_tool_call(call)
    for tool in request.tools:
        assert isinstance(tool.name, str) and isinstance(tool.parameters_json, str), tool
    for key, value in request.params.items():
        assert isinstance(key, str) and is_attribute_value(value), (key, value)


def check_result(result: Any) -> None:
    """What the engine relies on in a CallResult: usage numbers are non-negative ints (it adds and caps them)."""
    from otel_tokenkpi.invocation import CallResult

    assert isinstance(result, CallResult)
    for output in result.outputs:
        assert isinstance(output.text, str), output
        for call in output.tool_calls:
            check_tool_call(call)
    if result.usage is not None:
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
            value = getattr(result.usage, name)
            assert value is None or (isinstance(value, int) and value >= 0), (name, value)
    for key, value in result.provider_attributes.items():
        assert isinstance(key, str) and is_attribute_value(value), (key, value)


def check_tool_call(call: Any) -> None:
    assert isinstance(call.name, str) and isinstance(call.arguments, str) and isinstance(call.id, str), call


def is_attribute_value(value: Any) -> bool:
    if isinstance(value, (str, bool, int, float)):
        return True
    return (
        isinstance(value, (list, tuple))
        and len({type(v) for v in value}) <= 1
        and all(isinstance(v, (str, bool, int, float)) for v in value)
    )


def check_through_engine(request: Any, result: Any, recorder: Any, error: BaseException | None = None) -> None:
    """Feed a record to the engine and the recorder (content capture on) and check what comes out: no
    internal error logged, counts are non-negative ints, resent + new is the counted context, the waste
    kinds sum to the total within the billed tokens, and captured content is valid UTF-8 JSON."""
    import json

    from otel_tokenkpi import _safety, content, counting
    from otel_tokenkpi import semconv as sc
    from otel_tokenkpi.engine import ENGINE
    from otel_tokenkpi.invocation import FinishedCall

    _safety._reset_logged_for_tests()
    record = FinishedCall(request, result, error_type=type(error).__qualname__ if error is not None else None)
    attrs = ENGINE.call_attributes(record)
    for key, value in attrs.items():
        assert is_attribute_value(value), (key, value)
        if key.endswith(("_tokens", "_count", ".tokens", ".window")):
            assert isinstance(value, int) and value >= 0, (key, value)
    if sc.CONTEXT_RESENT_TOKENS in attrs and request.server_history_ref is None:
        counted = counting.count_parts(request.messages, request.tools, request.model, request).total
        assert attrs[sc.CONTEXT_RESENT_TOKENS] + attrs[sc.CONTEXT_NEW_TOKENS] == counted
    kinds = [value for key, value in attrs.items() if key in sc.WASTE_KIND_ATTRIBUTES.values()]
    if kinds:
        assert attrs[sc.WASTE_TOKENS] == sum(kinds)
        usage = record.result.usage if record.result is not None else None
        if usage is not None and usage.input_tokens is not None:
            assert attrs[sc.WASTE_TOKENS] <= usage.input_tokens + (usage.output_tokens or 0)
    if sc.WASTE_RATIO in attrs:
        assert 0.0 <= attrs[sc.WASTE_RATIO] <= 1.0
    captured = [content.input_messages_json(request), content.system_instructions_json(request)]
    if result is not None:
        captured.append(content.output_messages_json(result))
    for text in captured:
        if text is not None:
            json.loads(text)
            text.encode("utf-8")  # OTLP drops (and logs) an attribute that is not valid UTF-8
    span = recorder.tracer.start_span("fuzz")
    recorder.write_call(span, record, error)
    span.end()
    # Internal errors only: a one-time notice (a model with no known price) is not one.
    errors = {hook for hook in set(_safety._logged_hooks) if not hook.startswith("prices:unknown:")}
    assert not errors, errors


def make_recorder() -> Any:
    """A recorder with content capture on, recording into an in-memory SDK."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from otel_tokenkpi.recorder import Recorder

    # No span processor: spans still record every attribute (the recorder's whole path runs) and are dropped.
    recorder = Recorder("fuzz", "0", TracerProvider(), MeterProvider(metric_readers=[InMemoryMetricReader()]))
    recorder.capture_content = True
    return recorder
