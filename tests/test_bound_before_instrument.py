"""Clients and bound methods captured before ``instrument()`` are traced (frameworks build clients at
import time: instructor's ``from_openai(client)`` keeps ``client.chat.completions.create``; openai's
``with_raw_response`` binds ``create`` at first access). For openai, anthropic and groq the client's
request path (``SyncAPIClient.request`` / ``AsyncAPIClient.request``, looked up at call time) catches
them, keyed by the request's path; the span is the one the public method would have made, and a call
through a patched public method is still one span (the request path stays quiet under it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import groq
import openai
import pytest
from _anthropic_support import QUIET
from conftest import Telemetry, instrumented_with

from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.instrumentors.groq import GroqInstrumentor
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing import fake_anthropic, fake_groq, fake_openai

MESSAGES = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
]  # fmt: skip
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
CHAT = {"model": "gpt-4o", "messages": MESSAGES, "tools": TOOLS, "temperature": 0.2, "max_tokens": 64}
CLAUDE_MESSAGES = [{"role": "user", "content": "Describe Paris in a few words."}]
CLAUDE = {"model": "claude-haiku-4-5", "max_tokens": 64, "system": "You are brief.", "messages": CLAUDE_MESSAGES}
GROQ = {"model": "qwen/qwen3-32b", "messages": MESSAGES[:2], "temperature": 0.5}
SCOPES = {
    OpenAIInstrumentor: "otel_tokenkpi.instrumentors.openai",
    AnthropicInstrumentor: "otel_tokenkpi.instrumentors.anthropic",
    GroqInstrumentor: "otel_tokenkpi.instrumentors.groq",
}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    with (
        fake_openai.FakeOpenAIServer() as o,
        fake_anthropic.FakeAnthropicServer() as a,
        fake_groq.FakeGroqServer() as g,
    ):
        yield {"openai": o, "anthropic": a, "groq": g}


# The request path reads the body the SDK sends: openai's embeddings ask for base64 unless the user chose.
WIRE_ONLY = ("gen_ai.request.encoding_formats",)


def comparable(span: Any) -> dict[str, Any]:
    """A span's attributes, without the ones that number calls (response ids, the fake's port)."""
    ignored = ("gen_ai.response.id", "server.port", *WIRE_ONLY)
    return {k: v for k, v in (span.attributes or {}).items() if k not in ignored}


def one_span(telemetry: Telemetry, instrumentor: type) -> Any:
    spans = telemetry.spans()
    assert len(spans) == 1, [s.name for s in spans]
    assert spans[0].instrumentation_scope.name == SCOPES[instrumentor]
    return spans[0]


def same_span_both_ways(
    instrumentor: type, server: Any, reply: Any, early: Callable[[], Any], late: Callable[[], Any]
) -> Any:
    """``early()`` (captured before instrument()) and ``late()`` (the public method, looked up now) make
    one span each, with the same attributes."""
    spans = []
    for call in (early, late):
        server.reset()
        server.enqueue(reply)
        with instrumented_with(instrumentor) as telemetry:
            call()
            spans.append(one_span(telemetry, instrumentor))
    assert comparable(spans[0]) == comparable(spans[1])
    return spans[0]


def test_openai_bound_create_and_raw_response(loaded_data, servers):
    server = servers["openai"]
    client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
    create = client.chat.completions.create  # as instructor.from_openai(client) keeps it
    raw = client.chat.completions.with_raw_response  # cached_property: binds create now
    reply = fake_openai.Reply(text=None, tool_calls=[fake_openai.ToolCall("get_weather", '{"city": "Rome"}')])
    span = same_span_both_ways(
        OpenAIInstrumentor, server, reply, lambda: create(**CHAT), lambda: client.chat.completions.create(**CHAT)
    )
    assert span.attributes["tokenkpi.tool_calls.count"] == 1
    assert span.attributes["tokenkpi.tools.defined_count"] == 1
    assert span.attributes["tokenkpi.context.tool_results_tokens"] > 0
    assert span.attributes["gen_ai.request.temperature"] == 0.2
    same_span_both_ways(
        OpenAIInstrumentor,
        server,
        reply,
        lambda: raw.create(**CHAT).parse(),
        lambda: client.chat.completions.with_raw_response.create(**CHAT).parse(),
    )


def test_openai_bound_stream_responses_and_embeddings(loaded_data, servers):
    server = servers["openai"]
    client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
    create, embed = client.chat.completions.create, client.embeddings.create
    stream_args = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    span = same_span_both_ways(
        OpenAIInstrumentor,
        server,
        fake_openai.Reply(text="Sunny and warm."),
        lambda: list(create(**stream_args)),
        lambda: list(client.chat.completions.create(**stream_args)),
    )
    assert span.attributes["gen_ai.request.stream"] is True and span.attributes["gen_ai.usage.output_tokens"] == 5
    span = same_span_both_ways(
        OpenAIInstrumentor,
        server,
        fake_openai.Reply(),
        lambda: embed(model="text-embedding-3-small", input=["a", "b"]),
        lambda: client.embeddings.create(model="text-embedding-3-small", input=["a", "b"]),
    )
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    if hasattr(client, "responses"):
        respond = client.responses.create
        args = {"model": "gpt-4o", "instructions": "Be brief.", "input": "Paris?", "max_output_tokens": 50}
        span = same_span_both_ways(
            OpenAIInstrumentor,
            server,
            fake_openai.Reply(text="Old."),
            lambda: respond(**args),
            lambda: client.responses.create(**args),
        )
        assert span.attributes["tokenkpi.context.system_tokens"] > 0


async def test_openai_async_bound_create(loaded_data, servers):
    server = servers["openai"]
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
    create = client.chat.completions.create
    spans = []
    for call in (lambda: create(**CHAT), lambda: client.chat.completions.create(**CHAT)):
        server.reset()
        with instrumented_with(OpenAIInstrumentor) as telemetry:
            await call()
            spans.append(one_span(telemetry, OpenAIInstrumentor))
    assert comparable(spans[0]) == comparable(spans[1])
    assert spans[0].attributes["gen_ai.usage.input_tokens"] == 10


def test_anthropic_bound_create_and_stream_helper(loaded_data, servers):
    server = servers["anthropic"]
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0, **QUIET)
    create, stream = client.messages.create, client.messages.stream
    reply = fake_anthropic.Reply(text="Bright.", input_tokens=20, output_tokens=4, cache_read_tokens=6)
    span = same_span_both_ways(
        AnthropicInstrumentor, server, reply, lambda: create(**CLAUDE), lambda: client.messages.create(**CLAUDE)
    )
    assert span.attributes["gen_ai.usage.input_tokens"] == 26  # cache reads added in
    assert span.attributes["tokenkpi.context.system_tokens"] > 0

    def early_stream() -> Any:
        with stream(**CLAUDE) as events:
            return events.get_final_message()

    def late_stream() -> Any:
        with client.messages.stream(**CLAUDE) as events:
            return events.get_final_message()

    span = same_span_both_ways(AnthropicInstrumentor, server, reply, early_stream, late_stream)
    assert span.attributes["gen_ai.request.stream"] is True
    assert span.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    if hasattr(client, "beta"):
        beta = client.beta.messages.create
        same_span_both_ways(
            AnthropicInstrumentor, server, reply, lambda: beta(**CLAUDE), lambda: client.beta.messages.create(**CLAUDE)
        )


def test_groq_bound_create(loaded_data, servers):
    server = servers["groq"]
    client = groq.Groq(api_key="gsk_test", base_url=server.url, max_retries=0)
    create = client.chat.completions.create
    span = same_span_both_ways(
        GroqInstrumentor,
        server,
        fake_groq.Reply(text="Fast.", prompt_tokens=15),
        lambda: create(**GROQ),
        lambda: client.chat.completions.create(**GROQ),
    )
    assert span.attributes["gen_ai.provider.name"] == "groq"
    assert span.attributes["gen_ai.usage.input_tokens"] == 15


def test_other_requests_pass_through_without_a_span(loaded_data, servers):
    server = servers["openai"]
    client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
    with instrumented_with(OpenAIInstrumentor) as telemetry:
        client.post("/chat/completions", cast_to=object, body={"model": "gpt-4o", "messages": MESSAGES[:2]})
        assert len(telemetry.spans()) == 1  # a model call, whatever method sent it
        with pytest.raises(openai.NotFoundError):  # the fake serves model calls only
            client.post("/files", cast_to=object, body={"purpose": "batch"})
        with pytest.raises(openai.NotFoundError):
            client.get("/models", cast_to=object)
        assert len(telemetry.spans()) == 1
