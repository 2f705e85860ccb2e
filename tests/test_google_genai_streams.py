"""generate_content_stream through the real google-genai SDK (sync and async): accumulated text and
function calls, usage from the last chunk, and one span per request however the stream ends (exhausted,
left with break, closed, failed mid-way, cut off).

No ``from __future__ import annotations`` here: google-genai 1.x cannot read string annotations of a
function given as a tool (automatic function calling), and these tests run at the SDK's floor too."""

import asyncio
import gc

import _gemini_support
import pytest
from _gemini_support import HAS_JSON_SCHEMA, MODEL, RAISES_STREAM_ERRORS, RESPONSE_ID
from google.genai import errors, types
from opentelemetry.trace import StatusCode

from otel_tokenkpi.instrumentors.google_genai import GoogleGenAIInstrumentor
from otel_tokenkpi.testing.fake_gemini import Reply, ToolCall

# The shared fixtures (assigned, not imported by name, so that test arguments may use the names).
gemini_server, gemini, gclient, gtelemetry = (
    _gemini_support.gemini_server,
    _gemini_support.gemini,
    _gemini_support.gclient,
    _gemini_support.gtelemetry,
)

TEXT = "It is clear and twenty one degrees in Paris today."
CALLS = [ToolCall("get_weather", f'{{"city":"{c}"}}', id=f"fc_{c}") for c in ("Paris", "Rome", "Oslo")]
# google-genai < 1.21 has no ``parameters_json_schema``: an OpenAPI Schema (``parameters``) there.
WEATHER_TOOL = {
    "function_declarations": [
        {"name": "get_weather", "parameters_json_schema" if HAS_JSON_SCHEMA else "parameters": {"type": "object"}}
    ]
}


def full_reply() -> Reply:
    return Reply(
        text=TEXT,
        tool_calls=CALLS,
        input_tokens=90,
        output_tokens=40,
        cache_read_tokens=32,
        thoughts_tokens=11,
        tool_use_prompt_tokens=2,
        thought_text="Checking the weather.",
    )


def assert_complete_stream_span(span) -> None:
    attrs = span.attributes
    assert span.status.status_code is StatusCode.UNSET
    assert attrs["gen_ai.request.stream"] is True
    assert attrs.get("gen_ai.response.id") == RESPONSE_ID
    assert attrs["gen_ai.response.model"] == MODEL
    assert attrs["gen_ai.response.finish_reasons"] == ("STOP",)
    assert attrs["gen_ai.usage.input_tokens"] == 92
    assert attrs["gen_ai.usage.output_tokens"] == 51
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 32
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 11
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["tokenkpi.tools.defined_count"] == 1


def test_sync_stream_fully_iterated(gtelemetry, gemini, gclient):
    gemini.enqueue(full_reply())
    chunks = list(gclient.models.generate_content_stream(model=MODEL, contents="Hi", config={"tools": [WEATHER_TOOL]}))
    assert len(chunks) > 3  # thought, words, function calls
    assert "".join(c.text or "" for c in chunks) == TEXT
    assert_complete_stream_span(gtelemetry.span())


async def test_async_stream_fully_iterated(gtelemetry, gemini, gclient):
    gemini.enqueue(full_reply())
    stream = await gclient.aio.models.generate_content_stream(
        model=MODEL, contents="Hi", config={"tools": [WEATHER_TOOL]}
    )
    texts = [chunk.text or "" async for chunk in stream]
    assert "".join(texts) == TEXT
    assert_complete_stream_span(gtelemetry.span())


def test_stream_text_accumulates_per_candidate(gtelemetry, gemini, gclient):
    """With content capture off the output text is not on the span; the finish reasons of both
    candidates and their exact usage are."""
    gemini.enqueue(Reply(text=TEXT, input_tokens=7, output_tokens=24, finish_reason="MAX_TOKENS"))
    config = types.GenerateContentConfig(candidate_count=2, max_output_tokens=12)
    for _ in gclient.models.generate_content_stream(model=MODEL, contents="Hi", config=config):
        pass
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("MAX_TOKENS", "MAX_TOKENS")
    assert attrs["gen_ai.request.choice.count"] == 2
    assert attrs["gen_ai.request.max_tokens"] == 12
    assert attrs["gen_ai.usage.output_tokens"] == 24


def test_sync_stream_left_with_break_ends_its_span(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(text=TEXT, input_tokens=15, output_tokens=12))
    for chunk in gclient.models.generate_content_stream(model=MODEL, contents="Hi"):
        assert chunk.text
        break
    gc.collect()
    attrs = gtelemetry.span().attributes
    assert "gen_ai.response.finish_reasons" not in attrs  # the end was never seen
    assert attrs["gen_ai.usage.input_tokens"] == 15  # what the chunks seen reported: the prompt
    assert "gen_ai.usage.output_tokens" not in attrs


def test_sync_stream_closed_ends_its_span(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(text=TEXT))
    stream = gclient.models.generate_content_stream(model=MODEL, contents="Hi")
    next(stream)
    assert gtelemetry.spans() == []  # still open while the user holds the stream
    stream.close()
    assert len(gtelemetry.spans()) == 1


async def test_async_stream_left_with_break_and_closed_ends_its_span(gtelemetry, gemini, gclient):
    """The SDK's outer async generator does not close the per-request stream it iterates; asyncio's
    async-generator finalizer does, on the event loop, once the abandoned stream is collected."""
    gemini.enqueue(Reply(text=TEXT, input_tokens=15))
    stream = await gclient.aio.models.generate_content_stream(model=MODEL, contents="Hi")
    async for _ in stream:
        break
    await stream.aclose()
    for _ in range(20):  # let the loop run the finalizers it scheduled
        gc.collect()
        await asyncio.sleep(0)
        if gtelemetry.spans():
            break
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 15
    assert "gen_ai.response.finish_reasons" not in attrs


def test_stream_chunks_identical_with_and_without_instrumentation(gtelemetry, gemini, gclient):
    gemini.enqueue(full_reply())
    dump = {"exclude": {"sdk_http_response"}}
    with_us = [c.model_dump(**dump) for c in gclient.models.generate_content_stream(model=MODEL, contents="Hi")]
    GoogleGenAIInstrumentor().uninstrument()
    gemini.reset()
    gemini.enqueue(full_reply())
    without = [c.model_dump(**dump) for c in gclient.models.generate_content_stream(model=MODEL, contents="Hi")]
    assert with_us == without
    assert len(gtelemetry.spans()) == 1


@pytest.mark.parametrize(("status", "error"), [(400, errors.ClientError), (500, errors.ServerError)])
def test_sync_stream_http_error(gtelemetry, gemini, gclient, status, error):
    gemini.enqueue(Reply(status=status, error_message="stream refused"))
    with pytest.raises(error, match="stream refused"):
        for _ in gclient.models.generate_content_stream(model=MODEL, contents="Hi"):
            pass
    span = gtelemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == error.__name__


async def test_async_stream_http_error(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(status=400, error_message="stream refused"))
    stream = await gclient.aio.models.generate_content_stream(model=MODEL, contents="Hi")
    with pytest.raises(errors.ClientError, match="stream refused"):
        async for _ in stream:  # the SDK sends the request on the first iteration
            pass
    assert gtelemetry.span().attributes["error.type"] == "ClientError"


@pytest.mark.skipif(not RAISES_STREAM_ERRORS, reason="google-genai < 1.50 does not raise on an in-stream error event")
def test_error_event_mid_stream(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(text=TEXT, stream_error_after=2, error_message="overloaded", input_tokens=33))
    seen = []
    with pytest.raises(errors.ServerError, match="overloaded"):
        for chunk in gclient.models.generate_content_stream(model=MODEL, contents="Hi"):
            seen.append(chunk)
    assert len(seen) == 2
    span = gtelemetry.span()
    assert span.attributes["error.type"] == "ServerError"
    assert span.attributes["gen_ai.usage.input_tokens"] == 33


async def test_async_stream_cut_mid_way(gtelemetry, gemini, gclient):
    gemini.enqueue(Reply(text=TEXT, cut_stream_after=2))
    stream = await gclient.aio.models.generate_content_stream(model=MODEL, contents="Hi")
    with pytest.raises(Exception) as cut:
        async for _ in stream:
            pass
    span = gtelemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(cut.value).__qualname__


def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temp_c": 21}


def test_stream_with_automatic_function_calling_is_one_span_per_request(gtelemetry, gemini, gclient):
    gemini.enqueue(
        Reply(text=None, tool_calls=[ToolCall("get_weather", '{"city":"Paris"}')], input_tokens=30, output_tokens=6),
        Reply(text="Clear, 21C.", input_tokens=55, output_tokens=8),
    )
    chunks = list(
        gclient.models.generate_content_stream(model=MODEL, contents="Paris?", config={"tools": [get_weather]})
    )
    assert "".join(c.text or "" for c in chunks) == "Clear, 21C."
    first, second = gtelemetry.spans()
    assert first.attributes["tokenkpi.tool_calls.count"] == 1
    assert (first.attributes["gen_ai.usage.input_tokens"], second.attributes["gen_ai.usage.input_tokens"]) == (30, 55)
    assert second.attributes["tokenkpi.context.tool_results_tokens"] > 0
