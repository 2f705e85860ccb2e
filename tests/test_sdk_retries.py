"""Retries inside one SDK call (openai, anthropic, groq: ``max_retries``) stay one model-call span, and
each failed attempt the SDK sent again is on it: a ``tokenkpi.retry`` event at that moment with the
attempt's ``http.request.resend_count`` (0: the original request), ``http.response.status_code`` and
``error.type`` (the status code, or the exception's class name when no response came), and the span's
``http.request.resend_count`` (HTTP semconv) is the number of resends."""

from __future__ import annotations

from typing import Any

import anthropic
import groq
import openai
import pytest
from _anthropic_support import QUIET
from conftest import instrumented_with

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.instrumentors.groq import GroqInstrumentor
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing import fake_anthropic, fake_groq, fake_openai

MESSAGES = [{"role": "user", "content": "Describe Paris in a few words."}]
SOON = {"retry-after-ms": "1"}  # the SDKs honour it: no back-off wait in tests


def retries(span: Any) -> list[dict[str, Any]]:
    return [dict(event.attributes or {}) for event in span.events if event.name == sc.EVENT_RETRY]


@pytest.fixture(scope="module")
def ofake():
    with fake_openai.FakeOpenAIServer() as server:
        yield server


def openai_client(server: Any, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", **options)


def test_a_500_then_a_success_is_one_span_with_the_failed_attempt(loaded_data, ofake):
    ofake.reset()
    ofake.enqueue(fake_openai.Reply(status=500, headers=SOON), fake_openai.Reply(text="second", prompt_tokens=12))
    with instrumented_with(OpenAIInstrumentor) as telemetry:
        answer = openai_client(ofake, max_retries=1).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "second" and len(ofake.requests) == 2
    (span,) = telemetry.spans()
    assert retries(span) == [{sc.HTTP_REQUEST_RESEND_COUNT: 0, sc.HTTP_RESPONSE_STATUS_CODE: 500, sc.ERROR_TYPE: "500"}]
    assert span.attributes[sc.HTTP_REQUEST_RESEND_COUNT] == 1
    assert span.attributes[sc.USAGE_INPUT_TOKENS] == 12  # the answer that came back
    assert sc.ERROR_TYPE not in span.attributes and span.status.is_ok


def test_every_retried_attempt_is_an_event_and_a_final_failure_is_the_span_error(loaded_data, ofake):
    ofake.reset()
    ofake.enqueue(*(fake_openai.Reply(status=status, headers=SOON) for status in (429, 503, 500)))
    with instrumented_with(OpenAIInstrumentor) as telemetry, pytest.raises(openai.InternalServerError):
        openai_client(ofake, max_retries=2).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (span,) = telemetry.spans()
    assert [(e[sc.HTTP_REQUEST_RESEND_COUNT], e[sc.HTTP_RESPONSE_STATUS_CODE]) for e in retries(span)] == [
        (0, 429),
        (1, 503),
    ]
    assert span.attributes[sc.HTTP_REQUEST_RESEND_COUNT] == 2
    assert span.attributes[sc.ERROR_TYPE] == "InternalServerError"  # the last attempt's, as the user sees it


def test_a_timed_out_attempt_has_no_status_and_its_exception_as_error_type(loaded_data, ofake):
    ofake.reset()
    ofake.enqueue(fake_openai.Reply(delay_s=0.5), fake_openai.Reply(text="in time"))
    with instrumented_with(OpenAIInstrumentor) as telemetry:
        client = openai_client(ofake, max_retries=1, timeout=0.1)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (span,) = telemetry.spans()
    (event,) = retries(span)
    assert sc.HTTP_RESPONSE_STATUS_CODE not in event
    assert event[sc.ERROR_TYPE] == "ReadTimeout"
    assert span.attributes[sc.HTTP_REQUEST_RESEND_COUNT] == 1


def test_no_retry_no_event(loaded_data, ofake):
    ofake.reset()
    with instrumented_with(OpenAIInstrumentor) as telemetry:
        openai_client(ofake, max_retries=2).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (span,) = telemetry.spans()
    assert retries(span) == [] and sc.HTTP_REQUEST_RESEND_COUNT not in span.attributes


async def test_async_retries_are_noted(loaded_data, ofake):
    ofake.reset()
    ofake.enqueue(fake_openai.Reply(status=502, headers=SOON), fake_openai.Reply(text="async"))
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=ofake.url + "/v1", max_retries=1)
    with instrumented_with(OpenAIInstrumentor) as telemetry:
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        async for _chunk in stream:
            pass
    (span,) = telemetry.spans()
    assert [e[sc.HTTP_RESPONSE_STATUS_CODE] for e in retries(span)] == [502]


def test_a_retry_on_a_create_bound_before_instrument_is_noted_too(loaded_data, ofake):
    ofake.reset()
    ofake.enqueue(fake_openai.Reply(status=500, headers=SOON), fake_openai.Reply())
    create = openai_client(ofake, max_retries=1).chat.completions.create
    with instrumented_with(OpenAIInstrumentor) as telemetry:
        create(model="gpt-4o", messages=MESSAGES)
    (span,) = telemetry.spans()
    assert [e[sc.HTTP_RESPONSE_STATUS_CODE] for e in retries(span)] == [500]


def test_anthropic_overloaded_then_success(loaded_data):
    with fake_anthropic.FakeAnthropicServer() as server:
        server.enqueue(fake_anthropic.Reply(status=529, headers=SOON), fake_anthropic.Reply(text="ok", input_tokens=7))
        client = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=1, **QUIET)
        with instrumented_with(AnthropicInstrumentor) as telemetry:
            client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=MESSAGES)
    (span,) = telemetry.spans()
    assert retries(span) == [{sc.HTTP_REQUEST_RESEND_COUNT: 0, sc.HTTP_RESPONSE_STATUS_CODE: 529, sc.ERROR_TYPE: "529"}]
    assert span.attributes[sc.USAGE_INPUT_TOKENS] == 7


def test_groq_rate_limited_then_success(loaded_data):
    with fake_groq.FakeGroqServer() as server:
        server.enqueue(fake_groq.Reply(status=429, headers=SOON), fake_groq.Reply(text="ok"))
        client = groq.Groq(api_key="gsk_test", base_url=server.url, max_retries=1)
        with instrumented_with(GroqInstrumentor) as telemetry:
            client.chat.completions.create(model="qwen/qwen3-32b", messages=MESSAGES)
    (span,) = telemetry.spans()
    assert [e[sc.HTTP_RESPONSE_STATUS_CODE] for e in retries(span)] == [429]
    assert span.attributes[sc.HTTP_REQUEST_RESEND_COUNT] == 1
