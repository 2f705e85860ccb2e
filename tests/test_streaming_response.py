# ruff: noqa: F811 - pytest fixtures imported from the support modules are parameters here
"""``with_streaming_response`` (openai, anthropic, groq): the SDK hands the user an unread HTTP body.
openai-agents' ``Runner.run_streamed`` goes through it. We read the body as the user reads it, through
the httpx response's byte stream, so the span gets usage, response id, finish reasons and tool calls like
every other path, whichever way the user reads (``parse()``, ``read()``, ``text()``, ``json()``,
``iter_bytes()``, ``iter_text()``, ``iter_lines()``, iterating the parsed stream), and what the user reads
is exactly what they read without us. A body never read (or read in part) ends the call when the response
is closed (the ``with`` block's exit), with what was seen, as incomplete."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import tiktoken
from _anthropic_support import MODEL as CLAUDE
from _anthropic_support import (  # noqa: F401 - fixtures
    afake,
    anthropic_client,
    anthropic_server,
    async_anthropic_client,
    atelemetry,
)
from _groq_support import MODEL as GROQ_MODEL
from _groq_support import gfake, groq_server, gtelemetry, make_client  # noqa: F401 - fixtures

import otel_tokenkpi
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing import fake_anthropic, fake_groq
from otel_tokenkpi.testing.fake_openai import Reply, ToolCall

O200K = tiktoken.get_encoding("o200k_base")
MESSAGES = [{"role": "user", "content": "Describe Paris in a few words."}]
USAGE = {"include_usage": True}

CREATED = re.compile(rb'"created":\s*\d+')


def timeless(value: Any) -> Any:
    """``value`` without the fake's ``created`` timestamps, which differ between two runs a second apart."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "created"}
    if isinstance(value, bytes):
        return CREATED.sub(b'"created":0', value)
    if isinstance(value, list):
        return [CREATED.sub(b'"created":0', line.encode()).decode() for line in value]
    return value


# How a user reads a with_streaming_response body, each to a comparable value.
READERS: dict[str, Callable[[Any], Any]] = {
    "parse": lambda raw: raw.parse().model_dump(exclude={"created"}),
    "read": lambda raw: timeless(json.loads(raw.read())),
    "text": lambda raw: timeless(json.loads(raw.text())),
    "json": lambda raw: timeless(raw.json()),
    "iter_bytes": lambda raw: timeless(json.loads(b"".join(raw.iter_bytes(7)))),
    "iter_text": lambda raw: timeless(json.loads("".join(raw.iter_text()))),
    "iter_lines": lambda raw: timeless(json.loads("".join(raw.iter_lines()))),
}
STREAM_READERS: dict[str, Callable[[Any], Any]] = {
    "parse": lambda raw: [c.model_dump(exclude={"created"}) for c in raw.parse()],
    "iter_lines": lambda raw: timeless(list(raw.iter_lines())),
    "iter_bytes": lambda raw: timeless(b"".join(raw.iter_bytes())),
    "read": lambda raw: timeless(raw.read()),
}


def _without_us(fake: Any, reply: Any, call: Callable[[], Any]) -> Any:
    """The same call on an uninstrumented SDK, answered the same way (the fake's ids restart)."""
    OpenAIInstrumentor().uninstrument()
    fake.reset()
    fake.enqueue(reply)
    return call()


@pytest.mark.parametrize("how", list(READERS))
def test_a_json_body_read_any_way_gives_the_span_its_response(telemetry, fake, openai_client, how):
    reply = Reply(text="Bright and old.", prompt_tokens=21, completion_tokens=4)
    fake.enqueue(reply)

    def call() -> Any:
        with openai_client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as raw:
            return READERS[how](raw)

    seen = call()
    attrs = telemetry.span().attributes
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (21, 4)
    assert attrs["gen_ai.response.id"] == "chatcmpl-1"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["tokenkpi.waste.tokens"] == 0
    assert seen == _without_us(fake, reply, call)


@pytest.mark.parametrize("how", list(STREAM_READERS))
def test_an_event_stream_read_any_way_gives_the_span_its_stream(telemetry, fake, openai_client, how):
    reply = Reply(text="Bright, old, full of cafes.", tool_calls=[ToolCall("lookup", '{"q": "paris"}')])
    fake.enqueue(reply)

    def call() -> Any:
        with openai_client.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options=USAGE
        ) as raw:
            return STREAM_READERS[how](raw)

    seen = call()
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.request.stream"] is True
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (10, 5)
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert attrs["tokenkpi.tool_calls.count"] == 1
    assert seen == _without_us(fake, reply, call)


def test_a_body_never_read_ends_the_call_at_exit_as_incomplete(telemetry, fake, openai_client):
    fake.enqueue(Reply(text="never read"))
    with openai_client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as raw:
        assert raw.status_code == 200
        assert telemetry.spans() == []  # the body is still open
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert "gen_ai.usage.input_tokens" not in attrs and "gen_ai.response.finish_reasons" not in attrs


def test_a_stream_read_in_part_ends_at_exit_with_what_was_seen(telemetry, fake, openai_client):
    fake.enqueue(Reply(text="one two three four five six", text_chunks=6))
    with openai_client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options=USAGE
    ) as raw:
        stream = raw.parse()
        first = next(iter(stream))
    attrs = telemetry.span().attributes
    assert first.choices[0].delta.role == "assistant"
    # Left early: the model billed more than was seen, so no usage and no finish reason are claimed.
    assert "gen_ai.usage.output_tokens" not in attrs and "gen_ai.response.finish_reasons" not in attrs


def test_a_long_stream_is_read_whole_in_slices(telemetry, fake, openai_client):
    """Over 256 KB of events: the copy is read in slices of whole events, and no event is lost at a cut."""
    words = [f"w{i % 997}" for i in range(60_000)]
    text = " ".join(words)
    fake.enqueue(Reply(text=text, text_chunks=6_000))
    with openai_client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    ) as raw:
        size = sum(len(piece) for piece in raw.iter_bytes())
    assert size > 1_000_000
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.usage.output_tokens"] == len(O200K.encode_ordinary(text))  # every delta was seen
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)


def test_a_compressed_body_is_read(telemetry, fake, openai_client):
    fake.gzip_json = True
    try:
        fake.enqueue(Reply(text="zipped", prompt_tokens=33))
        with openai_client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as raw:
            assert raw.headers["content-encoding"] == "gzip"
            body = raw.json()
    finally:
        fake.gzip_json = False
    assert body["choices"][0]["message"]["content"] == "zipped"
    assert telemetry.span().attributes["gen_ai.usage.input_tokens"] == 33


async def test_async_bodies_are_read_as_the_user_reads_them(telemetry, fake, async_openai_client):
    fake.enqueue(Reply(text="async plain", prompt_tokens=17), Reply(text="async stream", prompt_tokens=19))
    create = async_openai_client.chat.completions.with_streaming_response.create
    async with create(model="gpt-4o", messages=MESSAGES) as raw:
        parsed = await raw.parse()
    async with create(model="gpt-4o", messages=MESSAGES, stream=True, stream_options=USAGE) as raw:
        lines = [line async for line in raw.iter_lines()]
    assert parsed.choices[0].message.content == "async plain"
    assert "data: [DONE]" in lines
    plain, streamed = telemetry.spans()
    assert plain.attributes["gen_ai.usage.input_tokens"] == 17
    assert streamed.attributes["gen_ai.usage.input_tokens"] == 19
    assert streamed.attributes["gen_ai.response.finish_reasons"] == ("stop",)


WEATHER = {"type": "function", "name": "get_weather", "description": "Weather.", "parameters": {"type": "object"}}
TIME = {"type": "function", "name": "get_time", "description": "Local time.", "parameters": {"type": "object"}}


def test_responses_streamed_through_it_roll_up_like_any_call(telemetry, fake, openai_client):
    """openai-agents' run_streamed: Responses streams through with_streaming_response. The task's roll-up
    counts their tokens and tool calls, and both tools were used: no unused schema."""
    pytest.importorskip("openai.resources.responses")
    fake.enqueue(
        Reply(text=None, tool_calls=[ToolCall("get_weather", '{"city": "Paris"}')], prompt_tokens=40),
        Reply(text=None, tool_calls=[ToolCall("get_time", '{"tz": "Europe/Paris"}')], prompt_tokens=60),
    )
    with otel_tokenkpi.task("agent"):
        for _ in range(2):
            with openai_client.responses.with_streaming_response.create(
                model="gpt-4o", input="Weather and time in Paris?", tools=[WEATHER, TIME], stream=True
            ) as raw:
                events = [event.type for event in raw.parse()]
            assert events[-1] == "response.completed"
    task = next(s for s in telemetry.spans() if s.name == "invoke_workflow agent")
    assert task.attributes["tokenkpi.trace.llm_calls"] == 2
    assert task.attributes["tokenkpi.trace.input_tokens"] == 100
    assert task.attributes["tokenkpi.trace.tool_calls"] == 2
    assert task.attributes["tokenkpi.trace.waste.unused_tool_definitions_tokens"] == 0


def test_anthropic_bodies_are_read(atelemetry, afake, anthropic_client):
    afake.enqueue(
        fake_anthropic.Reply(text="plain", input_tokens=12, output_tokens=3),
        fake_anthropic.Reply(text="streamed", input_tokens=14, output_tokens=6, cache_read_tokens=4),
    )
    create = anthropic_client.messages.with_streaming_response.create
    with create(model=CLAUDE, max_tokens=16, messages=MESSAGES) as raw:
        message = raw.parse()
    with create(model=CLAUDE, max_tokens=16, messages=MESSAGES, stream=True) as raw:
        events = [event.type for event in raw.parse()]
    assert message.content[0].text == "plain"
    assert events[0] == "message_start" and events[-1] == "message_stop"
    plain, streamed = atelemetry.spans()
    assert (plain.attributes["gen_ai.usage.input_tokens"], plain.attributes["gen_ai.usage.output_tokens"]) == (12, 3)
    # Anthropic's input excludes cache reads; ours includes them.
    assert streamed.attributes["gen_ai.usage.input_tokens"] == 18
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 6
    assert streamed.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)


async def test_anthropic_async_stream_is_read(atelemetry, afake, async_anthropic_client):
    afake.enqueue(fake_anthropic.Reply(text="async streamed", input_tokens=9, output_tokens=2))
    create = async_anthropic_client.messages.with_streaming_response.create
    async with create(model=CLAUDE, max_tokens=16, messages=MESSAGES, stream=True) as raw:
        lines = [line async for line in raw.iter_lines()]
    assert "event: message_stop" in lines
    attrs = atelemetry.span().attributes
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (9, 2)


def test_groq_stream_is_read(gtelemetry, gfake):
    gfake.enqueue(fake_groq.Reply(text="fast answer", prompt_tokens=23, completion_tokens=7))
    client = make_client(gfake)
    with client.chat.completions.with_streaming_response.create(
        model=GROQ_MODEL, messages=MESSAGES, stream=True
    ) as raw:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    assert text == "fast answer"
    attrs = gtelemetry.span().attributes
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (23, 7)  # from x_groq
