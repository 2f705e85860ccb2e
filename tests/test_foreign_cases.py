"""Foreign GenAI spans: what is and is not a model call, provider names, spans without content,
error spans, and malformed values (wrong types, invalid JSON, holes in indices) that must never
raise. Real SDK spans throughout (see _foreign_support)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _foreign_support import emit
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Status, StatusCode

from otel_tokenkpi.foreign import is_model_call_span, record_from_span
from otel_tokenkpi.invocation import CallResult, ContextItem, OutputMessage, ToolCall, ToolDefinition, Usage

SYSTEM = "You are a weather bot."

# --- provider names and operations ---------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "provider"),
    [
        ({"gen_ai.provider.name": "azure.ai.openai", "gen_ai.system": "openai"}, "azure.ai.openai"),
        ({"gen_ai.system": "Anthropic"}, "anthropic"),
        ({"gen_ai.system": "vertex_ai"}, "gcp.vertex_ai"),
        ({"gen_ai.system": "acme-llm"}, "acme-llm"),
        ({"llm.provider": "azure", "llm.system": "openai"}, "azure.ai.openai"),
        ({"llm.provider": "google", "llm.system": "vertexai"}, "gcp.vertex_ai"),
        ({"llm.provider": "google"}, "gcp.gen_ai"),
        ({"llm.provider": "mistralai"}, "mistral_ai"),
        ({"llm.provider": "aws"}, "aws.bedrock"),
        ({"llm.system": "anthropic"}, "anthropic"),
        ({"llm.provider": "xai"}, "x_ai"),
        ({}, "_OTHER"),
    ],
)
def test_provider_names(attributes: dict[str, Any], provider: str) -> None:
    record = record_from_span(emit({"gen_ai.operation.name": "chat", **attributes}))
    assert record is not None
    assert record.request.provider == provider


@pytest.mark.parametrize(
    ("attributes", "operation"),
    [
        ({"gen_ai.operation.name": "text_completion"}, "text_completion"),
        ({"gen_ai.operation.name": "generate_content"}, "generate_content"),
        ({"gen_ai.operation.name": "embeddings"}, "embeddings"),
        ({"gen_ai.system": "openai", "llm.request.type": "chat"}, "chat"),
        ({"gen_ai.system": "openai", "llm.request.type": "completion"}, "text_completion"),
        ({"gen_ai.system": "openai", "llm.request.type": "embedding"}, "embeddings"),
        ({"openinference.span.kind": "LLM"}, "chat"),
        ({"openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small"}, "embeddings"),
    ],
)
def test_model_call_operations(attributes: dict[str, Any], operation: str) -> None:
    assert is_model_call_span(attributes)
    record = record_from_span(emit(attributes))
    assert record is not None
    assert record.request.operation == operation
    assert record.request.content_known is False


def test_embedding_model_from_openinference() -> None:
    record = record_from_span(
        emit({"openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small"})
    )
    assert record is not None
    assert record.request.model == "text-embedding-3-small"


# --- not model calls ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"http.request.method": "POST", "url.full": "https://api.openai.com/v1/chat/completions"},
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather", "gen_ai.provider.name": "openai"},
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 5000,
            # a model-call marker of an older convention does not override the operation name
            "openinference.span.kind": "LLM",
        },
        {"gen_ai.operation.name": "create_agent"},
        {"gen_ai.operation.name": "invoke_workflow"},
        {"openinference.span.kind": "TOOL", "tool.name": "get_weather"},
        {"openinference.span.kind": "CHAIN"},
        {"openinference.span.kind": "AGENT", "llm.request.type": "chat", "gen_ai.system": "openai"},
        {"llm.request.type": "chat"},  # OpenLLMetry's marker needs gen_ai.system too
        {"llm.request.type": "rerank", "gen_ai.system": "cohere"},
        {"traceloop.span.kind": "workflow", "gen_ai.system": "openai"},
    ],
)
def test_not_model_call_spans(attributes: dict[str, Any]) -> None:
    span = emit(attributes, name="not a model call")
    assert is_model_call_span(span.attributes or {}) is False
    assert record_from_span(span) is None


# --- no content, errors ---------------------------------------------------------------------------


def test_span_without_content_keeps_usage_and_finish_reasons() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.response.finish_reasons": ["max_tokens"],
        "gen_ai.usage.input_tokens": 900,
        "gen_ai.usage.output_tokens": 256,
        "gen_ai.usage.cache_read.input_tokens": 512,
        "gen_ai.usage.cache_creation.input_tokens": 128,  # the older name of cache_write
    }
    record = record_from_span(emit(attributes))

    assert record is not None
    assert record.request.content_known is False
    assert record.request.messages == []
    assert record.request.tools == []
    assert record.result == CallResult(
        outputs=[OutputMessage(finish_reason="max_tokens")],
        usage=Usage(input_tokens=900, output_tokens=256, cache_read_tokens=512, cache_write_tokens=128),
    )
    assert record.error_type is None


def test_system_instructions_alone_do_not_make_content_known() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": SYSTEM}]),
    }
    record = record_from_span(emit(attributes))
    assert record is not None
    assert record.request.content_known is False
    assert record.request.messages == [ContextItem(role="system", text=SYSTEM, is_instructions=True)]


class RateLimitedError(Exception):
    pass


def test_error_span_with_recorded_exception() -> None:
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
    span = emit(attributes, exception=RateLimitedError("429"), status=Status(StatusCode.ERROR, "429"))
    record = record_from_span(span)
    assert record is not None
    assert record.error_type == f"{RateLimitedError.__module__}.{RateLimitedError.__qualname__}"
    assert record.result is not None and record.result.usage is None
    assert record.result.outputs == []
    assert record.complete is True
    assert record.duration_s == 2.5


def test_error_type_attribute_wins() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "error.type": "openai.RateLimitError",
        "gen_ai.usage.input_tokens": 7,
    }
    span = emit(attributes, exception=RateLimitedError("429"), status=Status(StatusCode.ERROR))
    record = record_from_span(span)
    assert record is not None
    assert record.error_type == "openai.RateLimitError"
    assert record.result is not None
    assert record.result.usage == Usage(input_tokens=7)


def test_error_status_without_exception_is_other() -> None:
    record = record_from_span(emit({"gen_ai.operation.name": "chat"}, status=Status(StatusCode.ERROR, "boom")))
    assert record is not None
    assert record.error_type == "_OTHER"


def test_ok_span_has_no_error() -> None:
    record = record_from_span(emit({"gen_ai.operation.name": "chat"}, status=Status(StatusCode.OK)))
    assert record is not None
    assert record.error_type is None


# --- malformed values: skipped, never raised -------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        '[{"role": "user", "parts": [{"type": "text", "content": "cut by a len',  # attribute length limit
        "not json",
        '{"role": "user", "parts": []}',  # an object, not a list of messages
        "42",
        "[" * 100_000 + "]" * 100_000,  # deeper than the JSON decoder's recursion limit
        "",
    ],
)
def test_unreadable_content_json(bad: str) -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": bad,
        "gen_ai.output.messages": bad,
        "gen_ai.system_instructions": bad,
        "gen_ai.tool.definitions": bad,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 3,
    }
    record = record_from_span(emit(attributes))
    assert record is not None
    assert record.request.content_known is False
    assert record.request.messages == []
    assert record.request.tools == []
    assert record.result == CallResult(outputs=[OutputMessage(finish_reason="stop")], usage=Usage(input_tokens=3))


def test_wrong_shapes_inside_content_json() -> None:
    messages = [
        1,
        "x",
        None,
        {"role": 5, "parts": "not a list"},
        {
            "role": "assistant",
            "parts": [
                1,
                {"type": "text", "content": 7},
                {"type": "text", "content": "ok"},
                {"type": "tool_call", "name": None, "arguments": {}},
                {"type": "tool_call", "name": "f", "arguments": [1, 2], "id": 9},
                {"type": "tool_call_response", "id": 3, "response": {"ok": True}},
                {"type": "blob", "content": "AAAA"},
            ],
        },
    ]
    tools = [1, {"description": "no name"}, {"name": "g", "parameters": "not json"}, {"name": "h", "description": 5}]
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": json.dumps(messages),
        "gen_ai.output.messages": json.dumps([{"parts": [{"type": "tool_call", "name": "f"}], "finish_reason": 1}]),
        "gen_ai.tool.definitions": json.dumps(tools),
    }
    record = record_from_span(emit(attributes))

    assert record is not None
    assert record.request.content_known is True
    assert record.request.messages == [
        ContextItem(role="user"),
        ContextItem(role="assistant", text="ok", tool_calls=[ToolCall("f", "[1,2]", "")]),
        ContextItem(role="tool", text='{"ok":true}'),
    ]
    assert record.request.tools == [ToolDefinition("g", "", "not json"), ToolDefinition("h", "", "")]
    assert record.result is not None
    assert record.result.outputs == [OutputMessage(tool_calls=[ToolCall("f", "", "")])]


def test_wrong_scalar_types() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": 3,
        "gen_ai.system": "openai",
        "gen_ai.request.model": 42,
        "gen_ai.response.id": ["a", "b"],
        "gen_ai.response.finish_reasons": [1, 2],
        "server.address": "",
        "server.port": "443",
        "gen_ai.request.temperature": "hot",
        "gen_ai.request.max_tokens": True,
        "gen_ai.request.stop_sequences": [1, 2],
        "gen_ai.request.stream": "yes",
        "gen_ai.usage.input_tokens": "12",
        "gen_ai.usage.prompt_tokens": 12.0,  # next name in line; an integral float counts
        "gen_ai.usage.output_tokens": -5,
        "gen_ai.usage.cache_read.input_tokens": True,
        "gen_ai.usage.reasoning.output_tokens": 2.5,
        "llm.usage.total_tokens": 20,  # gives output = total - input when output is unusable
    }
    record = record_from_span(emit(attributes))

    assert record is not None
    request = record.request
    assert request.provider == "openai"
    assert (request.model, request.server_address, request.server_port) == (None, None, None)
    assert request.params == {}
    assert request.stream is False
    assert record.result == CallResult(usage=Usage(input_tokens=12, output_tokens=8))


def test_holes_and_bad_indices_in_flattened_attributes() -> None:
    attributes = {
        "gen_ai.system": "openai",
        "llm.request.type": "chat",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "a",
        # no gen_ai.prompt.1
        "gen_ai.prompt.2.role": "assistant",
        "gen_ai.prompt.2.content": "b",
        "gen_ai.prompt.2.tool_calls.1.name": "f",  # no tool_calls.0
        "gen_ai.prompt.2.tool_calls.1.arguments": "{}",
        "gen_ai.prompt.2.tool_calls.x.name": "ghost",
        "gen_ai.prompt.x.role": "system",
        "gen_ai.prompt..content": "ghost",
        "gen_ai.prompt.3": "no field",
        "gen_ai.prompt.-1.content": "ghost",
        "gen_ai.prompt.\u0663.content": "ghost",  # a non-ASCII digit
        "gen_ai.prompt.4.content": 5,
        "gen_ai.prompt.5.role": "narrator",
        "gen_ai.prompt.5.content": "c",
        "gen_ai.completion.1.content": "out",  # no completion 0
        "llm.request.functions.2.name": "only_tool",
        "llm.request.functions.2.parameters": '{"type": "object"}',
        "llm.request.functions.3.description": "nameless",
    }
    record = record_from_span(emit(attributes))

    assert record is not None
    assert record.request.messages == [
        ContextItem(role="user", text="a"),
        ContextItem(role="assistant", text="b", tool_calls=[ToolCall("f", "{}", "")]),
        ContextItem(role="user"),
        ContextItem(role="user", text="c"),
    ]
    assert record.request.tools == [ToolDefinition("only_tool", "", '{"type":"object"}')]
    assert record.result is not None
    assert record.result.outputs == [OutputMessage(text="out")]


def test_openinference_holes_and_bad_json() -> None:
    attributes = {
        "openinference.span.kind": "LLM",
        "llm.invocation_parameters": "{not json",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.2.message_content.text": "hi",  # no type: text
        "llm.input_messages.1.message.contents.3.message_content.type": "image",
        "llm.input_messages.3.message.tool_calls.0.tool_call.function.arguments": "{}",  # no name: skipped
        "llm.tools.0.tool.json_schema": "[1]",
        "llm.token_count.prompt": "many",
        "llm.token_count.completion": 4,
    }
    record = record_from_span(emit(attributes))

    assert record is not None
    assert record.request.params == {}
    assert record.request.messages == [ContextItem(role="user", text="hi"), ContextItem(role="user")]
    assert record.request.tools == []
    assert record.result == CallResult(usage=Usage(output_tokens=4))


def test_structured_content_values() -> None:
    """SDKs >= 1.4x keep structured attribute values (maps; sequences become tuples)."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": [
            {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"t": [1, 2]}}]},
        ],
        "gen_ai.system_instructions": [{"type": "text", "content": SYSTEM}],
        "gen_ai.tool.definitions": [{"name": "f", "parameters": {"type": "object", "required": ["a"]}}],
        "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}],
    }
    record = record_from_span(emit(attributes))

    assert record is not None
    assert record.request.content_known is True
    assert record.request.messages == [
        ContextItem(role="system", text=SYSTEM, is_instructions=True),
        ContextItem(role="user", text="hi"),
        ContextItem(role="tool", text='{"t":[1,2]}', tool_call_id="c1"),
    ]
    assert record.request.tools == [ToolDefinition("f", "", '{"type":"object","required":["a"]}')]
    assert record.result is not None
    assert record.result.outputs == [OutputMessage(text="yo")]


def test_span_handed_over_with_values_the_sdk_would_not_keep() -> None:
    """A ReadableSpan built by another processor can hold anything: no exception, sane output."""
    span = ReadableSpan(
        name="odd",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": b"[]",
            "gen_ai.usage.input_tokens": object(),
            "gen_ai.response.finish_reasons": None,
            "server.port": 3.5,
            7: "a key that is not a string",  # type: ignore[dict-item]
        },
    )
    record = record_from_span(span)
    assert record is not None
    assert record.request.content_known is False
    assert record.duration_s == 0.0
    assert record.result == CallResult()
    assert record_from_span(ReadableSpan(name="empty")) is None


@pytest.mark.parametrize(
    "attributes",
    [
        {"gen_ai.operation.name": ["chat"]},
        {"gen_ai.operation.name": 1},
        {"openinference.span.kind": ["LLM"]},
        {"llm.request.type": ["chat"], "gen_ai.system": "openai"},
        {"llm.request.type": "chat", "gen_ai.system": ""},
    ],
)
def test_is_model_call_span_with_wrong_types(attributes: dict[str, Any]) -> None:
    assert is_model_call_span(attributes) is False
    assert record_from_span(ReadableSpan(name="odd", attributes=attributes)) is None
