"""Ollama streams (``stream=True``): NDJSON objects read by the SDK into a generator (sync) or an async
generator (async). Every way of reading or leaving a stream ends the one span exactly once with what was
seen; usage and the finish reason come from the last object (``done: true``); the user sees the same objects."""

from __future__ import annotations

import gc
import json

import httpx
import ollama
import pytest
from _ollama_support import MODEL, USER, WEATHER_TOOL, as_plain, at, estimate

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.instrumentors import _ollama_response as shapes
from otel_tokenkpi.instrumentors.ollama import OllamaInstrumentor
from otel_tokenkpi.invocation import CallRequest
from otel_tokenkpi.testing.fake_ollama import Reply, ToolCall

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_ollama_support"]

ANSWER = "The sky is blue because of Rayleigh scattering."
CITIES = ("Paris", "Rome", "Oslo")


def assert_complete(attrs, input_tokens=26, output_tokens=9, reason="stop"):
    assert attrs[sc.USAGE_INPUT_TOKENS] == input_tokens
    assert attrs[sc.USAGE_OUTPUT_TOKENS] == output_tokens
    assert attrs[sc.RESPONSE_FINISH_REASONS] == (reason,)
    assert attrs[sc.REQUEST_STREAM] is True
    assert attrs[sc.RESPONSE_MODEL] == MODEL


def test_chat_stream_iterated(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(text=ANSWER, input_tokens=26, output_tokens=9))
    parts = list(oclient.chat(MODEL, USER, stream=True))
    assert "".join(at(p, "message", "content") for p in parts) == ANSWER
    assert at(parts[-1], "done") is True
    assert ofake.requests[-1].body["stream"] is True
    attrs = otelemetry.span().attributes
    assert_complete(attrs)
    assert attrs[sc.CONTEXT_NEW_TOKENS] == estimate(USER[0]["content"])


def test_objects_identical_with_and_without_instrumentation(otelemetry, ofake, oclient):
    reply = Reply(text=ANSWER, thinking="Short answer.", tool_calls=[ToolCall("look", '{"q": "sky"}')])
    ofake.enqueue(reply)
    with_us = list(oclient.chat(MODEL, USER, stream=True))
    OllamaInstrumentor().uninstrument()
    ofake.reset()
    ofake.enqueue(reply)
    without = list(oclient.chat(MODEL, USER, stream=True))
    assert [type(p) for p in with_us] == [type(p) for p in without]
    assert [as_plain(p) for p in with_us] == [as_plain(p) for p in without]


def test_streamed_tool_calls_are_collected(otelemetry, ofake, oclient):
    calls = [ToolCall("get_weather", json.dumps({"city": c, "unit": "C"})) for c in CITIES]
    ofake.enqueue(Reply(text="Checking.", tool_calls=calls, output_tokens=70))
    parts = list(oclient.chat(MODEL, USER, tools=[WEATHER_TOOL], stream=True))
    assert sum(len(at(p, "message", "tool_calls") or []) for p in parts) == 3  # one object per call
    attrs = otelemetry.span().attributes
    assert attrs[sc.TOOL_CALLS_COUNT] == 3
    assert attrs[sc.TOOLS_DEFINED_COUNT] == 1
    assert_complete(attrs, input_tokens=10, output_tokens=70)


def test_stream_reader_matches_the_plain_response(ofake, oclient):
    """No instrumentation: the record read from the SDK's stream objects equals the one read from the
    non-streamed response."""
    calls = [ToolCall("get_weather", json.dumps({"city": c})) for c in CITIES]
    reply = Reply(text=ANSWER, thinking="Three cities.", tool_calls=calls, finish_reason="length")
    ofake.enqueue(reply, reply)
    plain = shapes.read_chat_response(oclient.chat(MODEL, USER))
    reader = shapes.ChatChunkReader(CallRequest("chat", "ollama", MODEL))
    for part in oclient.chat(MODEL, USER, stream=True):
        reader.feed(part)
    streamed = reader.result()
    assert streamed.outputs == plain.outputs
    assert streamed.usage == plain.usage
    assert streamed.response_model == plain.response_model
    assert [c.arguments for c in streamed.tool_calls] == [
        json.dumps({"city": c}, separators=(",", ":")) for c in CITIES
    ]


def test_closed_early(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(text="one two three four five six"))
    stream = oclient.chat(MODEL, USER, stream=True)
    seen = [at(next(stream), "message", "content") for _ in range(2)]
    assert otelemetry.spans() == []
    stream.close()
    stream.close()
    assert seen == ["one ", "two "]
    attrs = otelemetry.span().attributes
    # Left before the last object: no counts and no reason arrived.
    assert sc.USAGE_INPUT_TOKENS not in attrs
    assert sc.USAGE_OUTPUT_TOKENS not in attrs
    assert sc.RESPONSE_FINISH_REASONS not in attrs
    assert sc.ERROR_TYPE not in attrs


def test_left_early_with_break_ends_at_garbage_collection(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(text=ANSWER))
    stream = oclient.chat(MODEL, USER, stream=True)
    for _ in stream:
        break
    assert otelemetry.spans() == []
    del stream
    gc.collect()
    assert len(otelemetry.spans()) == 1


def test_never_iterated_stream_sends_nothing_and_ends_at_garbage_collection(otelemetry, ofake, oclient):
    stream = oclient.chat(MODEL, USER, stream=True)  # the SDK's generator sends the request on its first step
    del stream
    gc.collect()
    assert ofake.requests == []
    assert len(otelemetry.spans()) == 1


def test_error_status_surfaces_on_the_first_step(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(status=404, error_message="model 'nope' not found"))
    stream = oclient.chat("nope", USER, stream=True)
    with pytest.raises(ollama.ResponseError) as caught:
        next(stream)
    assert caught.value.status_code == 404
    attrs = otelemetry.span().attributes
    assert attrs[sc.ERROR_TYPE] == "ResponseError"
    assert attrs[sc.WASTE_FAILED_CALL_TOKENS] == 0


def test_in_stream_error_object(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(text="one two three four", stream_error_after=2, error_message="out of memory"))
    seen = []
    with pytest.raises(ollama.ResponseError, match="out of memory"):
        for part in oclient.chat(MODEL, USER, stream=True):
            seen.append(at(part, "message", "content"))
    assert seen == ["one ", "two "]
    attrs = otelemetry.span().attributes
    assert attrs[sc.ERROR_TYPE] == "ResponseError"
    assert sc.USAGE_OUTPUT_TOKENS not in attrs


def test_stream_cut_mid_way(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(text="one two three four", cut_stream_after=2))
    with pytest.raises(httpx.HTTPError):
        list(oclient.chat(MODEL, USER, stream=True))
    attrs = otelemetry.span().attributes
    assert attrs[sc.ERROR_TYPE] in ("RemoteProtocolError", "ReadError")
    assert sc.RESPONSE_FINISH_REASONS not in attrs


def test_generate_stream(otelemetry, ofake, oclient):
    ofake.enqueue(Reply(text=ANSWER, finish_reason="length", input_tokens=26, output_tokens=9))
    parts = list(oclient.generate(MODEL, "Why is the sky blue?", stream=True))
    assert "".join(at(p, "response") for p in parts) == ANSWER
    attrs = otelemetry.span().attributes
    assert attrs[sc.OPERATION_NAME] == "text_completion"
    assert_complete(attrs, reason="length")
    assert attrs[sc.WASTE_TRUNCATED_OUTPUT_TOKENS] == 9


async def test_async_chat_stream_iterated(otelemetry, ofake, async_oclient):
    calls = [ToolCall("get_weather", json.dumps({"city": c})) for c in CITIES]
    ofake.enqueue(Reply(text=ANSWER, tool_calls=calls, input_tokens=26, output_tokens=9))
    stream = await async_oclient.chat(MODEL, USER, stream=True)
    parts = [part async for part in stream]
    assert "".join(at(p, "message", "content") for p in parts) == ANSWER
    attrs = otelemetry.span().attributes
    assert_complete(attrs)
    assert attrs[sc.TOOL_CALLS_COUNT] == 3


async def test_async_stream_aclose_ends_the_span(otelemetry, ofake, async_oclient):
    ofake.enqueue(Reply(text="one two three four five six"))
    stream = await async_oclient.chat(MODEL, USER, stream=True)
    assert at(await stream.__anext__(), "message", "content") == "one "
    assert otelemetry.spans() == []
    await stream.aclose()
    attrs = otelemetry.span().attributes
    assert sc.USAGE_OUTPUT_TOKENS not in attrs
    assert sc.ERROR_TYPE not in attrs


async def test_async_generate_stream_and_in_stream_error(otelemetry, ofake, async_oclient):
    ofake.enqueue(Reply(text="a b c", input_tokens=4, output_tokens=3), Reply(text="a b c", stream_error_after=1))
    stream = await async_oclient.generate(MODEL, "Go", stream=True)
    assert "".join([at(p, "response") async for p in stream]) == "a b c"
    stream = await async_oclient.generate(MODEL, "Go", stream=True)
    with pytest.raises(ollama.ResponseError):
        async for _ in stream:
            pass
    done, failed = otelemetry.spans()
    assert done.attributes[sc.USAGE_INPUT_TOKENS] == 4
    assert done.attributes[sc.RESPONSE_FINISH_REASONS] == ("stop",)
    assert failed.attributes[sc.ERROR_TYPE] == "ResponseError"
