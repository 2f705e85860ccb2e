"""InvokeModel / InvokeModelWithResponseStream through the real boto3 client: Anthropic Messages bodies are
read (the user's body still reads the identical bytes), other model families get a span without parsing."""

from __future__ import annotations

import io
import json

import pytest
from _bedrock_support import *  # noqa: F403 - fixtures: bedrock_server, fake, client, telemetry, capturing
from _bedrock_support import CLAUDE, estimated, without_request_ids
from botocore.exceptions import ClientError
from botocore.response import StreamingBody

from otel_tokenkpi.instrumentors.bedrock import BedrockInstrumentor
from otel_tokenkpi.testing.fake_bedrock import Reply, ToolCall

SYSTEM = "You are a travel agent."
TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TOOL_RESULT = '{"temp_c": 21}'
BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 200,
    "temperature": 0.5,
    "top_k": 40,
    "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
    "tools": [TOOL],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": TOOL_RESULT}]},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ],
}


def invoke(client, body=BODY, **extra):
    return client.invoke_model(modelId=CLAUDE, body=json.dumps(body), **extra)


def test_invoke_anthropic_body_is_read_and_the_user_reads_identical_bytes(telemetry, fake, client):
    reply = Reply(text="Sunny.", input_tokens=50, output_tokens=6, cache_read_tokens=900, cache_write_tokens=30)
    fake.enqueue(reply)
    response = invoke(client)
    assert isinstance(response["body"], StreamingBody)
    with_us = response["body"].read()
    assert response["body"].read() == b""  # consumed, as a real body would be

    attrs = telemetry.span().attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "aws.bedrock"
    assert attrs["gen_ai.request.model"] == CLAUDE
    assert attrs["gen_ai.request.max_tokens"] == 200
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.request.top_k"] == 40
    assert attrs["gen_ai.response.id"] == json.loads(with_us)["id"]
    assert attrs["gen_ai.response.model"] == "claude-3-5-sonnet-20240620"
    assert attrs["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attrs["gen_ai.usage.input_tokens"] == 50 + 900 + 30
    assert attrs["gen_ai.usage.output_tokens"] == 6
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 900
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == 30
    assert attrs["tokenkpi.context.system_tokens"] == estimated(SYSTEM)
    assert attrs["tokenkpi.context.tool_results_tokens"] == estimated(TOOL_RESULT)
    schema = json.dumps(TOOL["input_schema"], separators=(",", ":"))
    own = estimated(TOOL["name"], TOOL["description"], schema)
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == own + 294  # Claude Sonnet 3.5 (June) tool prompt
    assert attrs["tokenkpi.tools.defined_count"] == 1
    assert attrs["tokenkpi.tokens.estimated"] is True

    BedrockInstrumentor().uninstrument()
    fake.reset()
    fake.enqueue(reply)
    plain = invoke(client)
    without = plain["body"].read()
    assert with_us == without
    assert {k: v for k, v in without_request_ids(response).items() if k != "body"} == {
        k: v for k, v in without_request_ids(plain).items() if k != "body"
    }


def test_body_reads_in_pieces_and_lines_like_the_original(telemetry, fake, client):
    fake.enqueue(Reply(text="x" * 300))
    body = invoke(client)["body"]
    first = body.read(10)
    rest = body.read()
    assert len(first) == 10
    message = json.loads(first + rest)
    assert message["content"][0]["text"] == "x" * 300
    assert telemetry.span().attributes["gen_ai.response.id"] == message["id"]


def test_invoke_tool_use_fan_out_and_captured_content(capturing, fake, client):
    calls = [ToolCall("get_weather", json.dumps({"city": c}), id=f"toolu_{c}") for c in ("Rome", "Oslo", "Lima")]
    fake.enqueue(Reply(text=None, tool_calls=calls))
    invoke(client)
    span = capturing.span()
    assert span.attributes["tokenkpi.tool_calls.count"] == 3
    assert span.attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert json.loads(span.attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": SYSTEM}]
    assert json.loads(span.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "toolu_1", "response": TOOL_RESULT}]},
        {"role": "user", "parts": [{"type": "text", "content": "And tomorrow?"}]},
    ]


def test_invoke_with_response_stream(telemetry, fake, client):
    calls = [ToolCall("get_weather", '{"city": "Oslo"}', id="toolu_s")]
    reply = Reply(text="Checking.", tool_calls=calls, input_tokens=44, output_tokens=21, cache_read_tokens=7)
    fake.enqueue(reply)
    response = client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(BODY))
    with_us = list(response["body"])
    kinds = [json.loads(e["chunk"]["bytes"])["type"] for e in with_us]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"

    attrs = telemetry.span().attributes
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == json.loads(with_us[0]["chunk"]["bytes"])["message"]["id"]
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert attrs["gen_ai.usage.input_tokens"] == 44 + 7
    assert attrs["gen_ai.usage.output_tokens"] == 21  # message_delta's count, not message_start's placeholder
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 7
    assert attrs["tokenkpi.tool_calls.count"] == 1

    BedrockInstrumentor().uninstrument()
    fake.reset()
    fake.enqueue(reply)
    plain = client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(BODY))
    assert list(plain["body"]) == with_us
    assert plain["contentType"] == response["contentType"]


def test_streamed_tool_input_is_assembled(capturing, fake, client):
    fake.enqueue(
        Reply(text=None, tool_calls=[ToolCall("get_weather", '{"city": "Oslo", "days": [1, 2]}', id="toolu_z")])
    )
    for _ in client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(BODY))["body"]:
        pass
    (output,) = json.loads(capturing.span().attributes["gen_ai.output.messages"])
    assert output["parts"] == [
        {"type": "tool_call", "id": "toolu_z", "name": "get_weather", "arguments": {"city": "Oslo", "days": [1, 2]}}
    ]


def test_response_stream_closed_early_ends_once(telemetry, fake, client):
    fake.enqueue(Reply(text="one two three four five", text_chunks=5))
    events = client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(BODY))["body"]
    next(iter(events))
    events.close()
    events.close()
    span = telemetry.span()
    assert span.attributes["gen_ai.request.model"] == CLAUDE
    assert "gen_ai.response.finish_reasons" not in span.attributes


@pytest.mark.parametrize(
    ("model", "operation"),
    [("amazon.titan-text-express-v1", "generate_content"), ("amazon.titan-embed-text-v2:0", "embeddings")],
)
def test_other_model_families_get_a_span_without_parsing(telemetry, fake, client, model, operation):
    body = json.dumps({"inputText": "Hello"})
    response = client.invoke_model(modelId=model, body=body)
    data = response["body"].read()
    assert json.loads(data)["inputTextTokenCount"] == 10
    span = telemetry.span()
    assert span.name == f"{operation} {model}"
    assert span.attributes["gen_ai.request.model"] == model
    assert span.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert "tokenkpi.context.system_tokens" not in span.attributes


def test_file_like_body_is_not_consumed(telemetry, fake, client):
    client.invoke_model(modelId=CLAUDE, body=io.BytesIO(json.dumps(BODY).encode()))
    assert fake.requests[-1].body == BODY  # the SDK sent it whole
    assert telemetry.span().attributes["gen_ai.operation.name"] == "generate_content"


def test_invoke_error_identical_and_recorded(telemetry, fake, client):
    fake.enqueue(Reply(status=400, error_message="bad body"))
    with pytest.raises(ClientError) as with_us:
        invoke(client)
    BedrockInstrumentor().uninstrument()
    fake.enqueue(Reply(status=400, error_message="bad body"))
    with pytest.raises(ClientError) as without:
        invoke(client)
    assert str(with_us.value) == str(without.value)
    assert type(with_us.value) is type(without.value)
    assert telemetry.span().attributes["error.type"] == "ValidationException"


def test_body_cut_off_fails_the_users_read_as_it_would_without_us(telemetry, fake, client):
    fake.enqueue(Reply(text="partial", cut_body=True))
    response = invoke(client)  # the call itself succeeds: the body is read later
    with pytest.raises(Exception) as with_us:
        response["body"].read()
    span = telemetry.span()
    assert "gen_ai.usage.input_tokens" not in span.attributes  # nothing was read
    BedrockInstrumentor().uninstrument()
    fake.enqueue(Reply(text="partial", cut_body=True))
    with pytest.raises(Exception) as without:
        invoke(client)["body"].read()
    assert type(with_us.value) is type(without.value)
    assert str(with_us.value) == str(without.value)
