"""The same planted waste through every provider's real SDK: the engine must flag the
same calls with the same kinds (numbers differ with each provider's tokenizer).

The script, per provider: (1) a tool call; (2) the same tool call again with its
argument keys reordered; (3) the duplicate's result sent back, answered with a
reply cut at the token limit; (4) that request repeated unchanged; (5) a failed
call. Each runs inside ``conversation()`` so the repeated request is known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import botocore.exceptions
import openai
import pytest
from _bedrock_support import make_client as make_bedrock_client
from _gemini_support import make_client
from conftest import Telemetry
from google.genai import errors as genai_errors

import otel_tokenkpi
from otel_tokenkpi import semconv as sc
from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.instrumentors.bedrock import BedrockInstrumentor
from otel_tokenkpi.instrumentors.google_genai import GoogleGenAIInstrumentor
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing import fake_anthropic, fake_bedrock, fake_gemini, fake_openai

SYSTEM = "You are a careful travel agent."
ASK = "What's the weather in Paris?"
ARGS = '{"city": "Paris", "unit": "C"}'
ARGS_REORDERED = '{"unit": "C", "city": "Paris"}'
RESULT_1 = '{"temp": 21, "sky": "clear"}'
RESULT_2 = '{"temp": 21, "sky": "clear", "again": true}'
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}
KINDS = {
    "failed_call": sc.WASTE_FAILED_CALL_TOKENS,
    "repeated_request": sc.WASTE_REPEATED_REQUEST_TOKENS,
    "truncated_output": sc.WASTE_TRUNCATED_OUTPUT_TOKENS,
    "duplicate_tool_call": sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS,
    "uncached_resent": sc.WASTE_UNCACHED_RESENT_TOKENS,
}
EXPECTED_KINDS = [
    set(),
    {"duplicate_tool_call", "uncached_resent"},
    {"truncated_output", "duplicate_tool_call", "uncached_resent"},
    {"repeated_request"},
    set(),
]
BIG = 2000  # billed input per call: room for every local count, so no cap hides a kind


def run_openai(server: fake_openai.FakeOpenAIServer) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": PARAMETERS}}
    ]
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    reply = fake_openai.Reply
    server.enqueue(
        reply(text=None, tool_calls=[fake_openai.ToolCall("get_weather", ARGS, "c1")], prompt_tokens=BIG),
        reply(
            text=None,
            tool_calls=[fake_openai.ToolCall("get_weather", ARGS_REORDERED, "c2")],
            prompt_tokens=BIG,
            completion_tokens=40,
        ),
        reply(text="It is 21", finish_reason="length", prompt_tokens=BIG, completion_tokens=8),
        reply(text="It is 21", finish_reason="length", prompt_tokens=BIG, completion_tokens=8),
        reply(status=500),
    )
    for call_id, result in (("c1", RESULT_1), ("c2", RESULT_2)):
        response = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
        messages += [response.choices[0].message, {"role": "tool", "tool_call_id": call_id, "content": result}]
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools, max_tokens=8)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o", messages=[*messages, {"role": "user", "content": "?"}], tools=tools
        )


def run_anthropic(server: fake_anthropic.FakeAnthropicServer) -> None:
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0, open_telemetry=False)
    tools = [{"name": "get_weather", "description": "Weather.", "input_schema": PARAMETERS}]
    messages: list[Any] = [{"role": "user", "content": ASK}]
    reply = fake_anthropic.Reply
    server.enqueue(
        reply(text=None, tool_calls=[fake_anthropic.ToolCall("get_weather", ARGS, "t1")], input_tokens=BIG),
        reply(
            text=None,
            tool_calls=[fake_anthropic.ToolCall("get_weather", ARGS_REORDERED, "t2")],
            input_tokens=BIG,
            output_tokens=40,
        ),
        reply(text="It is 21", finish_reason="max_tokens", input_tokens=BIG, output_tokens=8),
        reply(text="It is 21", finish_reason="max_tokens", input_tokens=BIG, output_tokens=8),
        reply(status=500),
    )
    for call_id, result in (("t1", RESULT_1), ("t2", RESULT_2)):
        response = client.messages.create(
            model="claude-sonnet-4-6", max_tokens=64, system=SYSTEM, messages=messages, tools=tools
        )
        messages += [
            {"role": "assistant", "content": response.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": result}]},
        ]
    for _ in range(2):
        client.messages.create(model="claude-sonnet-4-6", max_tokens=8, system=SYSTEM, messages=messages, tools=tools)
    with pytest.raises(anthropic.InternalServerError):
        more = [*messages, {"role": "assistant", "content": "It is 21"}, {"role": "user", "content": "?"}]
        client.messages.create(model="claude-sonnet-4-6", max_tokens=8, system=SYSTEM, messages=more, tools=tools)


def run_gemini(server: fake_gemini.FakeGeminiServer) -> None:
    client = make_client(server)
    declaration = {"name": "get_weather", "description": "Weather.", "parameters": PARAMETERS}
    config: dict[str, Any] = {"system_instruction": SYSTEM, "tools": [{"function_declarations": [declaration]}]}
    contents: list[Any] = [{"role": "user", "parts": [{"text": ASK}]}]
    reply = fake_gemini.Reply
    server.enqueue(
        reply(text=None, tool_calls=[fake_gemini.ToolCall("get_weather", ARGS, "f1")], input_tokens=BIG),
        reply(
            text=None,
            tool_calls=[fake_gemini.ToolCall("get_weather", ARGS_REORDERED, "f2")],
            input_tokens=BIG,
            output_tokens=40,
        ),
        reply(text="It is 21", finish_reason="MAX_TOKENS", input_tokens=BIG, output_tokens=8),
        reply(text="It is 21", finish_reason="MAX_TOKENS", input_tokens=BIG, output_tokens=8),
        reply(status=500),
    )
    for call_id, result in (("f1", RESULT_1), ("f2", RESULT_2)):
        response = client.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
        answer = {"function_response": {"name": "get_weather", "id": call_id, "response": {"result": result}}}
        contents += [response.candidates[0].content, {"role": "user", "parts": [answer]}]
    for _ in range(2):
        client.models.generate_content(
            model="gemini-2.5-flash", contents=contents, config={**config, "max_output_tokens": 8}
        )
    with pytest.raises(genai_errors.ServerError):
        more = [*contents, {"role": "user", "parts": [{"text": "?"}]}]
        client.models.generate_content(model="gemini-2.5-flash", contents=more, config=config)


def run_bedrock(server: fake_bedrock.FakeBedrockServer) -> None:
    client = make_bedrock_client(server.url)
    tool_config = {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather.", "inputSchema": {"json": PARAMETERS}}}]
    }
    messages: list[Any] = [{"role": "user", "content": [{"text": ASK}]}]
    reply, call = fake_bedrock.Reply, fake_bedrock.ToolCall
    server.enqueue(
        reply(text=None, tool_calls=[call("get_weather", ARGS, "b1")], input_tokens=BIG),
        reply(text=None, tool_calls=[call("get_weather", ARGS_REORDERED, "b2")], input_tokens=BIG, output_tokens=40),
        reply(text="It is 21", finish_reason="max_tokens", input_tokens=BIG, output_tokens=8),
        reply(text="It is 21", finish_reason="max_tokens", input_tokens=BIG, output_tokens=8),
        reply(status=500),
    )
    model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    system = [{"text": SYSTEM}]
    for call_id, result in (("b1", RESULT_1), ("b2", RESULT_2)):
        response = client.converse(modelId=model, system=system, messages=messages, toolConfig=tool_config)
        answer = {"toolResult": {"toolUseId": call_id, "content": [{"text": result}]}}
        messages += [response["output"]["message"], {"role": "user", "content": [answer]}]
    for _ in range(2):
        client.converse(
            modelId=model, system=system, messages=messages, toolConfig=tool_config, inferenceConfig={"maxTokens": 8}
        )
    with pytest.raises(botocore.exceptions.ClientError):
        more = [*messages, {"role": "assistant", "content": [{"text": "It is 21"}]}]
        more.append({"role": "user", "content": [{"text": "?"}]})
        client.converse(modelId=model, system=system, messages=more, toolConfig=tool_config)


PROVIDERS: dict[str, tuple[Callable[[], Any], type, Callable[[Any], None]]] = {
    "openai": (fake_openai.FakeOpenAIServer, OpenAIInstrumentor, run_openai),
    "anthropic": (fake_anthropic.FakeAnthropicServer, AnthropicInstrumentor, run_anthropic),
    "gcp.gemini": (fake_gemini.FakeGeminiServer, GoogleGenAIInstrumentor, run_gemini),
    "aws.bedrock": (fake_bedrock.FakeBedrockServer, BedrockInstrumentor, run_bedrock),
}


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_every_provider_flags_the_same_calls_with_the_same_kinds(loaded_data, provider):
    make_server, instrumentor_class, run = PROVIDERS[provider]
    telemetry = Telemetry()
    instrumentor = instrumentor_class()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        with make_server() as server, otel_tokenkpi.conversation(f"planted-{provider}"):
            run(server)
    finally:
        instrumentor.uninstrument()
    calls = [s for s in telemetry.spans() if s.attributes.get(sc.PROVIDER_NAME) == provider]
    assert len(calls) == 5
    flagged = [{kind for kind, key in KINDS.items() if s.attributes.get(key, 0) > 0} for s in calls]
    assert flagged == EXPECTED_KINDS
    assert [s.attributes.get(sc.TOOL_CALLS_DUPLICATE_COUNT) for s in calls] == [0, 1, 0, 0, None]
    assert calls[4].attributes[sc.WASTE_FAILED_CALL_TOKENS] == 0 and sc.ERROR_TYPE in calls[4].attributes
    assert calls[3].attributes[sc.WASTE_REPEATED_REQUEST_TOKENS] == BIG + 8
    assert all(s.attributes[sc.WASTE_TOKENS] == sum(s.attributes.get(k, 0) for k in KINDS.values()) for s in calls)
    if provider != "openai":  # no offline tokenizer: local counts are estimates, and say so
        assert all(s.attributes[sc.TOKENS_ESTIMATED] for s in calls[:4])
