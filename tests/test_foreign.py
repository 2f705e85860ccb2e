"""Foreign GenAI spans -> FinishedCall (otel_tokenkpi.foreign).

Spans are real OpenTelemetry SDK spans (TracerProvider + InMemorySpanExporter), started with the
attributes each instrumentation writes, ended, and read back as ReadableSpans. The attribute shapes
follow the semconv GenAI conventions (as the official instrumentations and Anthropic's SDK write
them), OpenLLMetry / traceloop and OpenInference / Arize.
"""

from __future__ import annotations

import json
from typing import Any

from _foreign_support import emit

from otel_tokenkpi.foreign import is_model_call_span, record_from_span
from otel_tokenkpi.invocation import (
    CallRequest,
    CallResult,
    ContextItem,
    FinishedCall,
    OutputMessage,
    ToolCall,
    ToolDefinition,
    Usage,
)

SYSTEM = "You are a weather bot."
ASK = "Weather in Paris and Rome?"
FOLLOW_UP = "And in Oslo?"
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TZ_SCHEMA = {"type": "object", "properties": {"tz": {"type": "string"}}}
QUERY_SCHEMA = {"type": "object", "properties": {"query": {"type": "string"}}}
TOOLS = [
    ("get_weather", "Current weather for a city.", CITY_SCHEMA),
    ("get_time", "Local time in a time zone.", TZ_SCHEMA),
    ("search", "Web search.", QUERY_SCHEMA),
]


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


EXPECTED_TOOLS = [ToolDefinition(name, description, compact(schema)) for name, description, schema in TOOLS]


def history(arguments: tuple[str, str, str]) -> list[ContextItem]:
    """The expected context after the system prompt; ``arguments`` as each convention carries them."""
    return [
        ContextItem(role="user", text=ASK),
        ContextItem(
            role="assistant",
            text="Checking both.",
            tool_calls=[
                ToolCall("get_weather", arguments[0], "call_1"),
                ToolCall("get_weather", arguments[1], "call_2"),
            ],
        ),
        ContextItem(role="tool", text="18C sunny", tool_call_id="call_1"),
        ContextItem(role="tool", text="21C cloudy", tool_call_id="call_2"),
        ContextItem(role="user", text=FOLLOW_UP),
    ]


# --- semconv (official instrumentations) ------------------------------------------------------

SEMCONV_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.response.finish_reasons": ["tool_calls"],
    "server.address": "api.openai.com",
    "server.port": 443,
    "gen_ai.request.max_tokens": 256,
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.top_p": 0.9,
    "gen_ai.request.seed": 7,
    "gen_ai.request.stop_sequences": ["END"],
    "gen_ai.request.stream": True,
    "gen_ai.output.type": "text",
    "gen_ai.conversation.id": "conv-1",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 40,
    "gen_ai.usage.cache_read.input_tokens": 1024,
    "gen_ai.usage.reasoning.output_tokens": 16,
    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": SYSTEM}]),
    "gen_ai.input.messages": json.dumps(
        [
            {"role": "user", "parts": [{"type": "text", "content": ASK}]},
            {
                "role": "assistant",
                "parts": [
                    {"type": "text", "content": "Checking both."},
                    {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
                    {"type": "tool_call", "id": "call_2", "name": "get_weather", "arguments": {"city": "Rome"}},
                ],
            },
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "18C sunny"}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_2", "response": "21C cloudy"}]},
            {"role": "user", "parts": [{"type": "text", "content": FOLLOW_UP}]},
        ]
    ),
    "gen_ai.output.messages": json.dumps(
        [
            {
                "role": "assistant",
                "parts": [
                    {"type": "reasoning", "content": "need Oslo"},
                    {"type": "tool_call", "id": "call_3", "name": "get_weather", "arguments": {"city": "Oslo"}},
                ],
                "finish_reason": "tool_calls",
            }
        ]
    ),
    "gen_ai.tool.definitions": json.dumps(
        [
            {"type": "function", "name": name, "description": description, "parameters": schema}
            for name, description, schema in TOOLS
        ]
    ),
}


def test_semconv_tool_calling_turn() -> None:
    record = record_from_span(emit(SEMCONV_ATTRIBUTES))

    assert record == FinishedCall(
        request=CallRequest(
            operation="chat",
            provider="openai",
            model="gpt-4o",
            server_address="api.openai.com",
            server_port=443,
            params={
                "gen_ai.request.max_tokens": 256,
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.top_p": 0.9,
                "gen_ai.request.seed": 7,
                "gen_ai.request.stop_sequences": ["END"],
                "gen_ai.output.type": "text",
                "gen_ai.request.stream": True,
            },
            messages=[ContextItem(role="system", text=SYSTEM, is_instructions=True)]
            + history(('{"city":"Paris"}', '{"city":"Rome"}', "")),
            tools=EXPECTED_TOOLS,
            stream=True,
            content_known=True,
        ),
        result=CallResult(
            response_id="chatcmpl-1",
            response_model="gpt-4o-2024-08-06",
            outputs=[
                OutputMessage(
                    text="",
                    tool_calls=[ToolCall("get_weather", '{"city":"Oslo"}', "call_3")],
                    finish_reason="tool_calls",
                )
            ],
            usage=Usage(input_tokens=1200, output_tokens=40, cache_read_tokens=1024, reasoning_tokens=16),
        ),
        error_type=None,
        duration_s=2.5,
        complete=True,
    )
    assert is_model_call_span(SEMCONV_ATTRIBUTES)


def test_anthropic_sdk_span_shape() -> None:
    """Anthropic's own spans: tool results as tool_call_response parts inside a user message, their
    content as text blocks, stop reason in anthropic.message.stop_reason, cache write the new name."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.response.id": "msg_1",
        "gen_ai.response.model": "claude-sonnet-4-5-20250929",
        "gen_ai.usage.input_tokens": 1500,  # the SDK adds cache reads and writes to Anthropic's input_tokens
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 1024,
        "gen_ai.usage.cache_write.input_tokens": 200,
        "anthropic.message.stop_reason": "tool_use",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": SYSTEM}]),
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "user", "parts": [{"type": "text", "content": ASK}]},
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "text", "content": "Checking both."},
                        {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
                        {"type": "tool_call", "id": "call_2", "name": "get_weather", "arguments": {"city": "Rome"}},
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        {
                            "type": "tool_call_response",
                            "id": "call_1",
                            "response": [{"type": "text", "text": "18C sunny"}],
                        },
                        {
                            "type": "tool_call_response",
                            "id": "call_2",
                            "response": [{"type": "text", "text": "21C cloudy"}],
                        },
                        {"type": "text", "content": FOLLOW_UP},
                    ],
                },
            ]
        ),
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "text", "content": "Now Oslo."},
                        {"type": "tool_call", "id": "call_3", "name": "get_weather", "arguments": {"city": "Oslo"}},
                    ],
                }
            ]
        ),
    }
    record = record_from_span(emit(attributes))

    assert record is not None
    assert record.request.provider == "anthropic"
    assert record.request.params == {"gen_ai.request.max_tokens": 1024}
    assert record.request.messages == [ContextItem(role="system", text=SYSTEM, is_instructions=True)] + history(
        ('{"city":"Paris"}', '{"city":"Rome"}', "")
    )
    assert record.request.tools == []
    assert record.result == CallResult(
        response_id="msg_1",
        response_model="claude-sonnet-4-5-20250929",
        outputs=[
            OutputMessage(
                text="Now Oslo.",
                tool_calls=[ToolCall("get_weather", '{"city":"Oslo"}', "call_3")],
                finish_reason="tool_use",
            )
        ],
        usage=Usage(input_tokens=1500, output_tokens=30, cache_read_tokens=1024, cache_write_tokens=200),
    )


# --- OpenLLMetry / traceloop -----------------------------------------------------------------


def openllmetry_attributes() -> dict[str, Any]:
    paris, rome, oslo = (json.dumps({"city": c}) for c in ("Paris", "Rome", "Oslo"))
    attributes: dict[str, Any] = {
        "gen_ai.system": "openai",
        "llm.request.type": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.id": "chatcmpl-2",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 256,
        "llm.frequency_penalty": 0.5,
        "llm.is_streaming": False,
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": SYSTEM,
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": ASK,
        "gen_ai.prompt.2.role": "assistant",
        "gen_ai.prompt.2.content": "Checking both.",
        "gen_ai.prompt.2.tool_calls.0.id": "call_1",
        "gen_ai.prompt.2.tool_calls.0.name": "get_weather",
        "gen_ai.prompt.2.tool_calls.0.arguments": paris,
        "gen_ai.prompt.2.tool_calls.1.id": "call_2",
        "gen_ai.prompt.2.tool_calls.1.name": "get_weather",
        "gen_ai.prompt.2.tool_calls.1.arguments": rome,
        "gen_ai.prompt.3.role": "tool",
        "gen_ai.prompt.3.content": "18C sunny",
        "gen_ai.prompt.3.tool_call_id": "call_1",
        "gen_ai.prompt.4.role": "tool",
        "gen_ai.prompt.4.content": "21C cloudy",
        "gen_ai.prompt.4.tool_call_id": "call_2",
        "gen_ai.prompt.5.role": "user",
        "gen_ai.prompt.5.content": FOLLOW_UP,
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.finish_reason": "tool_calls",
        "gen_ai.completion.0.tool_calls.0.id": "call_3",
        "gen_ai.completion.0.tool_calls.0.name": "get_weather",
        "gen_ai.completion.0.tool_calls.0.arguments": oslo,
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 40,
        "gen_ai.usage.cache_read_input_tokens": 1024,
        "llm.usage.total_tokens": 1240,
    }
    for i, (name, description, schema) in enumerate(TOOLS):
        attributes[f"llm.request.functions.{i}.name"] = name
        attributes[f"llm.request.functions.{i}.description"] = description
        attributes[f"llm.request.functions.{i}.parameters"] = json.dumps(schema)
    return attributes


def test_openllmetry_tool_calling_turn() -> None:
    attributes = openllmetry_attributes()
    record = record_from_span(emit(attributes))

    paris, rome, oslo = (json.dumps({"city": c}) for c in ("Paris", "Rome", "Oslo"))
    assert record == FinishedCall(
        request=CallRequest(
            operation="chat",
            provider="openai",
            model="gpt-4o",
            params={
                "gen_ai.request.frequency_penalty": 0.5,
                "gen_ai.request.max_tokens": 256,
                "gen_ai.request.temperature": 0.2,
            },
            messages=[ContextItem(role="system", text=SYSTEM)] + history((paris, rome, "")),
            tools=EXPECTED_TOOLS,
            stream=False,
            content_known=True,
        ),
        result=CallResult(
            response_id="chatcmpl-2",
            response_model="gpt-4o-2024-08-06",
            outputs=[OutputMessage(tool_calls=[ToolCall("get_weather", oslo, "call_3")], finish_reason="tool_calls")],
            usage=Usage(input_tokens=1200, output_tokens=40, cache_read_tokens=1024),
        ),
        duration_s=2.5,
    )
    assert is_model_call_span(attributes)


def test_openllmetry_anthropic_blocks_and_thinking() -> None:
    """OpenLLMetry's Anthropic instrumentation: request type "completion", tool results as the JSON of
    Anthropic content blocks, input_schema tools, thinking as a completion of its own."""
    attributes = {
        "gen_ai.system": "Anthropic",
        "llm.request.type": "completion",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": SYSTEM,
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": json.dumps(
            [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C sunny"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "21C cloudy"}]},
                {"type": "text", "text": FOLLOW_UP},
                {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
            ]
        ),
        "llm.request.functions.0.name": "get_weather",
        "llm.request.functions.0.description": "Current weather for a city.",
        "llm.request.functions.0.input_schema": json.dumps(CITY_SCHEMA, indent=2),
        "gen_ai.completion.0.role": "thinking",
        "gen_ai.completion.0.content": "The user wants Oslo.",
        "gen_ai.completion.0.finish_reason": "tool_use",
        "gen_ai.completion.1.role": "assistant",
        "gen_ai.completion.1.content": "Now Oslo.",
        "gen_ai.completion.1.tool_calls.0.id": "call_3",
        "gen_ai.completion.1.tool_calls.0.name": "get_weather",
        "gen_ai.completion.1.tool_calls.0.arguments": '{"city": "Oslo"}',
        # Anthropic's raw counts, cache left out of input: caught because cache exceeds input.
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read_input_tokens": 1024,
        "gen_ai.usage.cache_creation_input_tokens": 100,
    }
    record = record_from_span(emit(attributes))

    assert record is not None
    assert record.request.operation == "text_completion"
    assert record.request.provider == "anthropic"
    assert record.request.messages == [
        ContextItem(role="system", text=SYSTEM),
        ContextItem(role="tool", text="18C sunny", tool_call_id="call_1"),
        ContextItem(role="tool", text="21C cloudy", tool_call_id="call_2"),
        ContextItem(role="user", text=FOLLOW_UP),
    ]
    assert record.request.tools == [EXPECTED_TOOLS[0]]
    assert record.result is not None
    assert record.result.outputs == [
        OutputMessage(
            text="Now Oslo.",
            tool_calls=[ToolCall("get_weather", '{"city": "Oslo"}', "call_3")],
            finish_reason="tool_use",
        )
    ]
    assert record.result.usage == Usage(
        input_tokens=1134, output_tokens=30, cache_read_tokens=1024, cache_write_tokens=100
    )


# --- OpenInference / Arize -------------------------------------------------------------------


def openinference_attributes() -> dict[str, Any]:
    paris, rome, oslo = (json.dumps({"city": c}) for c in ("Paris", "Rome", "Oslo"))
    attributes: dict[str, Any] = {
        "openinference.span.kind": "LLM",
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.model_name": "gpt-4o-2024-08-06",
        "llm.invocation_parameters": json.dumps(
            {"model": "gpt-4o", "temperature": 0.2, "max_tokens": 256, "stop": ["END"], "n": 1, "stream": True}
        ),
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": SYSTEM,
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": ASK,
        "llm.input_messages.1.message.contents.1.message_content.type": "image",
        "llm.input_messages.1.message.contents.1.message_content.image.image.url": "https://example.com/a.png",
        "llm.input_messages.2.message.role": "assistant",
        "llm.input_messages.2.message.content": "Checking both.",
        "llm.input_messages.2.message.tool_calls.0.tool_call.id": "call_1",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.name": "get_weather",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.arguments": paris,
        "llm.input_messages.2.message.tool_calls.1.tool_call.id": "call_2",
        "llm.input_messages.2.message.tool_calls.1.tool_call.function.name": "get_weather",
        "llm.input_messages.2.message.tool_calls.1.tool_call.function.arguments": rome,
        "llm.input_messages.3.message.role": "tool",
        "llm.input_messages.3.message.content": "18C sunny",
        "llm.input_messages.3.message.tool_call_id": "call_1",
        "llm.input_messages.4.message.role": "tool",
        "llm.input_messages.4.message.content": "21C cloudy",
        "llm.input_messages.4.message.tool_call_id": "call_2",
        "llm.input_messages.5.message.role": "user",
        "llm.input_messages.5.message.content": FOLLOW_UP,
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_3",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": oslo,
        "llm.finish_reason": "tool_calls",
        "llm.token_count.prompt": 1200,
        "llm.token_count.completion": 40,
        "llm.token_count.total": 1240,
        "llm.token_count.prompt_details.cache_read": 1024,
        "llm.token_count.completion_details.reasoning": 16,
    }
    for i, (name, description, schema) in enumerate(TOOLS):
        tool = {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}
        attributes[f"llm.tools.{i}.tool.json_schema"] = json.dumps(tool)
    return attributes


def test_openinference_tool_calling_turn() -> None:
    attributes = openinference_attributes()
    record = record_from_span(emit(attributes))

    paris, rome, oslo = (json.dumps({"city": c}) for c in ("Paris", "Rome", "Oslo"))
    assert record == FinishedCall(
        request=CallRequest(
            operation="chat",
            provider="openai",
            model="gpt-4o-2024-08-06",
            params={
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 256,
                "gen_ai.request.stop_sequences": ["END"],
                "gen_ai.request.stream": True,
            },
            messages=[ContextItem(role="system", text=SYSTEM)] + history((paris, rome, "")),
            tools=EXPECTED_TOOLS,
            stream=True,
            content_known=True,
        ),
        result=CallResult(
            response_model="gpt-4o-2024-08-06",
            outputs=[OutputMessage(tool_calls=[ToolCall("get_weather", oslo, "call_3")], finish_reason="tool_calls")],
            usage=Usage(input_tokens=1200, output_tokens=40, cache_read_tokens=1024, reasoning_tokens=16),
        ),
        duration_s=2.5,
    )
    assert is_model_call_span(attributes)


def test_openinference_tool_without_json_schema_uses_flat_fields() -> None:
    attributes = {
        "openinference.span.kind": "LLM",
        "llm.tools.0.tool.name": "get_weather",
        "llm.tools.0.tool.description": "Current weather for a city.",
        "llm.tools.0.tool.parameters": json.dumps(CITY_SCHEMA),
        "llm.tools.1.tool.json_schema": '{"type": "function", "function": {"name": "cut',  # cut by a length limit
    }
    record = record_from_span(emit(attributes))
    assert record is not None
    assert record.request.tools == [EXPECTED_TOOLS[0]]
