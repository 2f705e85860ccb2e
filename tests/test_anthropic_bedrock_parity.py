"""One Anthropic Messages body, two ways in: the anthropic SDK and Bedrock InvokeModel.

Both adapters read it with the same readers, so every attribute that describes
the call (usage, finish reasons, context breakdown, tool counts, captured
content) must match; only where the call went (provider, server, ids) differs.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from _anthropic_support import QUIET
from _bedrock_support import CLAUDE, make_client
from _telemetry import Telemetry

from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.instrumentors.bedrock import BedrockInstrumentor
from otel_tokenkpi.testing import fake_anthropic, fake_bedrock

SYSTEM = [{"type": "text", "text": "You are a weather bot."}, {"type": "text", "text": "Be brief."}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
MESSAGES = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}],
    },
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "21C clear"}]},
]
DIFFERENT_BY_DESIGN = {
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "server.address",
    "server.port",
    "tokenkpi.cost.usd",
    "tokenkpi.waste.cost.usd",
    "tokenkpi.context.window",
    "tokenkpi.context.utilization",
    "tokenkpi.trace.cost.usd",
    "tokenkpi.trace.waste.cost.usd",
    "tokenkpi.trace.max_context_utilization",
}


def _replies(module: Any) -> Any:
    calls = [module.ToolCall("get_weather", '{"city": "Rome"}', "t2")]
    return module.Reply(
        text="Checking Rome.", tool_calls=calls, input_tokens=90, output_tokens=12, cache_read_tokens=30
    )


def _described(span: Any) -> dict[str, Any]:
    return {k: v for k, v in span.attributes.items() if k not in DIFFERENT_BY_DESIGN}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_the_same_body_gives_the_same_record_through_both_sdks(loaded_data, monkeypatch, stream):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    telemetry = Telemetry()
    instrumentors = [AnthropicInstrumentor(), BedrockInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    request = {"max_tokens": 64, "system": SYSTEM, "messages": MESSAGES, "tools": TOOLS}
    try:
        with fake_anthropic.FakeAnthropicServer() as direct, fake_bedrock.FakeBedrockServer() as bedrock:
            direct.enqueue(_replies(fake_anthropic))
            bedrock.enqueue(_replies(fake_bedrock))
            client = anthropic.Anthropic(api_key="k", base_url=direct.url, max_retries=0, **QUIET)
            runtime = make_client(bedrock.url)
            body = json.dumps({"anthropic_version": "bedrock-2023-05-31", **request})
            if stream:
                for _ in client.messages.create(model="claude-3-5-sonnet-20240620", stream=True, **request):
                    pass
                for _ in runtime.invoke_model_with_response_stream(modelId=CLAUDE, body=body)["body"]:
                    pass
            else:
                client.messages.create(model="claude-3-5-sonnet-20240620", **request)
                runtime.invoke_model(modelId=CLAUDE, body=body)["body"].read()
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
    via_sdk, via_bedrock = telemetry.spans()
    assert (via_sdk.attributes["gen_ai.provider.name"], via_bedrock.attributes["gen_ai.provider.name"]) == (
        "anthropic",
        "aws.bedrock",
    )
    assert _described(via_sdk) == _described(via_bedrock)
    assert via_sdk.attributes["gen_ai.usage.input_tokens"] == 120  # 90 uncached + 30 cache read
    assert via_sdk.attributes["tokenkpi.tool_calls.count"] == 1
    assert "gen_ai.input.messages" in via_sdk.attributes
