"""Secrets never reach telemetry: a canary API key, org/project ids, custom auth headers and credentials in
base URLs, used with every provider's real SDK against its fake server, appear in no exported span (name,
attributes, status, events, links, resource), metric data point or log record of ours, with content capture
on and off; and, for OpenAI, nowhere in the OTLP bytes a real receiver gets.

Every script makes a plain call, a streamed call, and a call that fails with 401 whose error body echoes the
key (some providers do): exception messages are the likeliest path for a key into a span.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import _cohere_support as cohere_support
import _groq_support as groq_support
import _litellm_support as litellm_support
import _mistral_support as mistral_support
import _ollama_support as ollama_support
import anthropic
import boto3
import openai
import pytest
from _telemetry import Telemetry
from botocore.config import Config
from google import genai
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from otlp_receiver import OtlpReceiver

from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.instrumentors.bedrock import BedrockInstrumentor
from otel_tokenkpi.instrumentors.cohere import CohereInstrumentor
from otel_tokenkpi.instrumentors.google_genai import GoogleGenAIInstrumentor
from otel_tokenkpi.instrumentors.groq import GroqInstrumentor
from otel_tokenkpi.instrumentors.litellm import LiteLLMInstrumentor
from otel_tokenkpi.instrumentors.mistral import MistralInstrumentor
from otel_tokenkpi.instrumentors.ollama import OllamaInstrumentor
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing import (
    fake_anthropic,
    fake_bedrock,
    fake_cohere,
    fake_gemini,
    fake_groq,
    fake_mistral,
    fake_ollama,
    fake_openai,
)

CANARY = "CANARY7f3a9c"
KEY = f"sk-{CANARY}-key"
HEADERS = {"X-Custom-Auth": f"Bearer {CANARY}-header"}
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ASK = [{"role": "user", "content": "hello"}]


def _url_with_userinfo(url: str) -> str:
    return url.replace("http://", f"http://user:{CANARY}-pw@")


def _script(server: Any, reply: Any, ok: Callable[[], Any], stream: Callable[[], Any], errors: Any) -> None:
    """A plain call, a stream read to its end, and a 401 whose message echoes the key."""
    server.enqueue(reply(text="fine"), reply(text="fine again"), reply(status=401, error_message=f"bad key {KEY}"))
    ok()
    for _ in stream():
        pass
    with pytest.raises(errors):
        ok()


def run_openai(server: Any) -> None:
    client = openai.OpenAI(
        api_key=KEY,
        organization=f"org-{CANARY}",
        project=f"proj-{CANARY}",
        base_url=_url_with_userinfo(server.url) + "/v1",
        default_headers=HEADERS,
        max_retries=0,
    )
    call = dict(model="gpt-4o", messages=ASK, extra_headers={"X-Extra": CANARY}, extra_query={"key": CANARY})
    _script(
        server,
        fake_openai.Reply,
        lambda: client.chat.completions.create(**call),
        lambda: client.chat.completions.create(**call, stream=True, stream_options={"include_usage": True}),
        openai.AuthenticationError,
    )


def run_anthropic(server: Any) -> None:
    client = anthropic.Anthropic(
        api_key=KEY, base_url=_url_with_userinfo(server.url), default_headers=HEADERS, max_retries=0
    )
    call = dict(model="claude-haiku-4-5", max_tokens=16, messages=ASK, extra_headers={"X-Extra": CANARY})
    _script(
        server,
        fake_anthropic.Reply,
        lambda: client.messages.create(**call),
        lambda: client.messages.create(**call, stream=True),
        anthropic.AuthenticationError,
    )


def run_gemini(server: Any) -> None:
    client = genai.Client(api_key=KEY, http_options={"base_url": server.url, "headers": HEADERS})
    contents = [{"role": "user", "parts": [{"text": "hello"}]}]
    _script(
        server,
        fake_gemini.Reply,
        lambda: client.models.generate_content(model="gemini-2.5-flash", contents=contents),
        lambda: client.models.generate_content_stream(model="gemini-2.5-flash", contents=contents),
        genai.errors.ClientError,
    )


def run_bedrock(server: Any) -> None:
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=f"AKIA{CANARY}",
        aws_secret_access_key=KEY,
        aws_session_token=f"session-{CANARY}",
        config=Config(retries={"total_max_attempts": 1}),
    )
    call = dict(
        modelId="anthropic.claude-3-5-sonnet-20240620-v1:0", messages=[{"role": "user", "content": [{"text": "hello"}]}]
    )
    import botocore.exceptions

    _script(
        server,
        fake_bedrock.Reply,
        lambda: client.converse(**call),
        lambda: client.converse_stream(**call)["stream"],
        botocore.exceptions.ClientError,
    )


def run_mistral(server: Any) -> None:
    from mistralai.client import Mistral

    client = Mistral(api_key=KEY, server_url=_url_with_userinfo(server.url))
    call = dict(model=mistral_support.MODEL, messages=ASK, http_headers=HEADERS)
    from mistralai.client import errors

    _script(
        server,
        fake_mistral.Reply,
        lambda: client.chat.complete(**call),
        lambda: client.chat.stream(**call),
        errors.SDKError,
    )


def run_cohere(server: Any) -> None:
    import cohere

    client = cohere.ClientV2(api_key=KEY, base_url=server.url, max_retries=0)
    options = {"additional_headers": HEADERS, "additional_query_parameters": {"key": CANARY}}
    call = dict(model=cohere_support.MODEL, messages=ASK, request_options=options)
    _script(
        server,
        fake_cohere.Reply,
        lambda: client.chat(**call),
        lambda: client.chat_stream(**call),
        cohere.errors.UnauthorizedError,
    )


def run_ollama(server: Any) -> None:
    import ollama

    client = ollama.Client(host=_url_with_userinfo(server.url), headers={"Authorization": f"Bearer {KEY}", **HEADERS})
    _script(
        server,
        fake_ollama.Reply,
        lambda: client.chat(model=ollama_support.MODEL, messages=ASK),
        lambda: client.chat(model=ollama_support.MODEL, messages=ASK, stream=True),
        ollama.ResponseError,
    )


def run_groq(server: Any) -> None:
    import groq

    client = groq.Groq(api_key=KEY, base_url=_url_with_userinfo(server.url), default_headers=HEADERS, max_retries=0)
    call = dict(model=groq_support.MODEL, messages=ASK, extra_headers={"X-Extra": CANARY})
    _script(
        server,
        fake_groq.Reply,
        lambda: client.chat.completions.create(**call),
        lambda: client.chat.completions.create(**call, stream=True),
        groq.AuthenticationError,
    )


def run_litellm(server: Any) -> None:
    litellm = litellm_support.litellm
    call = dict(
        model="openai/gpt-4o",
        messages=ASK,
        api_key=KEY,
        api_base=_url_with_userinfo(server.url) + "/v1",
        organization=f"org-{CANARY}",
        extra_headers=HEADERS,
        max_retries=0,
    )
    _script(
        server,
        fake_openai.Reply,
        lambda: litellm.completion(**call),
        lambda: litellm.completion(**call, stream=True, stream_options={"include_usage": True}),
        litellm.AuthenticationError,
    )


CASES: dict[str, tuple[Any, tuple[type, ...], Callable[[Any], None]]] = {
    "openai": (fake_openai.FakeOpenAIServer, (OpenAIInstrumentor,), run_openai),
    "anthropic": (fake_anthropic.FakeAnthropicServer, (AnthropicInstrumentor,), run_anthropic),
    "gemini": (fake_gemini.FakeGeminiServer, (GoogleGenAIInstrumentor,), run_gemini),
    "bedrock": (fake_bedrock.FakeBedrockServer, (BedrockInstrumentor,), run_bedrock),
    "mistral": (fake_mistral.FakeMistralServer, (MistralInstrumentor,), run_mistral),
    "cohere": (fake_cohere.FakeCohereServer, (CohereInstrumentor,), run_cohere),
    "ollama": (fake_ollama.FakeOllamaServer, (OllamaInstrumentor,), run_ollama),
    "groq": (fake_groq.FakeGroqServer, (GroqInstrumentor,), run_groq),
    "litellm": (fake_openai.FakeOpenAIServer, (LiteLLMInstrumentor, OpenAIInstrumentor), run_litellm),
}


def _everything_exported(telemetry: Telemetry) -> list[str]:
    """Every string an exporter would see, as text: spans with all their parts, and every metric point."""
    out = []
    for span in telemetry.spans():
        out.append(repr((span.name, dict(span.attributes or {}), span.status.description)))
        out.append(repr([(e.name, dict(e.attributes or {})) for e in span.events]))
        out.append(repr([dict(link.attributes or {}) for link in span.links]))
        out.append(repr(dict(span.resource.attributes)))
    data = telemetry.metric_reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.extend(repr(dict(p.attributes or {})) for p in metric.data.data_points)
    return out


@pytest.mark.parametrize("capture", [False, True], ids=["no-content", "content"])
@pytest.mark.parametrize("label", list(CASES))
def test_canary_credentials_never_reach_telemetry(loaded_data, monkeypatch, caplog, label, capture):
    make_server, instrumentor_classes, run = CASES[label]
    if capture:
        monkeypatch.setenv(CAPTURE_ENV, "true")
    else:
        monkeypatch.delenv(CAPTURE_ENV, raising=False)
    caplog.set_level(logging.DEBUG)
    telemetry = Telemetry()
    instrumentors = [cls() for cls in instrumentor_classes]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        with make_server() as server:
            run(server)
            sent = repr([r.headers for r in server.requests])
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
    assert CANARY in sent  # the secrets really went out with the calls
    ours = [s for s in telemetry.spans() if s.instrumentation_scope.name.startswith("otel_tokenkpi")]
    assert len(ours) == 3 and sum(s.status.description is not None for s in ours) == 1
    leaks = [text for text in _everything_exported(telemetry) if CANARY in text]
    assert not leaks, leaks
    # Our logs and the OpenTelemetry SDK's (the SDK clients' own debug logs are theirs, not ours).
    records = [r for r in caplog.records if r.name.startswith(("otel_tokenkpi", "opentelemetry"))]
    assert not [r.getMessage() for r in records if CANARY in r.getMessage()]


def test_otlp_bytes_carry_no_canary(loaded_data, monkeypatch):
    """The bytes a real OTLP/HTTP receiver gets, with content capture on, for a plain, a streamed and a failed
    OpenAI call."""
    monkeypatch.setenv(CAPTURE_ENV, "true")
    with OtlpReceiver() as receiver, fake_openai.FakeOpenAIServer() as server:
        provider = TracerProvider()
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.http_endpoint + "/v1/traces"))
        )
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            run_openai(server)
        finally:
            instrumentor.uninstrument()
        provider.shutdown()
        spans = receiver.wait_for_spans(3)
        raw = b"".join(r.message.SerializeToString() for r in receiver.requests("traces"))
    assert len(spans) == 3 and any(s["status_message"] for s in spans)
    assert CANARY.encode() not in raw
