"""Chat streams: every way a user can consume, leave or lose a stream ends
the span exactly once, with what was seen, and the user sees the same chunks."""

from __future__ import annotations

import gc
import json

import httpx
import openai
import pytest
import tiktoken

from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing.fake_openai import Reply, ToolCall

O200K = tiktoken.get_encoding("o200k_base")
MESSAGES = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Describe Paris in a few words."},
]
ANSWER = "Paris is bright, old and full of cafes."
USAGE = {"include_usage": True}


def tokens_of(*texts: str) -> int:
    return sum(len(O200K.encode_ordinary(t)) for t in texts)


def chunk_dumps(chunks):
    return [c.model_dump(exclude={"created"}) for c in chunks]


def test_stream_without_usage_counts_output_locally(telemetry, fake, openai_client):
    fake.enqueue(Reply(text=ANSWER))
    chunks = list(openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.output_tokens"] == tokens_of(ANSWER)
    # Input is the content plus OpenAI's documented framing (3 per message + 3): an estimate.
    content = tokens_of(*(m["content"] for m in MESSAGES))
    assert attrs["gen_ai.usage.input_tokens"] == content + 3 * len(MESSAGES) + 3
    assert attrs["tokenkpi.tokens.estimated"] is True
    assert "stream_options" not in fake.requests[-1].body  # we never change the request by default


def test_stream_with_usage_is_exact(telemetry, fake, openai_client):
    fake.enqueue(Reply(text=ANSWER, prompt_tokens=31, completion_tokens=12, cached_tokens=16))
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, stream_options=USAGE)
    for _ in stream:
        pass
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 31
    assert attrs["gen_ai.usage.output_tokens"] == 12
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 16
    assert "tokenkpi.tokens.estimated" not in attrs
    assert attrs["tokenkpi.cost.usd"] > 0


def test_chunks_identical_with_and_without_instrumentation(telemetry, fake, openai_client):
    reply = Reply(text=ANSWER, tool_calls=[ToolCall("lookup", '{"q": "paris"}', id="call_1")])
    fake.enqueue(reply)
    with_us = list(
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, stream_options=USAGE)
    )
    OpenAIInstrumentor().uninstrument()
    fake.reset()
    fake.enqueue(reply)
    without = list(
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, stream_options=USAGE)
    )
    assert [type(c) for c in with_us] == [type(c) for c in without]
    assert chunk_dumps(with_us) == chunk_dumps(without)


def test_streamed_parallel_tool_calls_are_assembled(telemetry, fake, openai_client):
    calls = [ToolCall("get_weather", json.dumps({"city": c, "unit": "celsius"})) for c in ("Paris", "Rome", "Oslo")]
    fake.enqueue(Reply(text=None, tool_calls=calls))
    for _ in openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
        pass
    attrs = telemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)
    # Names and arguments counted locally; tool-call framing is not in the text: estimated.
    assert attrs["gen_ai.usage.output_tokens"] == sum(tokens_of(c.name, c.arguments) for c in calls)
    assert attrs["tokenkpi.tokens.estimated"] is True


def test_context_manager_keeps_the_proxy_and_ends_on_exit(telemetry, fake, openai_client):
    fake.enqueue(Reply(text=ANSWER, text_chunks=6))
    with openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        assert isinstance(stream, openai.Stream)
        assert type(stream) is not openai.Stream  # our proxy did not drop out of the with
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
        assert telemetry.spans() == []
    assert len(telemetry.spans()) == 1  # ended at exit, not at garbage collection


def test_close_early_ends_once_with_partial_output(telemetry, fake, openai_client):
    fake.enqueue(Reply(text="one two three four five six", text_chunks=6))
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    seen = [next(stream) for _ in range(3)]  # the role chunk and two text deltas
    stream.close()
    stream.close()
    text = "".join(c.choices[0].delta.content or "" for c in seen)
    assert text and text != "one two three four five six"
    span = telemetry.span()
    # Left early: the model produced (and billed) more than we saw, so no usage is claimed.
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert "tokenkpi.cost.usd" not in span.attributes
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert span.attributes["gen_ai.response.id"] == seen[0].id
    assert stream.response.is_closed


def test_abandoned_stream_ends_at_garbage_collection(telemetry, fake, openai_client):
    fake.enqueue(Reply(text=ANSWER))
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(stream)
    assert telemetry.spans() == []
    del stream
    gc.collect()
    assert len(telemetry.spans()) == 1


def test_break_out_of_for_loop_then_exit(telemetry, fake, openai_client):
    fake.enqueue(Reply(text=ANSWER))
    with openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        for _chunk in stream:
            break
    assert len(telemetry.spans()) == 1


# Current openai (2.x and later) wraps a transport error raised mid-stream in APIConnectionError; openai 1.40
# lets httpx's error through (the user sees the same exception with and without us either way).
OPENAI_MAJOR = int(openai.__version__.split(".")[0])
CUT_STREAM_ERROR = openai.APIConnectionError if OPENAI_MAJOR >= 2 else httpx.RemoteProtocolError


def test_connection_cut_mid_stream(telemetry, fake, openai_client):
    fake.enqueue(Reply(text="alpha beta gamma delta epsilon", cut_stream_after=3))
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    seen = []
    with pytest.raises(CUT_STREAM_ERROR):
        for chunk in stream:
            seen.append(chunk)
    span = telemetry.span()
    assert span.attributes["error.type"] == CUT_STREAM_ERROR.__name__
    assert 0 < len(seen) <= 3  # what arrived before the cut
    assert "gen_ai.usage.output_tokens" not in span.attributes


def test_malformed_sse_raises_sdk_error_and_records_it(telemetry, fake, openai_client):
    fake.enqueue(Reply(text=ANSWER, bad_json=True))
    with pytest.raises(json.JSONDecodeError):
        for _ in openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass
    assert telemetry.span().attributes["error.type"] == "JSONDecodeError"


# The chat stream() helper outside client.beta (chat.completions.stream) arrived in openai 1.92.
needs_stream_helper = pytest.mark.skipif(
    not hasattr(openai.resources.chat.completions.Completions, "stream"),
    reason="this openai release has the stream() helper only under client.beta",
)


@needs_stream_helper
def test_stream_helper_is_one_span(telemetry, fake, openai_client):
    fake.enqueue(Reply(text=ANSWER, prompt_tokens=40, completion_tokens=11))
    with openai_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES, stream_options=USAGE) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == ANSWER
    span = telemetry.span()
    assert span.attributes["gen_ai.usage.input_tokens"] == 40
    assert span.attributes["gen_ai.usage.output_tokens"] == 11
    assert len(fake.requests) == 1


@needs_stream_helper
def test_stream_helper_left_early_ends_on_exit(telemetry, fake, openai_client):
    fake.enqueue(Reply(text="one two three four five", text_chunks=5))
    with openai_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content.delta" and event.delta:
                first_delta = event.delta
                break
        assert telemetry.spans() == []
    span = telemetry.span()  # ended by the helper's exit, not garbage collection
    assert first_delta
    assert span.attributes["gen_ai.response.id"].startswith("chatcmpl-")
    assert "gen_ai.usage.output_tokens" not in span.attributes


def test_raw_response_stream_is_proxied(telemetry, fake, openai_client):
    fake.enqueue(Reply(text=ANSWER, prompt_tokens=17, completion_tokens=9))
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options=USAGE
    )
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert telemetry.span().attributes["gen_ai.usage.input_tokens"] == 17


def test_inject_stream_usage_is_opt_in(loaded_data, fake, openai_client):
    from _telemetry import Telemetry

    telemetry = Telemetry()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, inject_stream_usage=True)
    try:
        fake.enqueue(Reply(text=ANSWER, prompt_tokens=22, completion_tokens=10))
        chunks = list(openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    finally:
        instrumentor.uninstrument()
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 22
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.usage.output_tokens"] == 10
    assert "tokenkpi.tokens.estimated" not in attrs


async def test_async_stream_iterated(telemetry, fake, async_openai_client):
    fake.enqueue(Reply(text=ANSWER, prompt_tokens=30, completion_tokens=12))
    stream = await async_openai_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options=USAGE
    )
    assert isinstance(stream, openai.AsyncStream)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == ANSWER
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 30 and attrs["gen_ai.usage.output_tokens"] == 12


async def test_async_context_manager_and_close(telemetry, fake, async_openai_client):
    fake.enqueue(Reply(text=ANSWER), Reply(text=ANSWER))
    async with await async_openai_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    ) as stream:
        assert type(stream) is not openai.AsyncStream
        await stream.__anext__()
    assert len(telemetry.spans()) == 1
    stream = await async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    await stream.__anext__()
    await stream.close()
    assert len(telemetry.spans()) == 2


@needs_stream_helper
async def test_async_stream_helper_left_early(telemetry, fake, async_openai_client):
    fake.enqueue(Reply(text="one two three", text_chunks=3))
    async with async_openai_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        async for event in stream:
            if event.type == "content.delta":
                break
    assert len(telemetry.spans()) == 1


@needs_stream_helper
async def test_async_stream_helper_final_completion(telemetry, fake, async_openai_client):
    fake.enqueue(Reply(text=ANSWER, prompt_tokens=12, completion_tokens=6))
    async with async_openai_client.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, stream_options=USAGE
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == ANSWER
    assert telemetry.span().attributes["gen_ai.usage.output_tokens"] == 6
