"""Anthropic streams: ``create(stream=True)`` and the ``messages.stream()`` helper (GA and beta, sync and
async). Every way of reading or leaving a stream ends the one span exactly once with what was seen;
usage comes from ``message_start`` (input, cache) and ``message_delta`` (output); tool-use input is
assembled from ``input_json_delta`` pieces; the user sees the same events."""

from __future__ import annotations

import gc
import json

import anthropic
import pytest
from _anthropic_support import MODEL, USER, our_spans
from anthropic.types import RawMessageDeltaEvent, RawMessageStartEvent

from otel_tokenkpi.instrumentors import _anthropic_messages as shapes
from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.invocation import CallRequest
from otel_tokenkpi.testing.fake_anthropic import Reply, ToolCall

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_anthropic_support"]

ANSWER = "Paris is bright, old and full of cafes."
CACHED = Reply(text=ANSWER, input_tokens=25, output_tokens=11, cache_read_tokens=2000, cache_write_tokens=50)
CITIES = ("Paris", "Rome", "Oslo")

# anthropic gained OverloadedError (status 529) after 0.43; older releases raise InternalServerError for it.
OVERLOADED = getattr(anthropic, "OverloadedError", anthropic.InternalServerError)


def assert_complete_usage(attrs):
    assert attrs["gen_ai.usage.input_tokens"] == 2075
    assert attrs["gen_ai.usage.output_tokens"] == 11  # message_delta's, not message_start's placeholder
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 2000
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == 50
    assert attrs["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == "msg_0001"


def test_create_stream_iterated(atelemetry, afake, anthropic_client):
    afake.enqueue(CACHED)
    events = list(anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True))
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == ANSWER
    assert_complete_usage(atelemetry.span().attributes)


def test_events_identical_with_and_without_instrumentation(atelemetry, afake, anthropic_client):
    reply = Reply(text=ANSWER, thinking="Brief.", tool_calls=[ToolCall("lookup", '{"q": "paris"}', id="toolu_1")])
    afake.enqueue(reply)
    with_us = list(anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True))
    AnthropicInstrumentor().uninstrument()
    afake.reset()
    afake.enqueue(reply)
    without = list(anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True))
    assert [type(e) for e in with_us] == [type(e) for e in without]
    assert [e.model_dump() for e in with_us] == [e.model_dump() for e in without]


def test_create_stream_context_manager_keeps_the_proxy(atelemetry, afake, anthropic_client):
    afake.enqueue(Reply(text=ANSWER))
    with anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True) as stream:
        # anthropic 0.43's Stream metaclass answers isinstance() False for anything but an exact Stream (or a
        # MessageStream), proxies included; __class__ is what isinstance() reads everywhere else.
        assert stream.__class__ is anthropic.Stream
        assert type(stream) is not anthropic.Stream  # our proxy did not drop out of the with
        assert next(iter(stream)).type == "message_start"
        assert atelemetry.spans() == []
    assert len(atelemetry.spans()) == 1  # ended at exit, not at garbage collection


def test_create_stream_closed_early(atelemetry, afake, anthropic_client):
    afake.enqueue(Reply(text="one two three four five six", input_tokens=40, cache_read_tokens=8))
    stream = anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True)
    seen = [next(stream) for _ in range(3)]  # message_start, content_block_start, the first text delta
    stream.close()
    stream.close()
    assert seen[2].type == "content_block_delta"
    attrs = atelemetry.span().attributes
    # Left early: input was billed and reported at message_start; the output count never arrived.
    assert attrs["gen_ai.usage.input_tokens"] == 48
    assert "gen_ai.usage.output_tokens" not in attrs
    assert "gen_ai.response.finish_reasons" not in attrs
    assert attrs["gen_ai.response.id"] == seen[0].message.id
    assert stream.response.is_closed


def test_abandoned_stream_ends_at_garbage_collection(atelemetry, afake, anthropic_client):
    afake.enqueue(Reply(text=ANSWER))
    stream = anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True)
    next(stream)
    assert atelemetry.spans() == []
    del stream
    gc.collect()
    assert len(atelemetry.spans()) == 1


def test_stream_helper_text_stream(atelemetry, afake, anthropic_client):
    afake.enqueue(CACHED)
    with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        assert "".join(stream.text_stream) == ANSWER
    assert_complete_usage(atelemetry.span().attributes)


def test_stream_helper_get_final_message_is_unchanged(atelemetry, afake, anthropic_client):
    reply = Reply(text=ANSWER, tool_calls=[ToolCall("lookup", '{"q": "paris", "n": [1, 2]}', id="toolu_1")])
    afake.enqueue(reply)
    with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        ours = stream.get_final_message()
    attrs = atelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 1
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_use",)
    AnthropicInstrumentor().uninstrument()
    afake.reset()
    afake.enqueue(reply)
    with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        plain = stream.get_final_message()
    assert ours.model_dump() == plain.model_dump()
    assert ours.content[1].input == {"q": "paris", "n": [1, 2]}


def test_stream_helper_until_done_then_iteration_ends_once(atelemetry, afake, anthropic_client):
    afake.enqueue(CACHED)
    with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        stream.until_done()
        assert len(atelemetry.spans()) == 1  # ended at the end of the events, before the exit
        assert stream.get_final_text() == ANSWER
    assert_complete_usage(atelemetry.span().attributes)


def test_stream_helper_iterated_events(atelemetry, afake, anthropic_client):
    afake.enqueue(CACHED)
    with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        kinds = [event.type for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "text" in kinds  # the helper's own events are still built
    assert_complete_usage(atelemetry.span().attributes)


def test_stream_helper_left_early_ends_at_exit(atelemetry, afake, anthropic_client):
    afake.enqueue(Reply(text="one two three four five six"))
    with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        assert next(iter(stream.text_stream)) == "one "
        assert atelemetry.spans() == []
    span = atelemetry.span()
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert span.attributes["gen_ai.usage.input_tokens"] == 10
    assert stream.response.is_closed


def test_stream_helper_never_entered_sends_nothing(atelemetry, afake, anthropic_client):
    anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=USER)
    gc.collect()
    assert afake.requests == []
    assert atelemetry.spans() == []


def test_stream_helper_with_generator_messages(atelemetry, afake, anthropic_client):
    history = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."}, *USER]
    with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=(m for m in history)) as stream:
        stream.until_done()
    assert afake.requests[-1].body["messages"] == history  # the SDK still sent every message
    assert atelemetry.span().attributes["tokenkpi.context.resent_tokens"] > 0  # and we saw the history


def test_streamed_parallel_tool_calls_are_assembled(atelemetry, afake, anthropic_client):
    calls = [ToolCall("get_weather", json.dumps({"city": c, "unit": "celsius"})) for c in CITIES]
    afake.enqueue(Reply(text="Checking.", tool_calls=calls, output_tokens=90))
    with anthropic_client.messages.stream(model=MODEL, max_tokens=256, messages=USER) as stream:
        pieces = [e.partial_json for e in stream if e.type == "input_json"]
    assert len(pieces) > len(calls)  # the input really arrived in fragments
    attrs = atelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert attrs["gen_ai.usage.output_tokens"] == 90


def test_stream_reader_matches_the_plain_response(afake, anthropic_client):
    """No instrumentation: feed the SDK's own events to the reader; the record equals the one read
    from the non-streamed Message (tool-use input re-serialised as compact JSON)."""
    calls = [ToolCall("get_weather", json.dumps({"city": c, "unit": "celsius"}), id=f"toolu_{c}") for c in CITIES]
    reply = Reply(text="Checking.", thinking="Three cities.", tool_calls=calls, cache_read_tokens=9, thinking_tokens=4)
    afake.enqueue(reply, reply)
    plain = shapes.read_response(anthropic_client.messages.create(model=MODEL, max_tokens=256, messages=USER))
    reader = shapes.EventReader(CallRequest("chat", "anthropic", MODEL))
    for event in anthropic_client.messages.create(model=MODEL, max_tokens=256, messages=USER, stream=True):
        reader.feed(event)
    streamed = reader.result()
    assert [c.arguments for c in streamed.tool_calls] == [
        json.dumps(json.loads(c.arguments), separators=(",", ":")) for c in calls
    ]
    assert streamed.outputs == plain.outputs
    assert streamed.usage == plain.usage
    assert streamed.response_model == plain.response_model


def test_message_delta_input_and_cache_counts_win():
    """Newer API versions repeat input and cache counts in message_delta: those are taken."""
    reader = shapes.EventReader(CallRequest("chat", "anthropic", MODEL))
    start_usage = {"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": 0}
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": MODEL,
        "usage": start_usage,
    }
    reader.feed(RawMessageStartEvent.model_validate({"type": "message_start", "message": message}))
    delta_usage = {
        "output_tokens": 30,
        "input_tokens": 6,
        "cache_read_input_tokens": 700,
        "cache_creation_input_tokens": 9,
    }
    reader.feed(
        RawMessageDeltaEvent.model_validate(
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": delta_usage}
        )
    )
    usage = reader.result().usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        715,
        30,
        700,
        9,
    )


def test_usage_repeated_in_message_delta_end_to_end(atelemetry, afake, anthropic_client):
    afake.enqueue(
        Reply(
            text=ANSWER,
            input_tokens=25,
            output_tokens=11,
            cache_read_tokens=2000,
            cache_write_tokens=50,
            usage_in_delta=True,
        )
    )
    for _ in anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True):
        pass
    assert_complete_usage(atelemetry.span().attributes)


def test_error_event_mid_stream(atelemetry, afake, anthropic_client):
    afake.enqueue(Reply(text=ANSWER, error_event_after=3))
    seen = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        for event in anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True):
            seen.append(event)
    span = atelemetry.span()
    assert span.attributes["error.type"] == type(raised.value).__qualname__
    assert "overloaded_error" in str(raised.value)
    assert len(seen) == 2  # message_start, content_block_start (the ping is not an event)
    assert "gen_ai.usage.output_tokens" not in span.attributes


def test_connection_cut_mid_stream(atelemetry, afake, anthropic_client):
    reply = Reply(text="alpha beta gamma delta epsilon", cut_stream_after=4)
    afake.enqueue(reply)
    with pytest.raises(Exception) as ours:
        for _ in anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True):
            pass
    assert atelemetry.span().attributes["error.type"] == type(ours.value).__qualname__
    AnthropicInstrumentor().uninstrument()
    afake.reset()
    afake.enqueue(reply)
    with pytest.raises(Exception) as plain:
        for _ in anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True):
            pass
    assert type(ours.value) is type(plain.value)


def test_beta_stream_helper(atelemetry, afake, anthropic_client):
    afake.enqueue(CACHED)
    with anthropic_client.beta.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        assert stream.get_final_text() == ANSWER
    assert_complete_usage(atelemetry.span().attributes)


def test_stream_helper_error_status(atelemetry, afake, anthropic_client):
    afake.enqueue(Reply(status=529, error_message="Overloaded"))
    manager = anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=USER)
    with pytest.raises(OVERLOADED), manager as stream:
        stream.until_done()
    assert atelemetry.span().attributes["error.type"] == OVERLOADED.__name__


async def test_async_create_stream(atelemetry, afake, async_anthropic_client):
    afake.enqueue(CACHED)
    stream = await async_anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True)
    texts = [e.delta.text async for e in stream if e.type == "content_block_delta"]
    assert "".join(texts) == ANSWER
    assert_complete_usage(atelemetry.span().attributes)


async def test_async_stream_helper_text_stream_and_final_message(atelemetry, afake, async_anthropic_client):
    afake.enqueue(CACHED)
    async with async_anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == final.content[0].text == ANSWER
    assert_complete_usage(atelemetry.span().attributes)


async def test_async_stream_helper_left_early(atelemetry, afake, async_anthropic_client):
    afake.enqueue(Reply(text="one two three four five six"))
    async with async_anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        async for _text in stream.text_stream:
            break
        assert atelemetry.spans() == []
    span = atelemetry.span()
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert stream.response.is_closed


async def test_async_create_stream_closed_early(atelemetry, afake, async_anthropic_client):
    afake.enqueue(Reply(text="one two three four five six"))
    stream = await async_anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True)
    await stream.__anext__()
    await stream.close()
    assert len(atelemetry.spans()) == 1


async def test_async_beta_stream_helper_until_done(atelemetry, afake, async_anthropic_client):
    afake.enqueue(CACHED)
    async with async_anthropic_client.beta.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        await stream.until_done()
    assert_complete_usage(atelemetry.span().attributes)
    assert len(our_spans(atelemetry)) == 1
