"""Foreign spans as real emitters write them, and every part type of the semconv message schema.

The attribute values below are what these libraries wrote for one and the same chat call (recorded
here against the fake OpenAI server, content capture on): pydantic-ai 2.78 (its own instrumentation),
OpenLLMetry (opentelemetry-instrumentation-openai 0.62.4), the official openai-v2 2.4b0 through
opentelemetry-util-genai 1.1b0, OpenInference (openinference-instrumentation-openai 0.1.66) and Logfire
5.6 (``instrument_openai``). The request: a system prompt, a question, the model's earlier
``get_weather(Paris)`` call and its result; the response calls ``get_weather(Paris)`` again (a
duplicate). tests/frameworks/ drives the same libraries live.

Every emitter must give the same breakdown: the tool result is new context and a tool result.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import tiktoken
from _foreign_support import emit
from test_processor_foreign import Pipeline

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.foreign import record_from_span
from otel_tokenkpi.invocation import ContextItem, ToolCall

O200K = tiktoken.get_encoding("o200k_base")
SYSTEM, ASK, RESULT, ARGS = "You are a weather bot.", "Weather in Paris?", "18C sunny", '{"city":"Paris"}'
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
FUNCTION = {"name": "get_weather", "description": "Current weather for a city.", "parameters": SCHEMA}


def n(text: str) -> int:
    return len(O200K.encode_ordinary(text))


def _semconv_messages(arguments: Any, result_key: str = "response", tool_role: str = "tool") -> str:
    return json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
            {"role": "user", "parts": [{"type": "text", "content": ASK}]},
            {
                "role": "assistant",
                "parts": [{"type": "tool_call", "id": "call_9", "name": "get_weather", "arguments": arguments}],
            },
            {"role": tool_role, "parts": [{"type": "tool_call_response", "id": "call_9", result_key: RESULT}]},
        ]
    )


def _semconv_output(arguments: Any, finish: str) -> str:
    return json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": arguments}],
                "finish_reason": finish,
            }
        ]
    )


COMMON = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
USAGE = {"gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 20}  # scripted by the fake server

EMITTERS: dict[str, dict[str, Any]] = {
    "pydantic-ai": {
        **COMMON,
        **USAGE,
        "gen_ai.system": "openai",
        "gen_ai.conversation.id": "01a2518d-b93f-7365-9924-1359952ab478",
        "gen_ai.tool.definitions": json.dumps([{"type": "function", **FUNCTION}]),
        # pydantic-ai: the result under "result", tool results in a user message, arguments as JSON text
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
                {"role": "user", "parts": [{"type": "text", "content": ASK}]},
                {
                    "role": "assistant",
                    "parts": [{"type": "tool_call", "id": "call_9", "name": "get_weather", "arguments": ARGS}],
                    "finish_reason": "tool_call",
                },
                {
                    "role": "user",
                    "parts": [{"type": "tool_call_response", "id": "call_9", "name": "get_weather", "result": RESULT}],
                },
            ]
        ),
        "gen_ai.output.messages": _semconv_output(ARGS, "tool_call"),
        "gen_ai.response.finish_reasons": ("tool_call",),
    },
    "openllmetry": {
        **COMMON,
        **USAGE,
        "gen_ai.is_streaming": False,
        "gen_ai.usage.total_tokens": 140,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.tool.definitions": json.dumps([{"type": "function", **FUNCTION}]),
        "gen_ai.input.messages": _semconv_messages({"city": "Paris"}),
        "gen_ai.output.messages": _semconv_output({"city": "Paris"}, "tool_call"),
        "gen_ai.response.finish_reasons": ("tool_call",),
    },
    "util-genai": {
        **COMMON,
        **USAGE,
        "gen_ai.input.messages": _semconv_messages({"city": "Paris"}),
        "gen_ai.output.messages": _semconv_output({"city": "Paris"}, "tool_calls"),
        "gen_ai.response.finish_reasons": ("tool_calls",),
    },
    "openinference": {
        "openinference.span.kind": "LLM",
        "llm.system": "openai",
        "llm.model_name": "gpt-4o",
        "llm.invocation_parameters": json.dumps({"model": "gpt-4o"}),
        "llm.tools.0.tool.json_schema": json.dumps({"type": "function", "function": FUNCTION}),
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": SYSTEM,
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": ASK,
        "llm.input_messages.2.message.role": "assistant",
        "llm.input_messages.2.message.tool_calls.0.tool_call.id": "call_9",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.name": "get_weather",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.arguments": ARGS,
        "llm.input_messages.3.message.role": "tool",
        "llm.input_messages.3.message.tool_call_id": "call_9",
        "llm.input_messages.3.message.content": RESULT,
        "llm.token_count.total": 140,
        "llm.token_count.prompt": 120,
        "llm.token_count.completion": 20,
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": ARGS,
        "llm.finish_reason": "tool_calls",
    },
    "logfire": {
        **COMMON,
        **USAGE,
        "gen_ai.system": "openai",
        "request_data": json.dumps({"model": "gpt-4o"}),
        # Logfire: OpenAI's nested tool shape, and the finish reasons as JSON text
        "gen_ai.tool.definitions": json.dumps([{"type": "function", "function": FUNCTION}]),
        "gen_ai.input.messages": _semconv_messages({"city": "Paris"}),
        "gen_ai.output.messages": _semconv_output({"city": "Paris"}, "tool_calls"),
        "gen_ai.response.finish_reasons": '["tool_calls"]',
    },
}


@pytest.mark.parametrize("emitter", list(EMITTERS))
def test_each_emitter_reads_the_same_tool_result_history_and_duplicate(loaded_data: None, emitter: str) -> None:
    record = record_from_span(emit(EMITTERS[emitter]))
    assert record is not None
    assert [(m.role, m.text, m.tool_call_id) for m in record.request.messages] == [
        ("system", SYSTEM, ""),
        ("user", ASK, ""),
        ("assistant", "", ""),
        ("tool", RESULT, "call_9"),
    ]
    assert record.request.messages[2].tool_calls == [ToolCall("get_weather", ARGS, "call_9")]
    # openai-v2 2.4b0 writes no gen_ai.tool.definitions
    assert [t.name for t in record.request.tools] == ([] if emitter == "util-genai" else ["get_weather"])
    (output,) = record.result.outputs
    assert output.tool_calls == [ToolCall("get_weather", ARGS, "call_1")]
    assert output.finish_reason in ("tool_call", "tool_calls")

    pipeline = Pipeline()
    pipeline.tracer.start_span("chat gpt-4o", attributes=EMITTERS[emitter]).end()
    call = pipeline.spans()["chat gpt-4o"].attributes
    assert call[sc.CONTEXT_TOOL_RESULTS_TOKENS] == n(RESULT)
    assert call[sc.CONTEXT_NEW_TOKENS] == n(RESULT)
    assert call[sc.CONTEXT_SYSTEM_TOKENS] == n(SYSTEM)
    tool_tokens = call[sc.CONTEXT_TOOL_DEFINITIONS_TOKENS]
    assert call[sc.CONTEXT_RESENT_TOKENS] == n(SYSTEM) + n(ASK) + n("get_weather") + n(ARGS) + tool_tokens
    assert call[sc.TOOL_CALLS_COUNT] == 1
    assert call[sc.TOOL_CALLS_DUPLICATE_COUNT] == 1
    assert call[sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS] == n("get_weather") + n(ARGS)
    assert sc.TOKENS_ESTIMATED not in call


def test_pydantic_ai_duplicates_result_is_charged_once_on_the_call_that_sends_it(loaded_data: None) -> None:
    """pydantic-ai processor-only: the duplicate call's result (a ``result`` part) is waste on the
    next call, which sends it back, and ordinary re-sent context after that."""
    history = json.loads(EMITTERS["pydantic-ai"]["gen_ai.input.messages"])
    duplicate = {
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": ARGS}],
    }
    its_result = {
        "role": "user",
        "parts": [{"type": "tool_call_response", "id": "call_1", "name": "get_weather", "result": RESULT}],
    }
    second = history + [duplicate, its_result]
    third = second + [
        {"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Thanks"}]},
    ]
    final = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Bye."}], "finish_reason": "stop"}])
    pipeline = Pipeline()
    with pipeline.tracer.start_as_current_span("invoke_agent agent"):
        for name, messages in (("first", history), ("second", second), ("third", third)):
            attributes = dict(EMITTERS["pydantic-ai"], **{"gen_ai.input.messages": json.dumps(messages)})
            attributes["gen_ai.conversation.id"] = "conversation-of-three-calls"
            if name != "first":
                attributes["gen_ai.output.messages"] = final
            pipeline.tracer.start_span(name, attributes=attributes).end()
    spans = pipeline.spans()
    first, second_call, third_call = (spans[name].attributes for name in ("first", "second", "third"))
    assert first[sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS] == n("get_weather") + n(ARGS)
    assert second_call[sc.CONTEXT_TOOL_RESULTS_TOKENS] == 2 * n(RESULT)
    assert second_call[sc.CONTEXT_NEW_TOKENS] == n(RESULT)
    assert second_call[sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS] == n(RESULT)  # charged here, once
    assert third_call[sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS] == 0
    root = spans["invoke_agent agent"].attributes
    assert root[sc.TRACE_LLM_CALLS] == 3
    assert root[sc.TRACE_DUPLICATE_TOOL_CALLS] == 1


# --- every part type -----------------------------------------------------------------------------

MEDIA = [
    {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"},
    {"type": "file", "modality": "image", "file_id": "file-abc"},
    {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
    {"type": "binary", "media_type": "image/png", "content": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"},  # pydantic-ai
    {"type": "image-url", "url": "https://example.com/cat.png"},  # pydantic-ai
]


@pytest.mark.parametrize(
    ("part", "text"),
    [
        ({"type": "text", "content": "hello"}, "hello"),
        ({"type": "text", "text": "hello"}, "hello"),
        ({"type": "text", "content": SYSTEM, "visible": False}, ""),  # pydantic-ai: not sent this time
        ({"type": "reasoning", "content": "let me think"}, ""),
        ({"type": "thinking", "content": "let me think"}, ""),  # pydantic-ai
        ({"type": "server_tool_call", "id": "ws_1", "name": "web_search", "server_tool_call": {"query": "x"}}, ""),
        ({"type": "server_tool_call_response", "id": "ws_1", "server_tool_call_response": {"results": []}}, ""),
        ({"type": "acme_custom", "content": "unknown generic part"}, ""),
        *((media, "") for media in MEDIA),
    ],
    ids=lambda value: value.get("type", "") if isinstance(value, dict) else None,
)
def test_every_part_type_is_read_and_only_text_counts(part: dict[str, Any], text: str) -> None:
    messages = [{"role": "user", "parts": [{"type": "text", "content": "Look: "}, part]}]
    record = record_from_span(emit({**COMMON, "gen_ai.input.messages": json.dumps(messages)}))
    assert record is not None
    assert record.request.messages == [ContextItem(role="user", text="Look: " + text)]


@pytest.mark.parametrize(
    ("part", "text"),
    [
        ({"type": "tool_call_response", "id": "c1", "response": "done"}, "done"),
        ({"type": "tool_call_response", "id": "c1", "name": "f", "result": "done"}, "done"),
        ({"type": "tool_call_response", "id": "c1", "result": {"temp": 18, "unit": "C"}}, '{"temp":18,"unit":"C"}'),
        (
            {
                "type": "tool_call_response",
                "id": "c1",
                "response": [{"type": "text", "text": "do"}, {"type": "text", "text": "ne"}],
            },
            "done",
        ),
        ({"type": "tool_call_response", "id": "c1"}, ""),  # content capture off: the result is left out
    ],
)
def test_tool_call_response_variants(part: dict[str, Any], text: str) -> None:
    messages = [{"role": "user", "parts": [part]}]
    record = record_from_span(emit({**COMMON, "gen_ai.input.messages": json.dumps(messages)}))
    assert record is not None
    assert record.request.messages == [ContextItem(role="tool", text=text, tool_call_id="c1")]


def test_pydantic_ai_builtin_tool_parts_are_server_side_and_not_client_tool_calls() -> None:
    builtin_call = {"type": "tool_call", "id": "ws_1", "name": "web_search", "arguments": {"q": "x"}, "builtin": True}
    builtin_result = {
        "type": "tool_call_response",
        "id": "ws_1",
        "name": "web_search",
        "result": "...",
        "builtin": True,
    }
    output = [{"role": "assistant", "parts": [builtin_call, builtin_result, {"type": "text", "content": "Found it."}]}]
    record = record_from_span(
        emit({**COMMON, "gen_ai.input.messages": json.dumps(output), "gen_ai.output.messages": json.dumps(output)})
    )
    assert record is not None
    assert record.request.messages == [ContextItem(role="assistant", text="Found it.")]
    (message,) = record.result.outputs
    assert (message.text, message.tool_calls) == ("Found it.", [])
