"""Bedrock Converse through the real boto3 client: span shape, exact usage (cache included), context
breakdown, tool fan-out, stop reasons, errors, content capture, metrics, and that the user's result and
every other AWS call are untouched."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from _bedrock_support import *  # noqa: F403 - fixtures: bedrock_server, fake, client, telemetry, capturing
from _bedrock_support import CLAUDE, estimated, make_client, needs_prompt_caching, without_request_ids
from botocore.config import Config
from botocore.exceptions import ClientError
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokenkpi import prices
from otel_tokenkpi.instrumentors.bedrock import BedrockInstrumentor
from otel_tokenkpi.testing.fake_bedrock import Reply, ToolCall
from otel_tokenkpi.tool_tokens import anthropic_tool_prompt_tokens

SYSTEM = "You are a travel agent. Answer in one sentence."
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER_TOOL = {
    "toolSpec": {"name": "get_weather", "description": "Current weather for a city.", "inputSchema": {"json": SCHEMA}}
}
HOTEL_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "max_price": {"type": "number"}}}
HOTEL_TOOL = {
    "toolSpec": {"name": "find_hotel", "description": "Hotels under a price.", "inputSchema": {"json": HOTEL_SCHEMA}}
}
TOOL_RESULT_TEXT = "Paris: 21C, clear."
TOOL_RESULT_JSON = {"city": "Paris", "temp_c": 21}
PNG = b"\x89PNG\r\n\x1a\nfake"
HISTORY = [
    {
        "role": "user",
        "content": [{"text": "Weather in Paris?"}, {"image": {"format": "png", "source": {"bytes": PNG}}}],
    },
    {
        "role": "assistant",
        "content": [
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Paris"}}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "toolResult": {
                    "toolUseId": "tooluse_a",
                    "content": [{"text": TOOL_RESULT_TEXT}, {"json": TOOL_RESULT_JSON}],
                }
            },
            {"cachePoint": {"type": "default"}},
        ],
    },
]


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def tool_tokens(tool: dict[str, Any]) -> int:
    spec = tool["toolSpec"]
    return estimated(spec["name"], spec["description"], compact(spec["inputSchema"]["json"]))


def converse(client: Any, **extra: Any) -> dict[str, Any]:
    return client.converse(
        modelId=CLAUDE,
        system=[{"text": SYSTEM}, {"cachePoint": {"type": "default"}}],
        messages=HISTORY,
        **extra,
    )


@needs_prompt_caching
def test_plain_converse_span_shape_exact_usage_and_context(telemetry, fake, client):
    fake.enqueue(Reply(text="Sunny.", input_tokens=20, output_tokens=7, cache_read_tokens=1800, cache_write_tokens=64))
    config = {"maxTokens": 50, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]}
    response = converse(client, toolConfig={"tools": [WEATHER_TOOL, HOTEL_TOOL]}, inferenceConfig=config)
    assert response["output"]["message"]["content"] == [{"text": "Sunny."}]

    span = telemetry.span()
    attrs = dict(span.attributes)
    host, port = fake.url.removeprefix("http://").split(":")
    assert span.name == f"chat {CLAUDE}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "aws.bedrock"
    assert attrs["gen_ai.request.model"] == CLAUDE
    assert attrs["server.address"] == host and attrs["server.port"] == int(port)
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.stop_sequences"] == ("END",)
    assert "gen_ai.request.stream" not in attrs
    assert attrs["gen_ai.response.finish_reasons"] == ("end_turn",)
    # Bedrock's inputTokens excludes cache reads and writes; semconv input includes them.
    assert attrs["gen_ai.usage.input_tokens"] == 20 + 1800 + 64
    assert attrs["gen_ai.usage.output_tokens"] == 7
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1800
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == 64
    # Context breakdown: no offline tokenizer for Bedrock models, so estimated and flagged.
    assert attrs["tokenkpi.tokens.estimated"] is True
    assert attrs["tokenkpi.context.system_tokens"] == estimated(SYSTEM)
    assert attrs["tokenkpi.context.tool_results_tokens"] == estimated(TOOL_RESULT_TEXT + compact(TOOL_RESULT_JSON))
    own = tool_tokens(WEATHER_TOOL) + tool_tokens(HOTEL_TOOL)
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == own + anthropic_tool_prompt_tokens(CLAUDE, None)
    assert attrs["tokenkpi.tools.defined_count"] == 2
    assert attrs["tokenkpi.tool_calls.count"] == 0
    # Cache-aware price of the Bedrock model (genai-prices' aws provider).
    info = prices.lookup("aws.bedrock", CLAUDE)
    assert info is not None
    expected_cost = prices.cost_usd(
        info, input_tokens=1884, output_tokens=7, cache_read_tokens=1800, cache_write_tokens=64
    )
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(expected_cost)
    assert attrs["tokenkpi.context.window"] == 200000


def test_usage_without_cache_fields(telemetry, fake, client):
    fake.enqueue(Reply(input_tokens=31, output_tokens=4))
    client.converse(modelId=CLAUDE, messages=HISTORY[:1])
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 31
    assert attrs["gen_ai.usage.output_tokens"] == 4
    assert "gen_ai.usage.cache_read.input_tokens" not in attrs


def test_three_tool_uses_are_fan_out(telemetry, fake, client):
    calls = [ToolCall("get_weather", json.dumps({"city": c})) for c in ("Paris", "Rome", "Oslo")]
    fake.enqueue(Reply(text=None, tool_calls=calls, input_tokens=40, output_tokens=30))
    response = client.converse(modelId=CLAUDE, messages=HISTORY[:1], toolConfig={"tools": [WEATHER_TOOL]})
    assert [b["toolUse"]["input"]["city"] for b in response["output"]["message"]["content"]] == [
        "Paris",
        "Rome",
        "Oslo",
    ]
    attrs = telemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["tokenkpi.tools.defined_count"] == 1
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_use",)


@pytest.mark.parametrize("reason", ["end_turn", "max_tokens", "stop_sequence", "guardrail_intervened"])
def test_stop_reasons_as_bedrock_spells_them(telemetry, fake, client, reason):
    fake.enqueue(Reply(text="cut", finish_reason=reason))
    assert client.converse(modelId=CLAUDE, messages=HISTORY[:1])["stopReason"] == reason
    assert telemetry.span().attributes["gen_ai.response.finish_reasons"] == (reason,)


@needs_prompt_caching
def test_result_and_request_identical_with_and_without_instrumentation(telemetry, fake, client):
    reply = Reply(text="Same.", tool_calls=[ToolCall("get_weather", '{"city": "Paris"}', id="tooluse_x")])
    extra = {"toolConfig": {"tools": [WEATHER_TOOL]}, "inferenceConfig": {"maxTokens": 9}}
    fake.enqueue(reply)
    with_us = converse(client, **extra)
    sent_with_us = fake.requests[-1].body
    BedrockInstrumentor().uninstrument()
    fake.enqueue(reply)
    without = converse(client, **extra)
    assert without_request_ids(with_us) == without_request_ids(without)
    assert set(with_us["ResponseMetadata"]) == set(without["ResponseMetadata"])
    assert fake.requests[-1].body == sent_with_us
    assert len(telemetry.spans()) == 1  # the uninstrumented call made none


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "ValidationException"), (429, "ThrottlingException"), (500, "InternalServerException")],
)
def test_errors_pass_through_identically_and_mark_the_span(telemetry, fake, client, status, code):
    fake.enqueue(Reply(status=status, error_message=f"boom {status}"))
    with pytest.raises(ClientError) as with_us:
        client.converse(modelId=CLAUDE, messages=HISTORY[:1])
    BedrockInstrumentor().uninstrument()
    fake.enqueue(Reply(status=status, error_message=f"boom {status}"))
    with pytest.raises(ClientError) as without:
        client.converse(modelId=CLAUDE, messages=HISTORY[:1])
    assert type(with_us.value) is type(without.value)
    assert type(with_us.value).__name__ == code
    assert str(with_us.value) == str(without.value)
    assert (
        with_us.value.response["Error"]
        == without.value.response["Error"]
        == {"Message": f"boom {status}", "Code": code}
    )
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == code
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_sdk_retries_make_one_span(telemetry, fake):
    client = make_client(fake.url, Config(retries={"mode": "standard", "total_max_attempts": 2}))
    fake.enqueue(Reply(status=500), Reply(text="second time", input_tokens=9))
    response = client.converse(modelId=CLAUDE, messages=HISTORY[:1])
    assert response["output"]["message"]["content"] == [{"text": "second time"}]
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert len(fake.requests) == 2
    span = telemetry.span()
    assert span.attributes["gen_ai.usage.input_tokens"] == 9
    assert "error.type" not in span.attributes


@pytest.mark.skipif(
    not hasattr(make_client("http://localhost:1"), "list_async_invokes"),
    reason="ListAsyncInvokes is newer than this botocore",
)
def test_other_aws_calls_are_untouched(telemetry, fake, client):
    # A bedrock-runtime operation we do not instrument, and another service on the same patched method.
    assert client.list_async_invokes()["asyncInvokeSummaries"] == []
    s3 = boto3.client(
        "s3", endpoint_url=fake.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with pytest.raises(ClientError) as with_us:
        s3.list_buckets()
    BedrockInstrumentor().uninstrument()
    with pytest.raises(ClientError) as without:
        s3.list_buckets()
    assert str(with_us.value) == str(without.value)
    assert telemetry.spans() == []
    assert [r.path for r in fake.requests] == ["/async-invoke", "/", "/"]


@needs_prompt_caching
def test_metrics_use_bedrock_provider_and_exact_usage(telemetry, fake, client):
    fake.enqueue(Reply(input_tokens=12, output_tokens=3, cache_read_tokens=100, cache_write_tokens=0))
    client.converse(modelId=CLAUDE, messages=HISTORY[:1])
    points = {p.attributes["gen_ai.token.type"]: p for p in telemetry.metric_points("gen_ai.client.token.usage")}
    assert points["input"].sum == 112
    assert points["output"].sum == 3
    assert points["input"].attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert points["input"].attributes["gen_ai.request.model"] == CLAUDE
    (duration,) = telemetry.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 1 and duration.attributes["gen_ai.operation.name"] == "chat"


def test_uninstrument_stops_spans(telemetry, fake, client):
    BedrockInstrumentor().uninstrument()
    client.converse(modelId=CLAUDE, messages=HISTORY[:1])
    assert telemetry.spans() == []


# --- content capture -------------------------------------------------------------------------------------


def content(span: Any, name: str) -> Any:
    return json.loads(span.attributes[name])


@needs_prompt_caching
def test_captured_content_has_semconv_shape(capturing, fake, client):
    fake.enqueue(Reply(text="It is clear.", tool_calls=[ToolCall("find_hotel", '{"city": "Paris"}', id="tooluse_h")]))
    converse(client, toolConfig={"tools": [WEATHER_TOOL, HOTEL_TOOL]})
    span = capturing.span()
    assert content(span, "gen_ai.system_instructions") == [{"type": "text", "content": SYSTEM}]
    assert content(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Let me check."},
                {"type": "tool_call", "id": "tooluse_a", "name": "get_weather", "arguments": {"city": "Paris"}},
            ],
        },
        {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_call_response",
                    "id": "tooluse_a",
                    "response": TOOL_RESULT_TEXT + compact(TOOL_RESULT_JSON),
                }
            ],
        },
    ]
    assert content(span, "gen_ai.output.messages") == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "It is clear."},
                {"type": "tool_call", "id": "tooluse_h", "name": "find_hotel", "arguments": {"city": "Paris"}},
            ],
            "finish_reason": "tool_use",
        }
    ]


@needs_prompt_caching
def test_no_content_without_opt_in(telemetry, fake, client):
    fake.enqueue(Reply(text="canary-answer"))
    converse(client)
    span = telemetry.span()
    for name in ("gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.output.messages"):
        assert name not in span.attributes
    texts = [str(v) for v in span.attributes.values()]
    assert not [t for t in texts if "Paris" in t or "canary" in t or "travel agent" in t]


def test_entry_point_and_extra_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    value = project["entry-points"]["opentelemetry_instrumentor"]["tokenkpi_bedrock"]
    module, _, name = value.partition(":")
    assert getattr(importlib.import_module(module), name) is BedrockInstrumentor
    assert project["optional-dependencies"]["bedrock"] == ["boto3>=1.34.116"]
