"""Mistral ``chat.stream`` / ``stream_async`` through the real mistralai SDK: the ``EventStream`` (and its
async twin) stays an iterator, a context manager and (mistralai >= 2.10) closable behind our proxy; text, tool
calls (whole, fanned out, or in fragments, with text or object arguments) and the last chunk's usage are
accumulated; and the span ends once however the stream ends (exhausted, left with break, closed, exited, cut
off, failed)."""

from __future__ import annotations

import gc
from importlib.metadata import version

import _mistral_support
import pytest
from _mistral_support import MODEL, USER
from mistralai.client import errors, models
from mistralai.client.utils import eventstreaming
from opentelemetry.trace import StatusCode

from otel_tokenkpi.instrumentors import _mistral_chat
from otel_tokenkpi.instrumentors.mistral import MistralInstrumentor
from otel_tokenkpi.invocation import CallRequest
from otel_tokenkpi.testing.fake_mistral import Reply, ToolCall

mistral_server, mfake, mclient, mtelemetry = (
    _mistral_support.mistral_server,
    _mistral_support.mfake,
    _mistral_support.mclient,
    _mistral_support.mtelemetry,
)

ANSWER = "It is clear and twenty one degrees in Paris today."
CALLS = [ToolCall("get_weather", f'{{"city": "{c}"}}', id=f"id{c[:4]}0000") for c in ("Paris", "Rome", "Oslo")]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]

# EventStream.close() / EventStreamAsync.close() arrived in mistralai 2.10.0; 2.0 to 2.9 streams end by
# exhaustion, by their context manager or at garbage collection only.
MISTRALAI = tuple(int(p) for p in version("mistralai").split(".")[:3] if p.isdigit())
HAS_CLOSE = MISTRALAI >= (2, 10, 0)
needs_stream_close = pytest.mark.skipif(not HAS_CLOSE, reason="mistralai < 2.10 has no EventStream.close()")


def full_reply(**overrides) -> Reply:
    fields = {"text": ANSWER, "input_tokens": 90, "output_tokens": 40, "cache_read_tokens": 32, **overrides}
    return Reply(**fields)


def text_of(events) -> str:
    return "".join(e.data.choices[0].delta.content or "" for e in events if e.data.choices)


def assert_complete_stream_span(span, finish: str = "stop") -> None:
    attrs = span.attributes
    assert span.status.status_code is StatusCode.UNSET
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == "cmpl-" + "0" * 31 + "1"
    assert attrs["gen_ai.response.model"] == MODEL
    assert attrs["gen_ai.response.finish_reasons"] == (finish,)
    assert attrs["gen_ai.usage.input_tokens"] == 90
    assert attrs["gen_ai.usage.output_tokens"] == 40
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 32
    assert attrs["tokenkpi.tokens.estimated"] is True


def test_sync_stream_fully_iterated(mtelemetry, mfake, mclient):
    mfake.enqueue(full_reply())
    events = list(mclient.chat.stream(model=MODEL, messages=USER))
    assert len(events) > 5 and text_of(events) == ANSWER
    assert_complete_stream_span(mtelemetry.span())
    assert mtelemetry.span().attributes["tokenkpi.tool_calls.count"] == 0


async def test_async_stream_fully_iterated(mtelemetry, mfake, mclient):
    mfake.enqueue(full_reply())
    stream = await mclient.chat.stream_async(model=MODEL, messages=USER)
    events = [event async for event in stream]
    assert text_of(events) == ANSWER
    assert_complete_stream_span(mtelemetry.span())


def test_events_identical_with_and_without_instrumentation(mtelemetry, mfake, mclient):
    reply = full_reply(tool_calls=CALLS)
    mfake.enqueue(reply)
    with_us = list(mclient.chat.stream(model=MODEL, messages=USER, tools=TOOLS))
    MistralInstrumentor().uninstrument()
    mfake.reset()
    mfake.enqueue(reply)
    without = list(mclient.chat.stream(model=MODEL, messages=USER, tools=TOOLS))
    assert [type(e) for e in with_us] == [type(e) for e in without] == [models.CompletionEvent] * len(without)
    dump = {"exclude": {"data": {"created"}}}
    assert [e.model_dump(**dump) for e in with_us] == [e.model_dump(**dump) for e in without]
    assert len(mtelemetry.spans()) == 1


def test_context_manager_keeps_the_proxy_and_ends_at_exit(mtelemetry, mfake, mclient):
    mfake.enqueue(full_reply())
    with mclient.chat.stream(model=MODEL, messages=USER) as stream:
        assert isinstance(stream, eventstreaming.EventStream)
        assert type(stream) is not eventstreaming.EventStream  # our proxy did not drop out of the with
        first = next(stream)
        assert first.data.choices[0].delta.role == "assistant"
        assert mtelemetry.spans() == []
    attrs = mtelemetry.span().attributes  # ended at exit, not at garbage collection
    assert "gen_ai.response.finish_reasons" not in attrs  # left before the end: no usage, no finish
    assert "gen_ai.usage.input_tokens" not in attrs
    assert attrs["gen_ai.response.id"] == first.data.id
    assert stream.response.is_closed


def test_context_manager_fully_read(mtelemetry, mfake, mclient):
    mfake.enqueue(full_reply())
    with mclient.chat.stream(model=MODEL, messages=USER) as stream:
        assert text_of(stream) == ANSWER
    assert_complete_stream_span(mtelemetry.span())


@needs_stream_close
def test_stream_closed_early(mtelemetry, mfake, mclient):
    mfake.enqueue(full_reply())
    stream = mclient.chat.stream(model=MODEL, messages=USER)
    seen = [next(stream) for _ in range(3)]
    stream.close()
    stream.close()
    assert text_of(seen) == "It is "
    assert list(stream) == []  # closed: the SDK's stream yields nothing more, and the span ended once
    span = mtelemetry.span()
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert stream.response.is_closed


def test_break_then_abandoned_stream_ends_at_garbage_collection(mtelemetry, mfake, mclient):
    mfake.enqueue(full_reply())
    for _ in mclient.chat.stream(model=MODEL, messages=USER):
        break
    gc.collect()
    attrs = mtelemetry.span().attributes
    assert "gen_ai.response.finish_reasons" not in attrs


async def test_async_context_manager_ends_at_exit(mtelemetry, mfake, mclient):
    mfake.enqueue(full_reply())
    async with await mclient.chat.stream_async(model=MODEL, messages=USER) as stream:
        assert isinstance(stream, eventstreaming.EventStreamAsync)
        assert type(stream) is not eventstreaming.EventStreamAsync
        await stream.__anext__()
        assert mtelemetry.spans() == []
    assert len(mtelemetry.spans()) == 1
    assert "gen_ai.usage.output_tokens" not in mtelemetry.span().attributes


@needs_stream_close
async def test_async_close(mtelemetry, mfake, mclient):
    mfake.enqueue(full_reply())
    stream = await mclient.chat.stream_async(model=MODEL, messages=USER)
    await stream.__anext__()
    await stream.close()  # the SDK's close() is a coroutine: so is ours
    assert len(mtelemetry.spans()) == 1
    assert "gen_ai.usage.output_tokens" not in mtelemetry.span().attributes


@pytest.mark.skipif(HAS_CLOSE, reason="mistralai >= 2.10 streams have close()")
async def test_close_on_a_stream_without_close_fails_as_without_us(mtelemetry, mfake, mclient):
    """Before 2.10 the SDK's streams have no close(), and neither has our wrapper: ``hasattr`` answers as
    without us, and calling it raises the SDK's own AttributeError. Such a stream's span ends when the
    stream is garbage-collected, once, without usage (the stream was not read to its end)."""
    mfake.enqueue(full_reply(), full_reply())
    sync_stream = mclient.chat.stream(model=MODEL, messages=USER)
    next(sync_stream)
    assert not hasattr(sync_stream, "close")
    with pytest.raises(AttributeError, match="'EventStream' object has no attribute 'close'"):
        sync_stream.close()
    async_stream = await mclient.chat.stream_async(model=MODEL, messages=USER)
    await async_stream.__anext__()
    assert not hasattr(async_stream, "close")
    with pytest.raises(AttributeError, match="'EventStreamAsync' object has no attribute 'close'"):
        async_stream.close()
    assert mtelemetry.spans() == []
    del sync_stream, async_stream
    gc.collect()
    assert len(mtelemetry.spans()) == 2
    assert all("gen_ai.usage.output_tokens" not in s.attributes for s in mtelemetry.spans())


@pytest.mark.parametrize(
    ("pieces", "as_object"),
    [(None, False), (None, True), (3, False)],
    ids=["whole-text", "whole-object", "fragments"],
)
def test_streamed_fan_out_tool_calls_are_assembled(mtelemetry, mfake, mclient, pieces, as_object):
    mfake.enqueue(full_reply(text=None, tool_calls=CALLS, tool_call_pieces=pieces, arguments_as_object=as_object))
    events = list(mclient.chat.stream(model=MODEL, messages=USER, tools=TOOLS))
    deltas = [c for e in events for c in (e.data.choices[0].delta.tool_calls or [])]
    assert len(deltas) == (3 if pieces is None else 9)
    assert_complete_stream_span(mtelemetry.span(), finish="tool_calls")
    attrs = mtelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["tokenkpi.tool_calls.duplicate_count"] == 0
    assert attrs["tokenkpi.tools.defined_count"] == 1


def test_stream_reader_matches_the_plain_response(mfake, mclient):
    """The reader's record of a stream equals read_response's record of the same reply, not streamed."""
    for pieces, as_object in ((None, False), (None, True), (2, False)):
        reply = full_reply(tool_calls=CALLS, tool_call_pieces=pieces, arguments_as_object=as_object)
        mfake.reset()
        mfake.enqueue(reply, reply)
        plain = _mistral_chat.read_response(mclient.chat.complete(model=MODEL, messages=USER))
        reader = _mistral_chat.ChunkReader(CallRequest("chat", "mistral_ai", MODEL))
        for event in mclient.chat.stream(model=MODEL, messages=USER):
            reader.feed(event)
        streamed = reader.result()
        assert streamed.outputs == plain.outputs
        assert streamed.usage == plain.usage
        assert streamed.response_model == plain.response_model


def test_reader_joins_fragments_by_index_and_separates_whole_calls():
    """Bare chunks as dicts: fragments without ids join the open call at their index; whole calls that the
    SDK gave index 0 and id "null" are told apart by their complete arguments."""
    reader = _mistral_chat.ChunkReader(CallRequest("chat", "mistral_ai", MODEL))

    def delta(*calls):
        return {"id": "c", "model": MODEL, "choices": [{"index": 0, "delta": {"tool_calls": list(calls)}}]}

    reader.feed(delta({"id": "a", "index": 0, "function": {"name": "f", "arguments": '{"x"'}}))
    reader.feed(delta({"id": "a", "index": 1, "function": {"name": "g", "arguments": "{}"}}))
    reader.feed(delta({"id": "null", "index": 0, "function": {"name": "", "arguments": ": 1}"}}))
    reader.feed(
        delta(
            {"id": "null", "index": 0, "function": {"name": "h", "arguments": {"y": [1, 2]}}},
            {"id": "null", "index": 0, "function": {"name": "h", "arguments": {"y": [3]}}},
        )
    )
    calls = [(c.name, c.arguments, c.id) for c in reader.result().tool_calls]
    assert calls == [("f", '{"x": 1}', "a"), ("g", "{}", "a"), ("h", '{"y":[1,2]}', ""), ("h", '{"y":[3]}', "")]


def test_usage_reads_documented_cached_tokens_then_num_cached_tokens():
    documented = {"prompt_tokens": 50, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 32}}
    legacy = {"prompt_tokens": 50, "completion_tokens": 5, "num_cached_tokens": 16}
    assert _mistral_chat.read_usage(documented).cache_read_tokens == 32
    assert _mistral_chat.read_usage(legacy).cache_read_tokens == 16
    assert _mistral_chat.read_usage({"prompt_tokens": 50}).cache_read_tokens is None


def test_connection_cut_mid_stream(mtelemetry, mfake, mclient):
    reply = full_reply(cut_stream_after=4)
    mfake.enqueue(reply)
    with pytest.raises(Exception) as ours:
        for _ in mclient.chat.stream(model=MODEL, messages=USER):
            pass
    span = mtelemetry.span()
    assert span.attributes["error.type"] == type(ours.value).__qualname__
    assert span.status.status_code is StatusCode.ERROR
    assert "gen_ai.usage.input_tokens" not in span.attributes
    MistralInstrumentor().uninstrument()
    mfake.reset()
    mfake.enqueue(reply)
    with pytest.raises(Exception) as plain:
        for _ in mclient.chat.stream(model=MODEL, messages=USER):
            pass
    assert type(ours.value) is type(plain.value)


def test_bad_json_event_mid_stream(mtelemetry, mfake, mclient):
    mfake.enqueue(full_reply(bad_json=True))
    with pytest.raises(Exception) as raised:
        for _ in mclient.chat.stream(model=MODEL, messages=USER):
            pass
    assert mtelemetry.span().attributes["error.type"] == type(raised.value).__qualname__


@pytest.mark.parametrize("status", [400, 503])
def test_stream_error_status(mtelemetry, mfake, mclient, status):
    mfake.enqueue(Reply(status=status, error_message="stream refused"))
    with pytest.raises(errors.SDKError, match="stream refused"):
        mclient.chat.stream(model=MODEL, messages=USER)
    span = mtelemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "SDKError"
    assert span.attributes["gen_ai.request.stream"] is True


async def test_async_stream_error_status(mtelemetry, mfake, mclient):
    mfake.enqueue(Reply(status=500))
    with pytest.raises(errors.SDKError):
        await mclient.chat.stream_async(model=MODEL, messages=USER)
    assert mtelemetry.span().attributes["error.type"] == "SDKError"


def test_length_in_a_stream_is_truncated_output(mtelemetry, mfake, mclient):
    mfake.enqueue(full_reply(finish_reason="length", output_tokens=7))
    list(mclient.chat.stream(model=MODEL, messages=USER, max_tokens=7))
    attrs = mtelemetry.span().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("length",)
    assert attrs["gen_ai.request.max_tokens"] == 7
    assert attrs["tokenkpi.waste.truncated_output_tokens"] == 7
