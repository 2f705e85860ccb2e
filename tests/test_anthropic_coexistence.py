"""The anthropic SDK (2.x) traces its own calls: what users see next to our spans.

How the SDK does it (anthropic/_tracing.py, _base_client.py): each client resolves its
``open_telemetry`` option ONCE, when it is constructed (``ANTHROPIC_OPEN_TELEMETRY=false`` in the
environment then, or ``open_telemetry=False`` / ``{"traces": False}``, turns its spans off; a
``tracer_provider`` in the option overrides the global one). Its tracer (scope
``com.anthropic.sdk.python``) comes from the global TracerProvider unless the option names one. For
every API call it starts one CLIENT span ``anthropic.messages.create`` inside the HTTP request, with
the current context as parent. Ours is current during the call, so users with a global provider see
our ``chat <model>`` span and, nested under it, the SDK's span for the same call: two spans per model
call, one of them ours. Turn the SDK's off with ``ANTHROPIC_OPEN_TELEMETRY=false`` (before clients are
built) or ``open_telemetry=False``.

The SDK spans are counted here with a plain exporter (no TokenKPISpanProcessor), so the numbers are
what the SDK emits, whatever our processor later does with foreign spans.
"""

from __future__ import annotations

import os

import anthropic
import pytest
from _anthropic_support import MODEL, QUIET, SCOPE, SDK_SCOPE, USER
from _telemetry import check_in_forked_child
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_anthropic_support"]

# The SDK traces its own calls (and takes open_telemetry=) from anthropic 2.0 on.
pytestmark = pytest.mark.skipif(not QUIET, reason="anthropic < 2.0 emits no spans of its own")


def raw_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def by_scope(exporter: InMemorySpanExporter, scope: str) -> list:
    return [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == scope]


def one_call_each_way(client: anthropic.Anthropic) -> None:
    client.messages.create(model=MODEL, max_tokens=16, messages=USER)
    for _ in client.messages.create(model=MODEL, max_tokens=16, messages=USER, stream=True):
        pass
    with client.messages.stream(model=MODEL, max_tokens=16, messages=USER) as stream:
        stream.until_done()


def test_clients_built_before_and_after_instrument(loaded_data, afake):
    provider, exporter = raw_provider()
    otel = {"tracer_provider": provider}  # as a global provider would, without setting the process-wide one
    before = anthropic.Anthropic(api_key="k", base_url=afake.url, max_retries=0, open_telemetry=otel)
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        after = anthropic.Anthropic(api_key="k", base_url=afake.url, max_retries=0, open_telemetry=otel)
        one_call_each_way(before)
        one_call_each_way(after)
    finally:
        instrumentor.uninstrument()
    ours, theirs = by_scope(exporter, SCOPE), by_scope(exporter, SDK_SCOPE)
    assert len(ours) == 6  # exactly one of ours per call: 2 clients x (create, create stream, stream())
    assert len(theirs) == 6  # and the SDK's own: one per call, each nested under ours
    assert len(exporter.get_finished_spans()) == 12
    assert {s.name for s in theirs} == {"anthropic.messages.create"}
    assert sorted(s.parent.span_id for s in theirs) == sorted(s.context.span_id for s in ours)
    assert all(s.parent is None for s in ours)
    # Same call, same counts: the SDK also adds cache tokens into its input count.
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in theirs] == [10] * 6


def test_sdk_spans_off_with_open_telemetry_false(loaded_data, afake):
    provider, exporter = raw_provider()
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = anthropic.Anthropic(api_key="k", base_url=afake.url, max_retries=0, open_telemetry=False)
        one_call_each_way(client)
    finally:
        instrumentor.uninstrument()
    assert len(by_scope(exporter, SCOPE)) == 3
    assert by_scope(exporter, SDK_SCOPE) == []


def test_with_a_global_tracer_provider(loaded_data, afake):
    """What a user of ``opentelemetry-instrument`` or ``otel_tokenkpi.instrument()`` gets: a global
    provider. Set in a forked child, since the global provider can be set once per process."""
    url = afake.url

    def child_checks() -> dict[str, bool]:
        os.environ.pop("ANTHROPIC_OPEN_TELEMETRY", None)
        provider, exporter = raw_provider()
        trace.set_tracer_provider(provider)
        before = anthropic.Anthropic(api_key="k", base_url=url, max_retries=0)
        AnthropicInstrumentor().instrument()
        after = anthropic.Anthropic(api_key="k", base_url=url, max_retries=0)
        before.messages.create(model=MODEL, max_tokens=16, messages=USER)
        after.messages.create(model=MODEL, max_tokens=16, messages=USER)
        both = len(by_scope(exporter, SCOPE)) == 2 and len(by_scope(exporter, SDK_SCOPE)) == 2
        os.environ["ANTHROPIC_OPEN_TELEMETRY"] = "false"  # read when a client is constructed
        quiet = anthropic.Anthropic(api_key="k", base_url=url, max_retries=0)
        del os.environ["ANTHROPIC_OPEN_TELEMETRY"]
        quiet.messages.create(model=MODEL, max_tokens=16, messages=USER)
        after.messages.create(model=MODEL, max_tokens=16, messages=USER)  # built before: still traced
        return {
            "one of ours and one of the SDK's per call": both,
            "env var at construction turns the SDK's off": len(by_scope(exporter, SDK_SCOPE)) == 3,
            "ours stay": len(by_scope(exporter, SCOPE)) == 4,
        }

    check_in_forked_child(child_checks)


def test_with_our_processor_exactly_one_genai_span_per_call_reaches_the_exporter(loaded_data, afake):
    from otel_tokenkpi import TokenKPISpanProcessor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TokenKPISpanProcessor(SimpleSpanProcessor(exporter)))
    otel = {"tracer_provider": provider}
    before = anthropic.Anthropic(api_key="k", base_url=afake.url, max_retries=0, open_telemetry=otel)
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        after = anthropic.Anthropic(api_key="k", base_url=afake.url, max_retries=0, open_telemetry=otel)
        one_call_each_way(before)
        one_call_each_way(after)
    finally:
        instrumentor.uninstrument()
    spans = exporter.get_finished_spans()
    assert [s.instrumentation_scope.name for s in spans] == [SCOPE] * 6  # the SDK's nested twins are dropped
    # Each call is its own trace's root and counted once in its roll-up.
    assert [s.attributes["tokenkpi.trace.llm_calls"] for s in spans] == [1] * 6
