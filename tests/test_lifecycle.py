"""Lifecycle guarantees every adapter inherits: our faults never reach the
user, a missing method is skipped, no SDK / non-recording spans still feed
the engine, and uninstrument() leaves no wrapper behind."""

from __future__ import annotations

import dataclasses
import importlib
import logging

import pytest
import wrapt
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from otel_tokenkpi import _safety, engine
from otel_tokenkpi.instrumentation import Patch
from otel_tokenkpi.instrumentors import _openai_chat
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.lifecycle import model_call_wrapper
from otel_tokenkpi.testing.fake_openai import Reply

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(autouse=True)
def fresh_log_once():
    _safety._reset_logged_for_tests()
    yield
    _safety._reset_logged_for_tests()


def _boom(*args, **kwargs):
    raise RuntimeError("bug in otel-tokenkpi")


def our_warnings(caplog):
    return [r for r in caplog.records if r.name == "otel_tokenkpi" and r.levelno >= logging.WARNING]


def test_engine_fault_is_isolated_logged_once_and_span_still_ends(telemetry, fake, openai_client, monkeypatch, caplog):
    monkeypatch.setattr(engine.ENGINE, "assess", _boom)
    fake.enqueue(Reply(text="fine", prompt_tokens=5), Reply(text="fine again", prompt_tokens=6))
    first = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    second = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert (first.choices[0].message.content, second.choices[0].message.content) == ("fine", "fine again")
    spans = telemetry.spans()
    assert len(spans) == 2
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in spans] == [5, 6]  # the rest is still written
    assert not any(k.startswith("tokenkpi.") for s in spans for k in s.attributes)
    warnings = our_warnings(caplog)
    assert len(warnings) == 1 and "engine.assess" in warnings[0].getMessage()


def test_request_parsing_fault_passes_the_call_through(telemetry, fake, openai_client, monkeypatch, caplog):
    monkeypatch.setattr(_openai_chat, "read_request", _boom)
    fake.enqueue(Reply(text="untouched"))
    result = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert result.choices[0].message.content == "untouched"
    assert telemetry.spans() == []
    assert len(our_warnings(caplog)) == 1


def test_chunk_handling_fault_keeps_the_stream_intact(telemetry, fake, openai_client, monkeypatch, caplog):
    monkeypatch.setattr(_openai_chat.ChunkReader, "feed", _boom)
    fake.enqueue(Reply(text="a b c d"))
    chunks = list(openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "a b c d"
    assert len(telemetry.spans()) == 1
    warnings = our_warnings(caplog)
    assert len(warnings) == 1 and "stream.on_chunk" in warnings[0].getMessage()


def test_response_parsing_fault_keeps_the_result(telemetry, fake, openai_client, monkeypatch):
    from otel_tokenkpi.instrumentors import openai as adapter

    broken = dataclasses.replace(adapter.CHAT, read_response=_boom)
    wrapper = model_call_wrapper(OpenAIInstrumentor()._recorder, broken, is_async=False)
    fake.enqueue(Reply(text="kept"))
    resource = openai_client.chat.completions
    original = type(resource).__dict__["create"].__wrapped__  # the SDK's own function, under our wrapper

    def call(**kwargs):
        return original(resource, **kwargs)

    result = wrapper(call, resource, (), {"model": "gpt-4o", "messages": MESSAGES})
    assert result.choices[0].message.content == "kept"
    span = telemetry.span()
    assert "gen_ai.response.id" not in span.attributes


def test_uninstrument_leaves_no_wrapper():
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument()
    patched = [(p.module, p.cls, p.method) for p in instrumentor.patches()]

    def owners():
        for module, cls, method in patched:
            yield vars(getattr(importlib.import_module(module), cls))[method]

    assert all(isinstance(m, wrapt.FunctionWrapper) for m in owners())
    instrumentor.uninstrument()
    assert not any(isinstance(m, wrapt.FunctionWrapper) for m in owners())
    assert len(patched) == 18  # 14 public methods and helpers; the request path and the retry hook, sync and async


def test_missing_method_is_skipped_with_one_warning(caplog, fake, openai_client):
    class Partial(OpenAIInstrumentor):
        _instance = None  # BaseInstrumentor keeps one instance per class

        def patches(self):
            missing = Patch(
                "openai.resources.chat.completions", "Completions", "no_such_method", make_wrapper=lambda r: None
            )
            gone = Patch("openai.no_such_module", "X", "create", make_wrapper=lambda r: None)
            return [missing, gone, *super().patches()]

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = Partial()
    instrumentor.instrument(tracer_provider=provider)  # never raises
    try:
        fake.enqueue(Reply())
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    assert len(exporter.get_finished_spans()) == 1
    messages = [r.getMessage() for r in our_warnings(caplog)]
    assert sum("no_such_method" in m for m in messages) == 1
    assert sum("no_such_module" in m for m in messages) == 1


def _metrics_sum(reader: InMemoryMetricReader, name: str) -> int:
    data = reader.get_metrics_data()
    return sum(
        p.sum
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    )


@pytest.mark.parametrize("tracing", ["noop", "sampled_out"])
def test_calls_without_recording_spans_still_reach_engine_and_metrics(loaded_data, fake, openai_client, tracing):
    if tracing == "noop":
        provider = trace.NoOpTracerProvider()
    else:
        provider = TracerProvider(sampler=ALWAYS_OFF)
    reader = InMemoryMetricReader()
    seen = []
    original = engine.ENGINE.assess

    def spy(record, prepared=None, metrics=None):
        seen.append(record)
        return original(record, prepared, metrics)

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader]))
    engine.ENGINE.assess = spy
    try:
        fake.enqueue(Reply(prompt_tokens=11, completion_tokens=3), Reply(prompt_tokens=12, completion_tokens=4))
        for _ in range(2):
            assert openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    finally:
        del engine.ENGINE.assess
        instrumentor.uninstrument()
    assert [r.result.usage.input_tokens for r in seen] == [11, 12]
    assert _metrics_sum(reader, "gen_ai.client.token.usage") == 11 + 3 + 12 + 4
