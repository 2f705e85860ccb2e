"""Cohere v2 ``chat_stream`` (a generator; async: an async generator), sync and async. Every way of
reading or leaving a stream ends the one span exactly once with what was seen; usage, the finish reason
and the response id come from ``message-start`` / ``message-end``; tool calls are assembled from
``tool-call-start`` / ``tool-call-delta`` events and the plan from ``tool-plan-delta``; the user sees
the same events and the same exceptions."""

from __future__ import annotations

import gc
import json

import cohere
import httpx
import pytest
from _cohere_support import MODEL, USER, make_client, sdk_close_error

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.instrumentors.cohere import CohereInstrumentor
from otel_tokenkpi.testing.fake_cohere import Reply, ToolCall

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_cohere_support"]

ANSWER = "Paris is bright, old and full of cafes."
BILLED = Reply(text=ANSWER, input_tokens=25, output_tokens=11, processed_input_tokens=90, cache_read_tokens=16)
CITIES = ("Paris", "Rome", "Oslo")
FAN_OUT = Reply(
    text=None,
    tool_plan="I will check three cities.",
    tool_calls=[ToolCall("get_weather", json.dumps({"city": c, "unit": "C"})) for c in CITIES],
    output_tokens=60,
)


def text_of(events) -> str:
    return "".join(e.delta.message.content.text or "" for e in events if e.type == "content-delta")


def assert_complete(attrs):
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == "00000000-0000-4000-8000-000000000001"
    assert attrs["gen_ai.response.finish_reasons"] == ("COMPLETE",)
    assert attrs["gen_ai.usage.input_tokens"] == 25
    assert attrs["gen_ai.usage.output_tokens"] == 11
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 16
    assert attrs[sc.USAGE_PROCESSED_INPUT_TOKENS] == 90
    assert attrs[sc.USAGE_PROCESSED_OUTPUT_TOKENS] == 11
    assert attrs["tokenkpi.tokens.estimated"] is True


def assert_fan_out(attrs):
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["gen_ai.response.finish_reasons"] == ("TOOL_CALL",)
    assert attrs["gen_ai.usage.output_tokens"] == 60


def test_stream_iterated(ctelemetry, cfake, cohere_client):
    cfake.enqueue(BILLED)
    events = list(cohere_client.chat_stream(model=MODEL, messages=USER))
    assert text_of(events) == ANSWER
    assert [events[0].type, events[-1].type] == ["message-start", "message-end"]
    assert_complete(ctelemetry.span().attributes)


def test_the_request_is_sent_at_the_first_event_and_the_span_covers_it(ctelemetry, cfake, cohere_client):
    stream = cohere_client.chat_stream(model=MODEL, messages=USER)
    assert cfake.requests == [] and ctelemetry.spans() == []  # a generator: nothing sent yet
    assert next(stream).type == "message-start"
    assert cfake.requests[0].body["stream"] is True
    list(stream)
    assert len(ctelemetry.spans()) == 1


def test_events_identical_with_and_without_instrumentation(ctelemetry, cfake, cohere_client):
    reply = Reply(text=ANSWER, thinking="Brief.", tool_plan="Look up.", tool_calls=[ToolCall("lookup", '{"q": 1}')])
    cfake.enqueue(reply)
    with_us = list(cohere_client.chat_stream(model=MODEL, messages=USER))
    CohereInstrumentor().uninstrument()
    cfake.reset()
    cfake.enqueue(reply)
    without = list(make_client(cfake).chat_stream(model=MODEL, messages=USER))
    assert [type(e) for e in with_us] == [type(e) for e in without]
    assert [e.dict() for e in with_us] == [e.dict() for e in without]


def test_streamed_tool_calls_are_assembled(capturing, cfake):
    cfake.enqueue(FAN_OUT)
    events = list(make_client(cfake).chat_stream(model=MODEL, messages=USER))
    assert sum(e.type == "tool-call-delta" for e in events) >= 6  # arguments arrive in pieces
    attrs = capturing.span().attributes
    assert_fan_out(attrs)
    (output,) = json.loads(attrs["gen_ai.output.messages"])
    calls = [p for p in output["parts"] if p["type"] == "tool_call"]
    assert [(c["id"], c["name"], c["arguments"]) for c in calls] == [
        (f"get_weather_{n:04d}", "get_weather", {"city": city, "unit": "C"}) for n, city in enumerate(CITIES, 1)
    ]
    assert output["parts"][0] == {"type": "text", "content": "I will check three cities."}  # the tool plan


def test_streamed_and_plain_calls_give_the_same_record(capturing, cfake):
    client = make_client(cfake)
    calls = [ToolCall("get_weather", json.dumps({"city": c}), id=f"w_{c}") for c in CITIES]
    reply = Reply(text=None, tool_plan="Three lookups.", tool_calls=calls)
    cfake.enqueue(reply, reply)
    list(client.chat_stream(model=MODEL, messages=USER))
    client.chat(model=MODEL, messages=USER)
    streamed, plain = capturing.spans()
    assert streamed.attributes["gen_ai.output.messages"] == plain.attributes["gen_ai.output.messages"]


def test_stream_closed_early(ctelemetry, cfake, cohere_client):
    cfake.enqueue(Reply(text="one two three four five six", input_tokens=40))
    stream = cohere_client.chat_stream(model=MODEL, messages=USER)
    seen = [next(stream) for _ in range(3)]  # message-start, content-start, the first text delta
    with sdk_close_error():
        stream.close()
    with sdk_close_error():
        stream.close()
    assert seen[2].type == "content-delta"
    attrs = ctelemetry.span().attributes
    # Left early: Cohere reports usage only at message-end, which never arrived.
    assert "gen_ai.usage.input_tokens" not in attrs
    assert "gen_ai.response.finish_reasons" not in attrs
    assert attrs["gen_ai.response.id"] == seen[0].id


def test_abandoned_stream_ends_at_garbage_collection(ctelemetry, cfake, cohere_client):
    cfake.enqueue(Reply(text=ANSWER))
    for event in cohere_client.chat_stream(model=MODEL, messages=USER):
        if event.type == "content-delta":
            break  # the loop's iterator is dropped here
    gc.collect()
    assert len(ctelemetry.spans()) == 1


@pytest.mark.parametrize("reason", ["MAX_TOKENS", "ERROR"])
def test_finish_reasons_of_a_stream(ctelemetry, cfake, cohere_client, reason):
    cfake.enqueue(Reply(text="cut short", finish_reason=reason, output_tokens=9, error_message="overloaded"))
    events = list(cohere_client.chat_stream(model=MODEL, messages=USER, max_tokens=9))
    assert events[-1].delta.finish_reason == reason
    # cohere < 5.16 declares no ``error`` field on the delta: it is there (as an extra) only when sent.
    assert getattr(events[-1].delta, "error", None) == ("overloaded" if reason == "ERROR" else None)
    attrs = ctelemetry.span().attributes
    assert attrs["gen_ai.response.finish_reasons"] == (reason,)
    assert attrs["tokenkpi.waste.truncated_output_tokens"] == (9 if reason == "MAX_TOKENS" else 0)
    assert "error.type" not in attrs  # the API reported it in the stream; the SDK raised nothing


def test_error_status_surfaces_at_the_first_event(ctelemetry, cfake, cohere_client):
    cfake.enqueue(Reply(status=429, error_message="slow down"))
    stream = cohere_client.chat_stream(model=MODEL, messages=USER)
    with pytest.raises(cohere.TooManyRequestsError) as with_us:
        next(stream)
    span = ctelemetry.span()
    assert span.attributes["error.type"] == "TooManyRequestsError"
    assert span.attributes["tokenkpi.waste.failed_call_tokens"] == 0
    CohereInstrumentor().uninstrument()
    cfake.reset()
    cfake.enqueue(Reply(status=429, error_message="slow down"))
    with pytest.raises(cohere.TooManyRequestsError) as without:
        next(make_client(cfake).chat_stream(model=MODEL, messages=USER))
    assert with_us.value.body == without.value.body


def test_stream_cut_mid_way(ctelemetry, cfake, cohere_client):
    cfake.enqueue(Reply(text=ANSWER, cut_stream_after=4))
    seen = []
    with pytest.raises(httpx.RemoteProtocolError):
        for event in cohere_client.chat_stream(model=MODEL, messages=USER):
            seen.append(event)
    assert len(seen) == 4
    attrs = ctelemetry.span().attributes
    assert attrs["error.type"] == "RemoteProtocolError"
    assert "gen_ai.usage.output_tokens" not in attrs


async def test_async_stream_iterated(ctelemetry, cfake, async_cohere_client):
    cfake.enqueue(BILLED)
    events = [e async for e in async_cohere_client.chat_stream(model=MODEL, messages=USER)]
    assert text_of(events) == ANSWER
    assert_complete(ctelemetry.span().attributes)


async def test_async_stream_tool_calls(ctelemetry, cfake, async_cohere_client):
    cfake.enqueue(FAN_OUT)
    [e async for e in async_cohere_client.chat_stream(model=MODEL, messages=USER)]
    assert_fan_out(ctelemetry.span().attributes)


async def test_async_stream_closed_early(ctelemetry, cfake, async_cohere_client):
    cfake.enqueue(Reply(text="one two three four five six"))
    stream = async_cohere_client.chat_stream(model=MODEL, messages=USER)
    first = await stream.__anext__()
    with sdk_close_error():
        await stream.aclose()
    attrs = ctelemetry.span().attributes
    assert attrs["gen_ai.response.id"] == first.id
    assert "gen_ai.response.finish_reasons" not in attrs


async def test_async_stream_error(ctelemetry, cfake, async_cohere_client):
    """(An async stream abandoned mid-way is not tested: the SDK's own async generator then closes its
    httpx response outside the event loop, with or without us.)"""
    cfake.enqueue(Reply(status=500))
    with pytest.raises(cohere.InternalServerError):
        async for _ in async_cohere_client.chat_stream(model=MODEL, messages=USER):
            pass
    span = ctelemetry.span()
    assert span.attributes["error.type"] == "InternalServerError"
    assert span.attributes["gen_ai.request.stream"] is True
