"""Groq chat streams through the real groq SDK: usage from the final chunk's ``x_groq.usage`` is exact;
every way of consuming, leaving or losing a stream (sync and async) ends the span exactly once with what
was seen; streamed parallel tool calls are assembled; the user sees the same chunks."""

from __future__ import annotations

import gc
import json

import groq
import httpx
import pytest
from _groq_support import MODEL, est, wire

from otel_tokenkpi.instrumentors.groq import GroqInstrumentor
from otel_tokenkpi.testing.fake_groq import Reply, ToolCall

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_groq_support"]

SYSTEM = "You are brief."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Describe Paris in a few words."}]
ANSWER = "Paris is bright, old and full of cafes."


def text_of(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def dumps(chunks) -> list[dict]:
    return [c.model_dump(exclude={"created"}) for c in chunks]


def test_stream_usage_comes_from_x_groq(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text=ANSWER, prompt_tokens=31, completion_tokens=12, cached_tokens=16, reasoning_tokens=4))
    chunks = list(groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert text_of(chunks) == ANSWER
    assert wire(chunks[-1], "usage") is None  # Groq's place for it is x_groq:
    assert wire(chunks[-1], "x_groq", "usage", "prompt_tokens") == 31
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == "chatcmpl-1"
    assert attrs["gen_ai.response.model"] == MODEL
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 31
    assert attrs["gen_ai.usage.output_tokens"] == 12
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 16
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 4
    assert attrs["tokenkpi.context.system_tokens"] == est(SYSTEM)
    assert attrs["tokenkpi.tokens.estimated"] is True  # the context breakdown: no offline Qwen tokenizer
    assert attrs["tokenkpi.cost.usd"] > 0


def test_stream_options_usage_chunk_agrees(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text=ANSWER, prompt_tokens=40, completion_tokens=11))
    stream = groq_client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_body={"stream_options": {"include_usage": True}}
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and wire(chunks[-1], "usage", "prompt_tokens") == 40
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 40 and attrs["gen_ai.usage.output_tokens"] == 11


def test_chunks_identical_with_and_without_instrumentation(gtelemetry, gfake, groq_client):
    reply = Reply(text=ANSWER, tool_calls=[ToolCall("lookup", '{"q": "paris"}', id="call_1")])
    gfake.enqueue(reply)
    with_us = list(groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    GroqInstrumentor().uninstrument()
    gfake.reset()
    gfake.enqueue(reply)
    without = list(groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert [type(c) for c in with_us] == [type(c) for c in without]
    assert dumps(with_us) == dumps(without)
    assert len(gtelemetry.spans()) == 1


def test_streamed_parallel_tool_calls_are_assembled(gtelemetry, gfake, groq_client):
    calls = [ToolCall("get_weather", json.dumps({"city": c, "unit": "celsius"})) for c in ("Paris", "Rome", "Oslo")]
    gfake.enqueue(Reply(text=None, tool_calls=calls, prompt_tokens=60, completion_tokens=45))
    chunks = list(groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert sum(len(c.choices[0].delta.tool_calls or []) for c in chunks if c.choices) > 3  # arguments in pieces
    attrs = gtelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["tokenkpi.tool_calls.duplicate_count"] == 0
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert attrs["gen_ai.usage.output_tokens"] == 45


def test_streamed_duplicate_tool_call_is_flagged(gtelemetry, gfake, groq_client):
    args = '{"city": "Paris"}'
    history = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c0", "type": "function", "function": {"name": "get_weather", "arguments": args}}],
        },
        {"role": "tool", "tool_call_id": "c0", "content": "18 C"},
    ]
    gfake.enqueue(Reply(text=None, tool_calls=[ToolCall("get_weather", '{"city":"Paris"}')], completion_tokens=20))
    list(groq_client.chat.completions.create(model=MODEL, messages=history, stream=True))
    attrs = gtelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.duplicate_count"] == 1
    assert attrs["tokenkpi.waste.duplicate_tool_call_tokens"] == est("get_weather", '{"city":"Paris"}')


def test_context_manager_keeps_the_proxy_and_ends_on_exit(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text=ANSWER, text_chunks=6))
    with groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        assert isinstance(stream, groq.Stream)
        assert type(stream) is not groq.Stream  # our proxy did not drop out of the with
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
        assert gtelemetry.spans() == []
    assert len(gtelemetry.spans()) == 1  # ended at exit, not at garbage collection


def test_close_early_ends_once_with_partial_output(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text="one two three four five six", text_chunks=6))
    stream = groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    seen = [next(stream) for _ in range(3)]  # the role chunk and two text deltas
    stream.close()
    stream.close()
    text = text_of(seen)
    assert text and "one two three four five six".startswith(text) and text != "one two three four five six"
    span = gtelemetry.span()
    # Left early: the final chunk's x_groq.usage never arrived, so no usage is claimed.
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert span.attributes["gen_ai.response.id"] == seen[0].id
    assert stream.response.is_closed


def test_break_out_of_for_loop_then_exit(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text=ANSWER))
    with groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        for _chunk in stream:
            break
        assert gtelemetry.spans() == []
    assert len(gtelemetry.spans()) == 1


def test_abandoned_stream_ends_at_garbage_collection(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text=ANSWER))
    stream = groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    next(stream)
    assert gtelemetry.spans() == []
    del stream
    gc.collect()
    assert len(gtelemetry.spans()) == 1


def test_connection_cut_mid_stream(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text="alpha beta gamma delta epsilon", cut_stream_after=3))
    stream = groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    seen = []
    with pytest.raises(httpx.RemoteProtocolError):  # the groq SDK lets httpx's error through mid-stream
        for chunk in stream:
            seen.append(chunk)
    span = gtelemetry.span()
    assert span.attributes["error.type"] == "RemoteProtocolError"
    assert 0 < len(seen) <= 3
    assert "gen_ai.usage.output_tokens" not in span.attributes


def test_error_status_on_a_stream_request(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(status=429))
    with pytest.raises(groq.RateLimitError):
        groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert gtelemetry.span().attributes["error.type"] == "RateLimitError"


def test_raw_response_stream_is_proxied(gtelemetry, gfake, groq_client):
    gfake.enqueue(Reply(text=ANSWER, prompt_tokens=17, completion_tokens=9))
    raw = groq_client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, stream=True)
    assert gtelemetry.spans() == []
    assert text_of(raw.parse()) == ANSWER
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 17 and attrs["gen_ai.usage.output_tokens"] == 9


async def test_async_stream_iterated(gtelemetry, gfake, async_groq_client):
    gfake.enqueue(Reply(text=ANSWER, prompt_tokens=30, completion_tokens=12))
    stream = await async_groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert isinstance(stream, groq.AsyncStream)
    chunks = [c async for c in stream]
    assert text_of(chunks) == ANSWER
    attrs = gtelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 30 and attrs["gen_ai.usage.output_tokens"] == 12


async def test_async_streamed_tool_calls(gtelemetry, gfake, async_groq_client):
    calls = [ToolCall("get_time", json.dumps({"city": c})) for c in ("Paris", "Rome")]
    gfake.enqueue(Reply(text=None, tool_calls=calls, completion_tokens=22))
    stream = await async_groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    attrs = gtelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 2 and attrs["gen_ai.usage.output_tokens"] == 22


async def test_async_context_manager_and_close(gtelemetry, gfake, async_groq_client):
    gfake.enqueue(Reply(text=ANSWER), Reply(text=ANSWER))
    async with await async_groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        assert type(stream) is not groq.AsyncStream
        await stream.__anext__()
        assert gtelemetry.spans() == []
    assert len(gtelemetry.spans()) == 1
    stream = await async_groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    await stream.__anext__()
    await stream.close()
    spans = gtelemetry.spans()
    assert len(spans) == 2 and "gen_ai.usage.output_tokens" not in spans[1].attributes


async def test_async_raw_response_stream(gtelemetry, gfake, async_groq_client):
    gfake.enqueue(Reply(text=ANSWER, prompt_tokens=18, completion_tokens=9))
    raw = await async_groq_client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, stream=True)
    stream = await raw.parse()
    chunks = [c async for c in stream]
    assert text_of(chunks) == ANSWER
    assert gtelemetry.span().attributes["gen_ai.usage.input_tokens"] == 18
