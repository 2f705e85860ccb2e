"""Self-test of the fake OpenAI server: the real ``openai`` SDK, sync and async, talks to it over HTTP.

Clients use ``_strict_response_validation=True`` so that every body and stream event the fake sends is
validated against the SDK's pydantic models, not just leniently constructed: a missing required field
fails here rather than in some later test that reads it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

try:
    from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall, _Handler
except ModuleNotFoundError:  # package not installed and plain `pytest` (tests/ is no package): use the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall, _Handler

MESSAGES = [{"role": "user", "content": "hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
THREE_CALLS = [
    ToolCall("get_weather", '{"city": "Paris"}'),
    ToolCall("get_weather", '{"city": "Oslo"}', id="call_explicit"),
    ToolCall("get_time", '{"tz": "Europe/Berlin"}'),
]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture(autouse=True)
def fresh(server: FakeOpenAIServer) -> None:
    server.reset()


@pytest.fixture
def client(server: FakeOpenAIServer) -> Iterator[OpenAI]:
    with OpenAI(
        api_key="sk-test",
        base_url=server.url + "/v1",
        max_retries=0,
        timeout=10,
        _strict_response_validation=True,
    ) as c:
        yield c


@pytest.fixture
async def aclient(server: FakeOpenAIServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(
        api_key="sk-test",
        base_url=server.url + "/v1",
        max_retries=0,
        timeout=10,
        _strict_response_validation=True,
    ) as c:
        yield c


# --- chat completions -------------------------------------------------------------------------------


def test_chat_plain_text_with_exact_usage(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(
        Reply(text="Hello there", prompt_tokens=12, completion_tokens=3, cached_tokens=4, reasoning_tokens=1)
    )
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert completion.id == "chatcmpl-1"
    assert completion.model == "gpt-4o-mini"
    assert completion.object == "chat.completion"
    assert completion.service_tier == "default"
    [choice] = completion.choices
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there"
    assert choice.message.tool_calls is None
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 3, 15)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 4
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 1

    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {"model": "gpt-4o-mini", "messages": MESSAGES}


def test_chat_model_override_n_choices_and_default_reply(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(text="a", model="gpt-4o-2024-08-06"))
    first = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, n=3)
    second = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # queue empty: default

    assert first.model == "gpt-4o-2024-08-06"
    assert [(c.index, c.message.content) for c in first.choices] == [(0, "a"), (1, "a"), (2, "a")]
    assert (second.id, second.model, second.choices[0].message.content) == ("chatcmpl-2", "gpt-4o", "ok")


def test_chat_parallel_tool_calls(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(text=None, tool_calls=THREE_CALLS))
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=[WEATHER_TOOL])

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("call_1", "function", "get_weather", '{"city": "Paris"}'),
        ("call_explicit", "function", "get_weather", '{"city": "Oslo"}'),
        ("call_3", "function", "get_time", '{"tz": "Europe/Berlin"}'),
    ]


@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_stream_text_deltas_and_usage(server: FakeOpenAIServer, client: OpenAI, include_usage: bool) -> None:
    text = "Hello  there,\nworld! "
    server.enqueue(Reply(text=text, prompt_tokens=7, completion_tokens=4))
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, **options))

    assert {c.id for c in chunks} == {"chatcmpl-1"}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    deltas = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert deltas == ["Hello  ", "there,\n", "world! "]
    assert "".join(deltas) == text
    with_choices = [c for c in chunks if c.choices]
    assert [c.choices[0].finish_reason for c in with_choices] == [None] * 4 + ["stop"]
    assert all(c.usage is None for c in with_choices)
    if include_usage:
        assert len(chunks) == 6 and chunks[-1].choices == []
        usage = chunks[-1].usage
        assert usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 4, 11)
    else:
        assert len(chunks) == 5


def test_chat_stream_text_chunks(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(text="abcdefghij", text_chunks=4))
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    deltas = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert deltas == ["abc", "def", "gh", "ij"]


def test_chat_stream_parallel_tool_calls_assemble(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(text=None, tool_calls=THREE_CALLS))
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True)
    assembled: dict[int, dict[str, str]] = {}
    first_deltas = 0
    finish_reasons = []
    for chunk in stream:
        choice = chunk.choices[0]
        finish_reasons.append(choice.finish_reason)
        for delta in choice.delta.tool_calls or []:
            call = assembled.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                first_deltas += 1
                assert delta.function is not None and delta.function.arguments == ""
                call["id"], call["name"] = delta.id, delta.function.name or ""
            assert delta.function is not None
            call["arguments"] += delta.function.arguments or ""

    assert first_deltas == 3
    assert assembled == {
        0: {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "call_explicit", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        2: {"id": "call_3", "name": "get_time", "arguments": '{"tz": "Europe/Berlin"}'},
    }
    # role chunk, 3 x (opening + 3 argument pieces), final chunk
    assert finish_reasons == [None] * 13 + ["tool_calls"]


def test_chat_stream_helper_final_completion(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(text="Sunny today", tool_calls=THREE_CALLS[:1], prompt_tokens=30, completion_tokens=9))
    with client.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, tools=[WEATHER_TOOL], stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()

    message = final.choices[0].message
    assert message.content == "Sunny today"
    assert [(c.id, c.function.arguments) for c in message.tool_calls or []] == [("call_1", '{"city": "Paris"}')]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (30, 9, 39)


async def test_async_chat_plain_and_stream(server: FakeOpenAIServer, aclient: AsyncOpenAI) -> None:
    server.enqueue(Reply(text="one two"), Reply(text="three four five", completion_tokens=3))
    completion = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = await aclient.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text = ""
    usage = None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage

    assert completion.choices[0].message.content == "one two"
    assert text == "three four five"
    assert usage is not None and (usage.completion_tokens, usage.total_tokens) == (3, 13)


def test_chat_finish_reason_length(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(text="cut sh", finish_reason="length"), Reply(text="cut sh", finish_reason="length"))
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert completion.choices[0].finish_reason == "length"
    assert chunks[-1].choices[0].finish_reason == "length"


# --- responses --------------------------------------------------------------------------------------


def test_responses_create_text_and_function_call(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(
        Reply(
            text="Checking.",
            tool_calls=THREE_CALLS[:1],
            prompt_tokens=20,
            completion_tokens=6,
            cached_tokens=8,
            reasoning_tokens=2,
        )
    )
    response = client.responses.create(model="gpt-4.1", input="weather?")

    assert (response.id, response.object, response.status, response.model) == (
        "resp_1",
        "response",
        "completed",
        "gpt-4.1",
    )
    assert response.output_text == "Checking."
    message, call = response.output
    assert (message.type, message.id, message.status) == ("message", "msg_1", "completed")
    assert call.type == "function_call"
    assert (call.id, call.call_id, call.name, call.arguments) == (
        "fc_1",
        "call_1",
        "get_weather",
        '{"city": "Paris"}',
    )
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (20, 6, 26)
    assert usage.input_tokens_details.cached_tokens == 8
    assert usage.output_tokens_details.reasoning_tokens == 2
    assert server.requests[0].path == "/v1/responses"


RESPONSE_STREAM_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


def test_responses_stream_events(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(text="Hi there", tool_calls=THREE_CALLS[:1], prompt_tokens=11, completion_tokens=2))
    events = list(client.responses.create(model="gpt-4.1", input="hi", stream=True))

    assert [e.type for e in events] == RESPONSE_STREAM_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.usage is None  # type: ignore[union-attr]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hi there"
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert arguments == '{"city": "Paris"}'
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (11, 2, 13)


def test_responses_stream_helper_final_response(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(text="All good", prompt_tokens=40, completion_tokens=12, cached_tokens=32))
    with client.responses.stream(model="gpt-4.1", input="status?") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()

    assert text == final.output_text == "All good"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (40, 12, 52)
    assert final.usage.input_tokens_details.cached_tokens == 32


async def test_async_responses_stream_helper(server: FakeOpenAIServer, aclient: AsyncOpenAI) -> None:
    server.enqueue(Reply(text=None, tool_calls=THREE_CALLS[1:], prompt_tokens=5, completion_tokens=5))
    async with aclient.responses.stream(model="gpt-4.1", input="x") as stream:
        final = await stream.get_final_response()

    assert [(o.type, o.call_id) for o in final.output] == [  # type: ignore[union-attr]
        ("function_call", "call_explicit"),
        ("function_call", "call_2"),
    ]
    assert final.usage is not None and final.usage.total_tokens == 10


def test_responses_finish_reason_length_is_incomplete(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(text="trunc", finish_reason="length"), Reply(text="trunc", finish_reason="length"))
    response = client.responses.create(model="gpt-4.1", input="x", max_output_tokens=16)
    events = list(client.responses.create(model="gpt-4.1", input="x", stream=True))

    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.max_output_tokens == 16
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.usage is not None  # type: ignore[union-attr]


# --- embeddings -------------------------------------------------------------------------------------


def test_embeddings_do_not_consume_the_queue(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(text="for chat"))
    # Lenient client: the SDK's default base64 embeddings do not pass its own strict validation.
    with OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0) as lenient:
        batch = lenient.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        floats = lenient.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="float")
        tokens = lenient.embeddings.create(model="text-embedding-3-small", input=[1, 2, 3])
        chat = lenient.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert batch.model == "text-embedding-3-small"
    assert [(d.index, len(d.embedding)) for d in batch.data] == [(0, 8), (1, 8)]
    assert batch.data[0].embedding != batch.data[1].embedding
    assert floats.data[0].embedding == batch.data[0].embedding  # base64 and float encode the same vector
    assert (batch.usage.prompt_tokens, batch.usage.total_tokens) == (16, 16)
    assert (floats.usage.prompt_tokens, len(tokens.data)) == (8, 1)
    assert server.requests[0].body is not None and server.requests[0].body["encoding_format"] == "base64"
    assert chat.choices[0].message.content == "for chat"


# --- errors and broken responses --------------------------------------------------------------------


def test_rate_limit_error(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(status=429, error_message="slow down", headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 429
    assert caught.value.body == {
        "message": "slow down",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert caught.value.response.headers["retry-after"] == "7"
    assert len(server.requests) == 1  # recorded even though it failed


def test_server_error_and_unknown_path(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(status=500))
    with pytest.raises(openai.InternalServerError) as caught:
        client.responses.create(model="gpt-4.1", input="x", stream=True)
    with pytest.raises(openai.NotFoundError):
        client.models.list()
    assert caught.value.message == "Error code: 500 - fake error"
    assert caught.value.body == {"message": "fake error", "type": "server_error", "param": None, "code": None}
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/v1/responses"), ("GET", "/v1/models")]


def test_bad_json_raises_json_decode_error(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(bad_json=True), Reply(bad_json=True))
    # The SDK does not wrap an unparseable 200 body: the stdlib decoder error reaches the caller.
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    first = next(stream)
    assert first.choices[0].delta.role == "assistant"
    with pytest.raises(json.JSONDecodeError):
        next(stream)


def test_cut_stream_raises_connection_error_mid_iteration(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(text="one two three four", cut_stream_after=3))
    received = []
    with pytest.raises(openai.APIConnectionError) as caught:
        for chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            received.append(chunk.choices[0].delta.content)
    assert received == ["", "one ", "two "]
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)


async def test_async_cut_responses_stream(server: FakeOpenAIServer, aclient: AsyncOpenAI) -> None:
    server.enqueue(Reply(text="one two", cut_stream_after=5))
    seen = []
    with pytest.raises(openai.APIConnectionError):
        async for event in await aclient.responses.create(model="gpt-4.1", input="x", stream=True):
            seen.append(event.type)
    assert seen == RESPONSE_STREAM_EVENTS[:5]


# --- server behaviour -------------------------------------------------------------------------------


def test_connection_reuse_is_fast_and_does_not_hang(server: FakeOpenAIServer, client: OpenAI) -> None:
    assert _Handler.disable_nagle_algorithm is True
    started = time.perf_counter()
    for _ in range(10):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        list(client.responses.create(model="gpt-4.1", input="x", stream=True))
    # Nagle's algorithm off is asserted above (it would stall each request ~40 ms); the time is only a
    # generous bound against a hang, not a speed test (speed lives in benchmarks/).
    assert time.perf_counter() - started < 10.0
    assert len(server.requests) == 30


async def test_async_connection_reuse_does_not_hang(server: FakeOpenAIServer, aclient: AsyncOpenAI) -> None:
    for _ in range(5):
        async for _chunk in await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass
        await aclient.responses.create(model="gpt-4.1", input="x")
    assert [r.body["model"] for r in server.requests if r.body] == ["gpt-4o", "gpt-4.1"] * 5


def test_reset_and_fifo_queue(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Reply(text="first"), Reply(text="second"))
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "first"
    server.reset()
    assert server.requests == []
    again = client.chat.completions.create(model="m", messages=MESSAGES)
    assert (again.id, again.choices[0].message.content) == ("chatcmpl-1", "ok")


def test_stop_closes_kept_alive_connections() -> None:
    fake = FakeOpenAIServer().start()
    with OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0, timeout=5) as c:
        c.chat.completions.create(model="m", messages=MESSAGES)
        fake.stop()
        with pytest.raises(openai.APIConnectionError):
            c.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(RuntimeError):
        _ = fake.url
