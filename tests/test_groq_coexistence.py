"""Groq reached two ways, both instrumentors on: the groq SDK (our Groq instrumentor) and the openai SDK
pointed at ``api.groq.com`` (our OpenAI instrumentor, which names the provider ``groq`` from the base
URL). Each call is one span, from the instrumentor of the SDK that made it, never two."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from _groq_support import MODEL, USER
from _telemetry import Telemetry, instrumented_with

from otel_tokenkpi.instrumentors.groq import GroqInstrumentor
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing.fake_groq import FakeGroqServer, Reply

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_groq_support"]

GROQ_OPENAI_BASE = "https://api.groq.com/openai/v1"  # what Groq's docs tell openai SDK users to set


class _ToFake(httpx.HTTPTransport):
    """Sends what the SDK addresses to api.groq.com to the local fake instead (plain HTTP, same path)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._target = httpx.URL(url)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host=self._target.host, port=self._target.port)
        return super().handle_request(request)


@pytest.fixture
def both(loaded_data: None) -> Iterator[Telemetry]:
    with instrumented_with(GroqInstrumentor, OpenAIInstrumentor) as telemetry:
        yield telemetry


@pytest.fixture
def openai_to_groq(gfake: FakeGroqServer) -> openai.OpenAI:
    http_client = httpx.Client(transport=_ToFake(gfake.url))
    return openai.OpenAI(api_key="gsk_test", base_url=GROQ_OPENAI_BASE, max_retries=0, http_client=http_client)


def test_openai_sdk_at_api_groq_com_is_named_groq(both, gfake, openai_to_groq):
    gfake.enqueue(Reply(text="Hi.", prompt_tokens=14, completion_tokens=3))
    openai_to_groq.chat.completions.create(model=MODEL, messages=USER)
    assert gfake.requests[-1].path == "/openai/v1/chat/completions"
    span = both.span()
    assert span.instrumentation_scope.name == "otel_tokenkpi.instrumentors.openai"
    assert span.attributes["gen_ai.provider.name"] == "groq"
    assert span.attributes["server.address"] == "api.groq.com"
    assert span.attributes["gen_ai.usage.input_tokens"] == 14


def test_openai_sdk_stream_reads_groq_usage_from_x_groq(both, gfake, openai_to_groq):
    gfake.enqueue(Reply(text="Hi there.", prompt_tokens=19, completion_tokens=4))
    chunks = list(openai_to_groq.chat.completions.create(model=MODEL, messages=USER, stream=True))
    assert chunks[-1].usage is None  # no stream_options: Groq's usage is only in x_groq
    attrs = both.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 19 and attrs["gen_ai.usage.output_tokens"] == 4


def test_one_span_per_call_whichever_sdk_makes_it(both, gfake, groq_client, openai_to_groq):
    groq_client.chat.completions.create(model=MODEL, messages=USER)
    openai_to_groq.chat.completions.create(model=MODEL, messages=USER)
    list(groq_client.chat.completions.create(model=MODEL, messages=USER, stream=True))
    list(openai_to_groq.chat.completions.create(model=MODEL, messages=USER, stream=True))
    spans = both.spans()
    assert len(gfake.requests) == len(spans) == 4
    assert [s.instrumentation_scope.name.rsplit(".", 1)[-1] for s in spans] == ["groq", "openai"] * 2
    assert {s.attributes["gen_ai.provider.name"] for s in spans} == {"groq"}
