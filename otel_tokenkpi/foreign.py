"""Read GenAI spans that other instrumentations emit into a FinishedCall.

TokenKPISpanProcessor feeds the waste engine with model calls it did not make
itself: the official OpenTelemetry GenAI instrumentations and Anthropic's SDK
(semconv ``gen_ai.*`` with JSON content attributes), OpenLLMetry / traceloop
(flattened ``gen_ai.prompt.{i}.*``) and OpenInference / Arize (flattened
``llm.input_messages.{i}.message.*``). This module reads the span-level facts
(operation, provider, parameters, usage, error, duration); the content readers
live in ``_foreign_content``. Malformed values are skipped, never raised.

Usage follows the semconv rule: ``input_tokens`` INCLUDES cache reads and
writes. The producers read here report it that way (OpenLLMetry's Anthropic
instrumentation and Anthropic's own spans add the cache counts to Anthropic's
``input_tokens``; OpenInference does too). A producer that did not is caught
only when its cache counts exceed its input count; then they are added.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from . import _foreign_content as content
from . import semconv as sc
from ._foreign_content import string, structured
from .invocation import AttributeValue, CallRequest, CallResult, FinishedCall, Usage

_GEN_AI_SYSTEM = "gen_ai.system"  # deprecated for gen_ai.provider.name; OpenLLMetry still sets it
_LLM_REQUEST_TYPE = "llm.request.type"
_OI_SPAN_KIND = "openinference.span.kind"

_OPENLLMETRY_OPERATIONS = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}
_OPENINFERENCE_OPERATIONS = {"LLM": "chat", "EMBEDDING": "embeddings"}

# Older gen_ai.system values and OpenInference llm.provider / llm.system values -> gen_ai.provider.name.
_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "cohere": "cohere",
    "mistralai": "mistral_ai",
    "mistral ai": "mistral_ai",
    "mistral_ai": "mistral_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google": "gcp.gen_ai",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "aws.bedrock": "aws.bedrock",
    "az.ai.openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "xai": "x_ai",
    "x_ai": "x_ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
}

_NUMBER_PARAMS = (
    sc.REQUEST_MAX_TOKENS,
    sc.REQUEST_TEMPERATURE,
    sc.REQUEST_TOP_P,
    sc.REQUEST_TOP_K,
    sc.REQUEST_FREQUENCY_PENALTY,
    sc.REQUEST_PRESENCE_PENALTY,
    sc.REQUEST_SEED,
    sc.REQUEST_CHOICE_COUNT,
)
_STRING_LIST_PARAMS = (sc.REQUEST_STOP_SEQUENCES, sc.REQUEST_ENCODING_FORMATS)
# OpenLLMetry's own names for three of them.
_OPENLLMETRY_PARAMS = {
    "llm.frequency_penalty": sc.REQUEST_FREQUENCY_PENALTY,
    "llm.presence_penalty": sc.REQUEST_PRESENCE_PENALTY,
    "llm.top_k": sc.REQUEST_TOP_K,
}
# OpenInference ``llm.invocation_parameters`` keys (the provider's request fields).
_INVOCATION_PARAMS = {
    "max_tokens": sc.REQUEST_MAX_TOKENS,
    "max_completion_tokens": sc.REQUEST_MAX_TOKENS,
    "max_output_tokens": sc.REQUEST_MAX_TOKENS,
    "temperature": sc.REQUEST_TEMPERATURE,
    "top_p": sc.REQUEST_TOP_P,
    "top_k": sc.REQUEST_TOP_K,
    "frequency_penalty": sc.REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": sc.REQUEST_PRESENCE_PENALTY,
    "seed": sc.REQUEST_SEED,
    "n": sc.REQUEST_CHOICE_COUNT,
}

# Usage: each field's names in order of preference (semconv, OpenLLMetry, OpenInference).
_INPUT_TOKENS = (sc.USAGE_INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
_OUTPUT_TOKENS = (sc.USAGE_OUTPUT_TOKENS, "gen_ai.usage.completion_tokens", "llm.token_count.completion")
_CACHE_READ_TOKENS = (
    sc.USAGE_CACHE_READ_INPUT_TOKENS,
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
_CACHE_WRITE_TOKENS = (
    sc.USAGE_CACHE_WRITE_INPUT_TOKENS,
    sc.USAGE_CACHE_CREATION_INPUT_TOKENS_OLD,
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
_REASONING_TOKENS = (
    sc.USAGE_REASONING_OUTPUT_TOKENS,
    "gen_ai.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)
_TOTAL_TOKENS = ("llm.usage.total_tokens", "llm.token_count.total")
# Where a span says why generation stopped when its messages do not (Anthropic's SDK, OpenInference).
_FINISH_REASON_FALLBACKS = ("anthropic.message.stop_reason", "llm.finish_reason")


_MARKER_KEYS = frozenset({sc.OPERATION_NAME, "openinference.span.kind", "llm.request.type"})


def is_model_call_span(attributes: Mapping[str, Any]) -> bool:
    """Cheap check used on every span: a model call in any of the conventions read here.

    ``gen_ai.operation.name`` decides when it is set (so ``execute_tool`` and
    ``invoke_agent`` spans are not model calls, whatever else they carry); else
    OpenInference's span kind, else OpenLLMetry's ``llm.request.type``.
    """
    # Most spans are not GenAI: one set operation over the keys instead of three failing lookups
    # (each a caught KeyError on the SDK's read-only attribute view).
    if not attributes or _MARKER_KEYS.isdisjoint(attributes):
        return False
    operation = attributes.get(sc.OPERATION_NAME)
    if isinstance(operation, str):
        return operation in sc.MODEL_CALL_OPERATIONS
    return _older_operation(attributes) is not None


def record_from_span(span: ReadableSpan) -> FinishedCall | None:
    """None when the span is not a model call."""
    attributes: Mapping[str, Any] = span.attributes or {}
    operation = _operation(attributes)
    if operation is None:
        return None
    indexed = content.group_indexed(attributes)
    result = CallResult(
        response_id=string(attributes.get(sc.RESPONSE_ID)),
        response_model=string(attributes.get(sc.RESPONSE_MODEL)) or string(attributes.get("llm.response.model_name")),
        outputs=content.outputs(attributes, indexed, _finish_reasons(attributes)),
        usage=_usage(attributes),
    )
    if result.response_model is None and _OI_SPAN_KIND in attributes:
        result.response_model = string(attributes.get("llm.model_name"))
    start, end = span.start_time, span.end_time
    duration = (end - start) / 1e9 if isinstance(start, int) and isinstance(end, int) and end >= start else 0.0
    return FinishedCall(
        request=_request(attributes, operation, indexed),
        result=result,
        error_type=_error_type(span, attributes),
        duration_s=duration,
    )


def _operation(attributes: Mapping[str, Any]) -> str | None:
    operation = attributes.get(sc.OPERATION_NAME)
    if isinstance(operation, str):
        return operation if operation in sc.MODEL_CALL_OPERATIONS else None
    return _older_operation(attributes)


def _older_operation(attributes: Mapping[str, Any]) -> str | None:
    kind = attributes.get(_OI_SPAN_KIND)
    if isinstance(kind, str):
        return _OPENINFERENCE_OPERATIONS.get(kind)
    request_type = attributes.get(_LLM_REQUEST_TYPE)
    if isinstance(request_type, str) and attributes.get(_GEN_AI_SYSTEM):
        return _OPENLLMETRY_OPERATIONS.get(request_type)
    return None


# --- request ----------------------------------------------------------------------


def _request(attributes: Mapping[str, Any], operation: str, indexed: content.Indexed) -> CallRequest:
    port = attributes.get(sc.SERVER_PORT)
    request = CallRequest(
        operation=operation,
        provider=_provider(attributes),
        model=string(attributes.get(sc.REQUEST_MODEL))
        or string(attributes.get("llm.request.model_name"))
        or string(attributes.get("llm.model_name"))
        or string(attributes.get("embedding.model_name")),
        server_address=string(attributes.get(sc.SERVER_ADDRESS)),
        server_port=port if isinstance(port, int) and not isinstance(port, bool) and port > 0 else None,
        params=_params(attributes),
    )
    request.stream = request.params.get(sc.REQUEST_STREAM) is True
    messages = content.input_messages(attributes, indexed)
    # Without the chat messages the content-based rules cannot be evaluated: absent, not zero.
    request.content_known = messages is not None
    request.messages = content.system_instructions(attributes) + (messages or [])
    request.tools = content.tool_definitions(attributes, indexed)
    return request


def _provider(attributes: Mapping[str, Any]) -> str:
    """gen_ai.provider.name as it is; older names mapped to it where the mapping is obvious."""
    name = string(attributes.get(sc.PROVIDER_NAME))
    if name:
        return name
    oi_system = (string(attributes.get("llm.system")) or "").lower()
    for key in (_GEN_AI_SYSTEM, "llm.provider", "llm.system"):
        name = string(attributes.get(key))
        if not name:
            continue
        lowered = name.lower()
        if key == "llm.provider" and lowered == "azure":
            return "azure.ai.openai" if oi_system == "openai" else "azure.ai.inference"
        if key == "llm.provider" and lowered == "google" and oi_system == "vertexai":
            return "gcp.vertex_ai"
        return _PROVIDERS.get(lowered, name)
    return "_OTHER"


def _number(value: Any) -> int | float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _params(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """The semconv request attributes present on the span (the names the adapters use), with
    OpenLLMetry's and OpenInference's equivalents where the semconv ones are missing."""
    params: dict[str, AttributeValue] = dict(_invocation_parameters(attributes))
    for alias, name in _OPENLLMETRY_PARAMS.items():
        number = _number(attributes.get(alias))
        if number is not None:
            params[name] = number
    for name in _NUMBER_PARAMS:
        number = _number(attributes.get(name))
        if number is not None:
            params[name] = number
    for name in _STRING_LIST_PARAMS:
        strings = _strings(attributes.get(name))
        if strings:
            params[name] = strings
    output_type = string(attributes.get(sc.OUTPUT_TYPE))
    if output_type:
        params[sc.OUTPUT_TYPE] = output_type
    if attributes.get(sc.REQUEST_STREAM) is True or attributes.get("llm.is_streaming") is True:
        params[sc.REQUEST_STREAM] = True
    return params


def _invocation_parameters(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    decoded = structured(attributes.get("llm.invocation_parameters"))
    if not isinstance(decoded, Mapping):
        return {}
    params: dict[str, AttributeValue] = {}
    for key, name in _INVOCATION_PARAMS.items():
        number = _number(decoded.get(key))
        if number is not None and not (name == sc.REQUEST_CHOICE_COUNT and number == 1):
            params[name] = number
    stops = _strings(decoded.get("stop")) or _strings(decoded.get("stop_sequences"))
    if stops:
        params[sc.REQUEST_STOP_SEQUENCES] = stops
    if decoded.get("stream") is True:
        params[sc.REQUEST_STREAM] = True
    return params


# --- result -----------------------------------------------------------------------


def _count(value: Any) -> int | None:
    """A token count: a non-negative int (an integral float is accepted), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def _first_count(attributes: Mapping[str, Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = _count(attributes.get(name))
        if value is not None:
            return value
    return None


def _usage(attributes: Mapping[str, Any]) -> Usage | None:
    usage = Usage(
        input_tokens=_first_count(attributes, _INPUT_TOKENS),
        output_tokens=_first_count(attributes, _OUTPUT_TOKENS),
        cache_read_tokens=_first_count(attributes, _CACHE_READ_TOKENS),
        cache_write_tokens=_first_count(attributes, _CACHE_WRITE_TOKENS),
        reasoning_tokens=_first_count(attributes, _REASONING_TOKENS),
    )
    if usage.output_tokens is None and usage.input_tokens is not None:
        total = _first_count(attributes, _TOTAL_TOKENS)
        if total is not None and total >= usage.input_tokens:
            usage.output_tokens = total - usage.input_tokens
    cached = (usage.cache_read_tokens or 0) + (usage.cache_write_tokens or 0)
    if usage.input_tokens is not None and cached > usage.input_tokens:
        usage.input_tokens += cached  # the producer left cached tokens out (Anthropic's raw input_tokens)
    if all(value is None for value in (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens)):
        return None
    return usage


def _finish_reasons(attributes: Mapping[str, Any]) -> list[str]:
    value = attributes.get(sc.RESPONSE_FINISH_REASONS)
    if isinstance(value, str) and value.startswith("["):
        value = structured(value)  # Logfire writes the array as JSON text
    reasons = _strings(value)
    if reasons:
        return [reason for reason in reasons if reason]
    for name in _FINISH_REASON_FALLBACKS:
        reason = string(attributes.get(name))
        if reason:
            return [reason]
    return []


def _error_type(span: ReadableSpan, attributes: Mapping[str, Any]) -> str | None:
    """``error.type`` when set; else, for an ERROR status, the recorded exception's type or ``_OTHER``."""
    declared = string(attributes.get(sc.ERROR_TYPE))
    if declared:
        return declared
    status = span.status
    if status is None or status.status_code is not StatusCode.ERROR:
        return None
    for event in reversed(span.events or ()):
        if event.name == "exception":
            exception_type = string((event.attributes or {}).get("exception.type"))
            if exception_type:
                return exception_type
    return "_OTHER"
