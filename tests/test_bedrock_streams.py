"""ConverseStream through the real boto3 client: the user iterates our proxy in ``response["stream"]`` and
sees every event unchanged; iterating to the end, closing, leaving early and failing each end the span
exactly once."""

from __future__ import annotations

import gc
import json

import pytest
from _bedrock_support import *  # noqa: F403 - fixtures: bedrock_server, fake, client, telemetry, capturing
from _bedrock_support import CLAUDE, estimated, needs_prompt_caching
from botocore.eventstream import EventStream
from botocore.exceptions import EventStreamError
from urllib3.exceptions import ProtocolError

from otel_tokenkpi.instrumentors.bedrock import BedrockInstrumentor
from otel_tokenkpi.testing.fake_bedrock import Reply, ToolCall

MESSAGES = [{"role": "user", "content": [{"text": "Describe Paris in a few words."}]}]
SYSTEM = [{"text": "You are brief."}]
ANSWER = "Paris is bright, old and full of cafes."


def stream(client, **extra):
    return client.converse_stream(modelId=CLAUDE, system=SYSTEM, messages=MESSAGES, **extra)


def text_of(events) -> str:
    return "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)


@needs_prompt_caching
def test_full_iteration_exact_usage_and_same_events(telemetry, fake, client):
    reply = Reply(text=ANSWER, input_tokens=31, output_tokens=12, cache_read_tokens=500, cache_write_tokens=20)
    fake.enqueue(reply)
    response = stream(client, inferenceConfig={"maxTokens": 64})
    assert isinstance(response["stream"], EventStream)  # the proxy passes for the real thing
    assert type(response["stream"]) is not EventStream
    with_us = list(response["stream"])
    assert text_of(with_us) == ANSWER

    span = telemetry.span()
    attrs = span.attributes
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attrs["gen_ai.usage.input_tokens"] == 31 + 500 + 20
    assert attrs["gen_ai.usage.output_tokens"] == 12
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 500
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == 20
    assert attrs["tokenkpi.context.system_tokens"] == estimated("You are brief.")
    assert attrs["tokenkpi.tokens.estimated"] is True

    BedrockInstrumentor().uninstrument()
    fake.enqueue(reply)
    without = list(stream(client, inferenceConfig={"maxTokens": 64})["stream"])
    assert with_us == without


def test_streamed_tool_use_input_is_assembled(capturing, fake, client):
    calls = [ToolCall("get_weather", json.dumps({"city": c, "unit": "celsius"})) for c in ("Paris", "Rome", "Oslo")]
    fake.enqueue(Reply(text="Checking.", tool_calls=calls))
    events = list(stream(client)["stream"])
    pieces = [e for e in events if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})]
    assert len(pieces) > 3  # the inputs did arrive in fragments

    span = capturing.span()
    assert span.attributes["tokenkpi.tool_calls.count"] == 3
    assert span.attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    (output,) = json.loads(span.attributes["gen_ai.output.messages"])
    assert output["parts"][0] == {"type": "text", "content": "Checking."}
    assert [(p["id"], p["name"], p["arguments"]) for p in output["parts"][1:]] == [
        (f"tooluse_{i}", "get_weather", {"city": c, "unit": "celsius"})
        for i, c in enumerate(("Paris", "Rome", "Oslo"), 1)
    ]


def test_close_early_ends_once_without_claiming_usage(telemetry, fake, client):
    fake.enqueue(Reply(text="one two three four five six", text_chunks=6))
    events = stream(client)["stream"]
    seen = [next(iter(events)) for _ in range(3)]  # messageStart and two text deltas
    assert telemetry.spans() == []
    events.close()
    events.close()
    assert text_of(seen) and text_of(seen) != "one two three four five six"
    span = telemetry.span()
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert "gen_ai.response.finish_reasons" not in span.attributes


def test_left_early_ends_at_garbage_collection(telemetry, fake, client):
    fake.enqueue(Reply(text=ANSWER))
    response = stream(client)
    for _event in response["stream"]:
        break
    assert telemetry.spans() == []
    del response, _event
    gc.collect()
    assert len(telemetry.spans()) == 1


def test_exception_event_raises_the_sdk_error_and_marks_the_span(telemetry, fake, client):
    fake.enqueue(Reply(text=ANSWER, stream_error="throttlingException", error_message="slow down"))
    with pytest.raises(EventStreamError) as with_us:
        list(stream(client)["stream"])
    BedrockInstrumentor().uninstrument()
    fake.enqueue(Reply(text=ANSWER, stream_error="throttlingException", error_message="slow down"))
    with pytest.raises(EventStreamError) as without:
        list(stream(client)["stream"])
    assert str(with_us.value) == str(without.value)
    span = telemetry.span()
    assert span.attributes["error.type"] == "EventStreamError"
    assert "gen_ai.usage.output_tokens" not in span.attributes


def test_connection_cut_mid_stream(telemetry, fake, client):
    fake.enqueue(Reply(text="alpha beta gamma delta epsilon", cut_stream_after=3))
    seen = []
    with pytest.raises(ProtocolError):
        for event in stream(client)["stream"]:
            seen.append(event)
    assert 0 < len(seen) <= 3
    span = telemetry.span()
    assert span.attributes["error.type"] == "ProtocolError"
    assert "gen_ai.usage.output_tokens" not in span.attributes


def test_stream_error_status_before_the_stream(telemetry, fake, client):
    fake.enqueue(Reply(status=429, error_message="slow"))
    with pytest.raises(client.exceptions.ThrottlingException):
        stream(client)
    assert telemetry.span().attributes["error.type"] == "ThrottlingException"
