"""OpenAI Responses API: the real ``openai`` SDK over HTTP against the fake server, instrumented.

Every scripted call is checked twice: the span it produces (GenAI semconv attributes, exact usage, the
``tokenkpi.*`` context breakdown, cost against genai-prices as an independent oracle) and what the user
gets back, which must be identical with the instrumentation on and off.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import genai_prices
import openai
import pydantic
import pytest
import tiktoken
from _telemetry import billed_tool_tokens
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall

pytest.importorskip("openai.resources.responses", reason="the Responses API arrived in openai 1.66")

MODEL = "gpt-4o"
GPT_4O_CONTEXT_WINDOW = 128_000
ENC = tiktoken.get_encoding("o200k_base")

INSTRUCTIONS = "You are a terse assistant. Answer in one short sentence and never apologise."
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}
TIME_TOOL = {
    "type": "function",
    "name": "get_time",
    "description": "Local time in an IANA time zone.",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}
FAN_OUT = [
    ToolCall("get_weather", '{"city": "Paris"}'),
    ToolCall("get_weather", '{"city": "Oslo"}'),
    ToolCall("get_time", '{"tz": "Europe/Berlin"}'),
]
TOOL_OUTPUT_1 = '{"city": "Lisbon", "temperature_c": 21, "sky": "clear", "wind_kph": 9}'
TOOL_OUTPUT_2 = "It is 14:05 in Europe/Lisbon."


# --- helpers ----------------------------------------------------------------------------------------


def n_tokens(text: str) -> int:
    return len(ENC.encode_ordinary(text))


def oracle_cost(input_tokens: int, output_tokens: int, cache_read_tokens: int = 0) -> float:
    usage = genai_prices.Usage(
        input_tokens=input_tokens, cache_read_tokens=cache_read_tokens, output_tokens=output_tokens
    )
    return float(genai_prices.calc_price(usage, model_ref=MODEL, provider_id="openai").total_price)


def strip_times(value: Any) -> Any:
    """A model_dump() without the wall-clock fields that legitimately differ between two runs."""
    if isinstance(value, dict):
        return {k: strip_times(v) for k, v in value.items() if k not in ("created_at", "created")}
    if isinstance(value, list):
        return [strip_times(v) for v in value]
    return value


def dump(obj: Any) -> Any:
    if isinstance(obj, list):
        return [dump(o) for o in obj]
    if isinstance(obj, BaseException):
        return (type(obj), str(obj), getattr(obj, "status_code", None), getattr(obj, "body", None))
    return strip_times(obj.model_dump())


def with_and_without(fake: FakeOpenAIServer, replies: list[Reply], script: Callable[[], Any]) -> Any:
    """Run ``script`` instrumented, then again uninstrumented against the same fresh fake; both results
    must be identical. Returns the instrumented run's result."""
    fake.reset()
    fake.enqueue(*replies)
    instrumented = script()
    OpenAIInstrumentor().uninstrument()
    fake.reset()
    fake.enqueue(*replies)
    plain = script()
    assert dump(instrumented) == dump(plain)
    return instrumented


async def awith_and_without(fake: FakeOpenAIServer, replies: list[Reply], script: Callable[[], Any]) -> Any:
    fake.reset()
    fake.enqueue(*replies)
    instrumented = await script()
    OpenAIInstrumentor().uninstrument()
    fake.reset()
    fake.enqueue(*replies)
    plain = await script()
    assert dump(instrumented) == dump(plain)
    return instrumented


def assert_start_attributes(attrs: Any, fake: FakeOpenAIServer) -> None:
    port = int(fake.url.rsplit(":", 1)[1])
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == port


def input_point(telemetry: Any) -> Any:
    points = [
        p
        for p in telemetry.metric_points("gen_ai.client.token.usage")
        if p.attributes.get("gen_ai.token.type") == "input"
    ]
    assert len(points) == 1
    return points[0]


# --- plain create ------------------------------------------------------------------------------------


USAGE_REPLY = Reply(
    text="Sunny, 21 degrees.",
    prompt_tokens=1234,
    completion_tokens=56,
    cached_tokens=1024,
    reasoning_tokens=16,
)


def test_create_plain(fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI) -> None:
    response = with_and_without(
        fake,
        [USAGE_REPLY],
        lambda: openai_client.responses.create(
            model=MODEL,
            instructions=INSTRUCTIONS,
            input="Weather in Lisbon?",
        ),
    )
    assert response.output_text == "Sunny, 21 degrees."

    span = telemetry.span()  # the uninstrumented second run made none
    attrs = span.attributes
    assert span.name == "chat gpt-4o"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert_start_attributes(attrs, fake)
    assert attrs["gen_ai.response.id"] == "resp_1"
    assert attrs["gen_ai.response.model"] == MODEL
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 1234
    assert attrs["gen_ai.usage.output_tokens"] == 56
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 16
    assert "gen_ai.request.stream" not in attrs
    assert attrs["tokenkpi.context.system_tokens"] == n_tokens(INSTRUCTIONS)
    assert attrs["tokenkpi.tools.defined_count"] == 0
    assert attrs["tokenkpi.tool_calls.count"] == 0
    assert attrs["tokenkpi.context.tool_results_tokens"] == 0
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == 0
    assert "tokenkpi.tokens.estimated" not in attrs  # every count here is exact
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(oracle_cost(1234, 56, 1024), rel=1e-9)
    assert attrs["tokenkpi.context.window"] == GPT_4O_CONTEXT_WINDOW
    assert attrs["tokenkpi.context.utilization"] == pytest.approx(1234 / GPT_4O_CONTEXT_WINDOW, rel=1e-12)

    point = input_point(telemetry)
    assert (point.sum, point.count) == (1234, 1)


def test_create_request_params_and_developer_message(
    fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI
) -> None:
    developer = "Prefer metric units."
    fake.enqueue(Reply(text="ok", prompt_tokens=40))  # the three texts plus OpenAI's message framing
    openai_client.responses.create(
        model=MODEL,
        instructions=INSTRUCTIONS,
        input=[
            {"role": "developer", "content": developer},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        ],
        max_output_tokens=300,
        temperature=0.25,
        top_p=0.5,
    )
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.request.max_tokens"] == 300
    assert attrs["gen_ai.request.temperature"] == 0.25
    assert attrs["gen_ai.request.top_p"] == 0.5
    # System instructions are `instructions` plus developer/system input messages.
    assert attrs["tokenkpi.context.system_tokens"] == n_tokens(INSTRUCTIONS) + n_tokens(developer)
    local = n_tokens(INSTRUCTIONS) + n_tokens(developer) + n_tokens("Weather?")  # a first call: all new
    assert (attrs["tokenkpi.context.new_tokens"], attrs["tokenkpi.context.unattributed_tokens"]) == (local, 40 - local)


def test_create_tool_fan_out_and_tool_results(
    fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI
) -> None:
    history = [
        {"role": "user", "content": "Weather and time in Lisbon, then Paris, Oslo and Berlin time."},
        {
            "type": "function_call",
            "call_id": "call_a",
            "name": "get_weather",
            "arguments": '{"city":"Lisbon"}',
        },
        {
            "type": "function_call",
            "call_id": "call_b",
            "name": "get_time",
            "arguments": '{"tz":"Europe/Lisbon"}',
        },
        {"type": "function_call_output", "call_id": "call_a", "output": TOOL_OUTPUT_1},
        {"type": "function_call_output", "call_id": "call_b", "output": TOOL_OUTPUT_2},
    ]
    reply = Reply(text=None, tool_calls=FAN_OUT, prompt_tokens=300, completion_tokens=40)
    response = with_and_without(
        fake,
        [reply],
        lambda: openai_client.responses.create(model=MODEL, input=history, tools=[WEATHER_TOOL, TIME_TOOL]),
    )
    assert [(o.type, o.name, o.arguments) for o in response.output] == [
        ("function_call", c.name, c.arguments) for c in FAN_OUT
    ]

    attrs = telemetry.span().attributes
    assert attrs["tokenkpi.tools.defined_count"] == 2
    assert attrs["tokenkpi.tool_calls.count"] == 3
    assert attrs["tokenkpi.context.tool_results_tokens"] == n_tokens(TOOL_OUTPUT_1) + n_tokens(TOOL_OUTPUT_2)
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == billed_tool_tokens(
        [WEATHER_TOOL, TIME_TOOL], [], api="responses"
    )
    assert attrs["tokenkpi.context.system_tokens"] == 0
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (300, 40)
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(oracle_cost(300, 40), rel=1e-9)


def test_create_finish_reason_length(
    fake: FakeOpenAIServer,
    telemetry: Any,
    openai_client: openai.OpenAI,
) -> None:
    reply = Reply(text="It was a dark and", finish_reason="length", prompt_tokens=12, completion_tokens=16)
    response = with_and_without(
        fake,
        [reply],
        lambda: openai_client.responses.create(model=MODEL, input="Story?", max_output_tokens=16),
    )
    assert response.status == "incomplete"
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("length",)
    assert attrs["gen_ai.request.max_tokens"] == 16
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (12, 16)


def test_previous_response_id(fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI) -> None:
    fake.enqueue(Reply(text="first"), Reply(text="second", prompt_tokens=42, completion_tokens=3))
    first = openai_client.responses.create(model=MODEL, input="Remember 7.")
    second = openai_client.responses.create(model=MODEL, input="What number?", previous_response_id=first.id)

    assert second.output_text == "second"
    assert second.previous_response_id == "resp_1"
    assert fake.requests[1].body is not None and fake.requests[1].body["previous_response_id"] == "resp_1"
    spans = telemetry.spans()
    assert [s.attributes["gen_ai.response.id"] for s in spans] == ["resp_1", "resp_2"]
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
    assert spans[1].attributes["gen_ai.usage.input_tokens"] == 42
    assert spans[1].attributes["gen_ai.response.finish_reasons"] == ("stop",)


class Weather(pydantic.BaseModel):
    city: str
    temperature_c: int


def test_parse_text_format(fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI) -> None:
    reply = Reply(text='{"city": "Oslo", "temperature_c": -3}', prompt_tokens=30, completion_tokens=12)
    parsed = with_and_without(
        fake, [reply], lambda: openai_client.responses.parse(model=MODEL, input="Oslo?", text_format=Weather)
    )
    assert parsed.output_parsed == Weather(city="Oslo", temperature_c=-3)

    span = telemetry.span()  # parse() goes through create(): still one span
    assert span.name == "chat gpt-4o"
    assert span.attributes["gen_ai.output.type"] == "json"
    assert span.attributes["gen_ai.usage.input_tokens"] == 30
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)


# --- streams -----------------------------------------------------------------------------------------


STREAM_REPLY = Reply(
    text="Clear skies over Lisbon today.",
    prompt_tokens=77,
    completion_tokens=9,
    cached_tokens=64,
    reasoning_tokens=2,
)


def test_stream_iterated_to_the_end(
    fake: FakeOpenAIServer,
    telemetry: Any,
    openai_client: openai.OpenAI,
) -> None:
    ended_at_exhaustion = []

    def script() -> list[Any]:
        before = len(telemetry.spans())
        stream = openai_client.responses.create(model=MODEL, input="Weather?", stream=True)
        events = []
        for event in stream:
            events.append(event)
        # `stream` is still referenced: the span was ended by the iterator's end, not by collection.
        ended_at_exhaustion.append(len(telemetry.spans()) - before)
        return events

    events = with_and_without(fake, [STREAM_REPLY], script)
    assert ended_at_exhaustion == [1, 0]
    assert events[-1].type == "response.completed"

    span = telemetry.span()
    attrs = span.attributes
    assert span.name == "chat gpt-4o"
    assert_start_attributes(attrs, fake)
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == "resp_1"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 77
    assert attrs["gen_ai.usage.output_tokens"] == 9
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 64
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 2
    assert "tokenkpi.tokens.estimated" not in attrs
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(oracle_cost(77, 9, 64), rel=1e-9)


def test_stream_length_finish_reason(
    fake: FakeOpenAIServer,
    telemetry: Any,
    openai_client: openai.OpenAI,
) -> None:
    fake.enqueue(Reply(text="cut off here", finish_reason="length", prompt_tokens=5, completion_tokens=3))
    events = list(openai_client.responses.create(model=MODEL, input="x", stream=True, max_output_tokens=3))
    assert events[-1].type == "response.incomplete"
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("length",)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (5, 3)


def _no_double_end(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if "ended span" in r.getMessage()], caplog.text


def test_stream_closed_early_ends_span_once(
    fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fake.enqueue(STREAM_REPLY)
    stream = openai_client.responses.create(model=MODEL, input="Weather?", stream=True)
    taken = [next(stream), next(stream)]
    assert [e.type for e in taken] == ["response.created", "response.in_progress"]
    assert telemetry.spans() == []  # still open while the stream is
    stream.close()
    assert len(telemetry.spans()) == 1  # ended by close(), right away

    stream.close()  # closing again, leaving, collecting: no second end
    del stream
    gc.collect()
    span = telemetry.span()
    _no_double_end(caplog)
    assert span.attributes["gen_ai.response.id"] == "resp_1"  # from response.created
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET


def test_stream_closed_early_reports_no_usage(
    fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI
) -> None:
    fake.enqueue(STREAM_REPLY)
    stream = openai_client.responses.create(model=MODEL, input="Weather?", stream=True)
    next(stream)
    next(stream)
    stream.close()
    attrs = telemetry.span().attributes
    assert not [k for k in attrs if k.startswith("gen_ai.usage.")], dict(attrs)


def test_stream_context_manager_left_early(
    fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    ended_at_exit = []

    def script() -> list[Any]:
        before = len(telemetry.spans())
        with openai_client.responses.create(model=MODEL, input="Weather?", stream=True) as stream:
            assert isinstance(stream, openai.Stream)
            first = next(stream)
            second = next(iter(stream))
            assert len(telemetry.spans()) == before
        # `stream` is still referenced here: the span was ended by __exit__, not by collection.
        ended_at_exit.append(len(telemetry.spans()) - before)
        return [first, second]

    events = with_and_without(fake, [STREAM_REPLY], script)
    assert ended_at_exit == [1, 0]  # instrumented: one span at exit; uninstrumented: none
    assert [e.type for e in events] == ["response.created", "response.in_progress"]
    span = telemetry.span()
    assert span.attributes["gen_ai.response.id"] == "resp_1"
    gc.collect()
    assert len(telemetry.spans()) == 1
    _no_double_end(caplog)


def test_stream_helper_final_response_one_span(
    fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI
) -> None:
    def script() -> list[Any]:
        with openai_client.responses.stream(
            model=MODEL,
            instructions=INSTRUCTIONS,
            input="Weather?",
        ) as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
        assert "".join(deltas) == final.output_text
        return [final]

    (final,) = with_and_without(fake, [STREAM_REPLY], script)
    assert final.output_text == "Clear skies over Lisbon today."

    span = telemetry.span()  # the helper calls create() itself: exactly one span
    attrs = span.attributes
    assert span.name == "chat gpt-4o"
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == "resp_1"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (77, 9)
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 64
    assert attrs["tokenkpi.context.system_tokens"] == n_tokens(INSTRUCTIONS)


def test_stream_helper_get_final_response_without_iterating(
    fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI
) -> None:
    fake.enqueue(STREAM_REPLY)
    with openai_client.responses.stream(model=MODEL, input="Weather?") as stream:
        final = stream.get_final_response()
        assert len(telemetry.spans()) == 1  # the underlying stream reached its end
    assert final.usage is not None and final.usage.input_tokens == 77
    assert telemetry.span().attributes["gen_ai.usage.input_tokens"] == 77


def test_stream_helper_left_early(
    fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fake.enqueue(STREAM_REPLY)
    with openai_client.responses.stream(model=MODEL, input="Weather?") as stream:
        first = next(iter(stream))
        assert telemetry.spans() == []
    assert len(telemetry.spans()) == 1  # ended by __exit__, before any garbage collection
    assert first.type == "response.created"

    del stream
    gc.collect()
    span = telemetry.span()
    _no_double_end(caplog)
    assert span.attributes["gen_ai.response.id"] == "resp_1"
    assert "gen_ai.response.finish_reasons" not in span.attributes


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exc_type", "stream"),
    [
        (429, openai.RateLimitError, False),
        (500, openai.InternalServerError, False),
        (429, openai.RateLimitError, True),
        (500, openai.InternalServerError, True),
    ],
)
def test_errors(
    fake: FakeOpenAIServer,
    telemetry: Any,
    openai_client: openai.OpenAI,
    status: int,
    exc_type: type[Exception],
    stream: bool,
) -> None:
    def script() -> BaseException:
        with pytest.raises(exc_type) as caught:
            openai_client.responses.create(model=MODEL, input="x", stream=stream)
        return caught.value

    reply = Reply(status=status, error_message=f"scripted {status}")
    error = with_and_without(fake, [reply], script)
    assert type(error) is exc_type
    assert str(error) == f"Error code: {status} - scripted {status}"
    assert error.status_code == status  # type: ignore[attr-defined]

    span = telemetry.span()
    assert span.name == "chat gpt-4o"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == f"{exc_type.__name__} (HTTP {status})"  # never the message (test_secrets)
    assert span.attributes["error.type"] == exc_type.__name__
    assert not [k for k in span.attributes if k.startswith("gen_ai.usage.")]
    durations = telemetry.metric_points("gen_ai.client.operation.duration")
    assert [p.attributes.get("error.type") for p in durations] == [exc_type.__name__]


# --- async -------------------------------------------------------------------------------------------


async def test_async_create(
    fake: FakeOpenAIServer,
    telemetry: Any,
    async_openai_client: openai.AsyncOpenAI,
) -> None:
    async def script() -> Any:
        return await async_openai_client.responses.create(model=MODEL, instructions=INSTRUCTIONS, input="Hi")

    response = await awith_and_without(fake, [USAGE_REPLY], script)
    assert response.output_text == "Sunny, 21 degrees."
    span = telemetry.span()
    attrs = span.attributes
    assert span.name == "chat gpt-4o"
    assert span.kind is SpanKind.CLIENT
    assert_start_attributes(attrs, fake)
    assert attrs["gen_ai.response.id"] == "resp_1"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (1234, 56)
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 16
    assert attrs["tokenkpi.context.system_tokens"] == n_tokens(INSTRUCTIONS)
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(oracle_cost(1234, 56, 1024), rel=1e-9)


async def test_async_stream_iteration(
    fake: FakeOpenAIServer, telemetry: Any, async_openai_client: openai.AsyncOpenAI
) -> None:
    ended_at_exhaustion = []

    async def script() -> list[Any]:
        before = len(telemetry.spans())
        stream = await async_openai_client.responses.create(model=MODEL, input="Weather?", stream=True)
        events = [event async for event in stream]
        ended_at_exhaustion.append(len(telemetry.spans()) - before)
        return events

    events = await awith_and_without(fake, [STREAM_REPLY], script)
    assert ended_at_exhaustion == [1, 0]
    assert events[-1].type == "response.completed"

    attrs = telemetry.span().attributes
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == "resp_1"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (77, 9)
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 64


async def test_async_stream_closed_early(
    fake: FakeOpenAIServer, telemetry: Any, async_openai_client: openai.AsyncOpenAI
) -> None:
    fake.enqueue(STREAM_REPLY)
    stream = await async_openai_client.responses.create(model=MODEL, input="Weather?", stream=True)
    first = await stream.__anext__()
    assert first.type == "response.created"
    assert telemetry.spans() == []
    await stream.close()
    assert len(telemetry.spans()) == 1
    await stream.close()
    del stream
    gc.collect()
    assert len(telemetry.spans()) == 1


async def test_async_stream_helper(
    fake: FakeOpenAIServer, telemetry: Any, async_openai_client: openai.AsyncOpenAI
) -> None:
    async def script() -> list[Any]:
        async with async_openai_client.responses.stream(model=MODEL, input="Weather?") as stream:
            types = [event.type async for event in stream]
            final = await stream.get_final_response()
        assert types[-1] == "response.completed"
        return [final]

    (final,) = await awith_and_without(fake, [STREAM_REPLY], script)
    assert final.output_text == "Clear skies over Lisbon today."
    span = telemetry.span()
    assert span.name == "chat gpt-4o"
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert span.attributes["gen_ai.usage.input_tokens"] == 77
    assert span.attributes["gen_ai.usage.output_tokens"] == 9


async def test_async_stream_helper_left_early(
    fake: FakeOpenAIServer, telemetry: Any, async_openai_client: openai.AsyncOpenAI
) -> None:
    fake.enqueue(STREAM_REPLY)
    async with async_openai_client.responses.stream(model=MODEL, input="Weather?") as stream:
        first = await stream.__aiter__().__anext__()
        assert telemetry.spans() == []
    assert len(telemetry.spans()) == 1  # ended by __aexit__
    assert first.type == "response.created"
    del stream
    gc.collect()
    assert telemetry.span().attributes["gen_ai.response.id"] == "resp_1"


async def test_async_error(
    fake: FakeOpenAIServer,
    telemetry: Any,
    async_openai_client: openai.AsyncOpenAI,
) -> None:
    async def script() -> BaseException:
        with pytest.raises(openai.RateLimitError) as caught:
            await async_openai_client.responses.create(model=MODEL, input="x")
        return caught.value

    error = await awith_and_without(fake, [Reply(status=429, error_message="slow down")], script)
    assert str(error) == "Error code: 429 - slow down"
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RateLimitError"
