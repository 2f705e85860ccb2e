"""TokenKPISpanProcessor with GenAI spans from other instrumentations: built with the
real SDK in the attribute styles of the official instrumentations (semconv),
OpenLLMetry and OpenInference; and a foreign GenAI span nested under ours (one wrapping ours:
test_processor_wrappers.py)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import tiktoken
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from test_foreign import (
    ASK,
    FOLLOW_UP,
    SEMCONV_ATTRIBUTES,
    SYSTEM,
    TOOLS,
    openinference_attributes,
    openllmetry_attributes,
)

from otel_tokenkpi import TokenKPISpanProcessor
from otel_tokenkpi import semconv as sc
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.invocation import ToolDefinition
from otel_tokenkpi.tool_tokens import count_request_tools

O200K = tiktoken.get_encoding("o200k_base")
ROME = json.dumps({"city": "Rome"})
PARIS = json.dumps({"city": "Paris"})


def n(text: str) -> int:
    return len(O200K.encode_ordinary(text))


def tool_definition_tokens() -> int:
    """What OpenAI bills for TOOLS in these gpt-4o requests: the rendered ``namespace functions`` block,
    appended to the system message (docs/tool-token-counting.md; checked on billed requests in
    test_tool_tokens.py). Counted once the encodings are loaded (``loaded_data``), so it is exact."""
    definitions = [
        ToolDefinition(name, description, json.dumps(schema, separators=(",", ":")))
        for name, description, schema in TOOLS
    ]
    counted = count_request_tools(definitions, "openai", "gpt-4o", system_text=SYSTEM)
    assert counted.exact
    return counted.total


def semconv_style() -> dict[str, Any]:
    attrs = dict(SEMCONV_ATTRIBUTES)
    attrs["gen_ai.usage.cache_read.input_tokens"] = 0
    attrs["gen_ai.output.messages"] = json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "tool_call", "id": "call_3", "name": "get_weather", "arguments": {"city": "Rome"}}],
                "finish_reason": "tool_calls",
            }
        ]
    )
    return attrs


def openllmetry_style() -> dict[str, Any]:
    attrs = openllmetry_attributes()
    attrs["gen_ai.usage.cache_read_input_tokens"] = 0
    attrs["gen_ai.completion.0.tool_calls.0.arguments"] = ROME
    return attrs


def openinference_style() -> dict[str, Any]:
    attrs = openinference_attributes()
    attrs["llm.token_count.prompt_details.cache_read"] = 0
    attrs["llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments"] = ROME
    return attrs


class Pipeline:
    def __init__(self, **options: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(TokenKPISpanProcessor(SimpleSpanProcessor(self.exporter), **options))
        self.tracer = self.provider.get_tracer("some.other.instrumentation")

    def spans(self) -> dict[str, Any]:
        return {s.name: s for s in self.exporter.get_finished_spans()}


@pytest.mark.parametrize(
    ("style", "semconv_args"),
    [(semconv_style, True), (openllmetry_style, False), (openinference_style, False)],
    ids=["semconv", "openllmetry", "openinference"],
)
def test_foreign_genai_spans_get_the_engines_attributes_and_feed_the_root_roll_up(loaded_data, style, semconv_args):
    pipeline = Pipeline()
    with pipeline.tracer.start_as_current_span("agent run"):
        pipeline.tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=style()).end()
    spans = pipeline.spans()
    call = spans["chat gpt-4o"].attributes
    # History as each convention carries it: semconv tool-call arguments are objects (compact JSON here).
    carried_paris, carried_rome = (
        (json.dumps({"city": c}, separators=(",", ":")) for c in ("Paris", "Rome")) if semconv_args else (PARIS, ROME)
    )
    resent = n(SYSTEM) + n(ASK) + n("Checking both.") + 2 * n("get_weather") + n(carried_paris) + n(carried_rome)
    resent += tool_definition_tokens()
    new = n("18C sunny") + n("21C cloudy") + n(FOLLOW_UP)
    assert call[sc.CONTEXT_RESENT_TOKENS] == resent
    assert call[sc.CONTEXT_NEW_TOKENS] == new
    assert call[sc.CONTEXT_UNATTRIBUTED_TOKENS] == 1200 - resent - new  # the breakdown adds up to the bill
    assert call[sc.TOOLS_DEFINED_COUNT] == 3
    assert call[sc.TOOL_CALLS_COUNT] == 1
    assert call[sc.TOOL_CALLS_DUPLICATE_COUNT] == 1  # get_weather(Rome) again
    assert call[sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS] == n("get_weather") + n(carried_rome)
    # gpt-4o caches prefixes from 1,024 tokens on (docs/cache-eligibility.md): a re-sent prefix of
    # fewer tokens could not have come from the cache, so it is not waste (the whole prompt being larger
    # does not matter: only the re-sent prefix is cacheable).
    assert resent < 1024
    assert call[sc.WASTE_UNCACHED_RESENT_TOKENS] == 0
    assert call[sc.WASTE_TOKENS] == n("get_weather") + n(carried_rome)
    assert call[sc.WASTE_RATIO] == call[sc.WASTE_TOKENS] / 1240
    assert sc.COST_USD in call and sc.CONTEXT_WINDOW in call
    root = spans["agent run"].attributes
    assert root[sc.TRACE_LLM_CALLS] == 1
    assert root[sc.TRACE_INPUT_TOKENS] == 1200
    assert root[sc.TRACE_WASTE_TOKENS] == call[sc.WASTE_TOKENS]
    assert root[sc.TRACE_DUPLICATE_TOOL_CALLS] == 1


def test_a_foreign_span_without_content_gets_only_usage_based_rules(loaded_data):
    pipeline = Pipeline()
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 500,
        "gen_ai.usage.output_tokens": 64,
        "gen_ai.response.finish_reasons": ["length"],
    }
    pipeline.tracer.start_span("chat gpt-4o", attributes=attrs).end()
    call = pipeline.spans()["chat gpt-4o"].attributes
    assert call[sc.WASTE_TRUNCATED_OUTPUT_TOKENS] == 64
    assert call[sc.WASTE_FAILED_CALL_TOKENS] == 0
    assert call[sc.WASTE_TOKENS] == 64
    for absent in (
        sc.CONTEXT_RESENT_TOKENS,
        sc.WASTE_UNCACHED_RESENT_TOKENS,
        sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS,
        sc.TOOL_CALLS_COUNT,
        sc.TOOLS_DEFINED_COUNT,
    ):
        assert absent not in call


def test_non_genai_spans_pass_through_unchanged(loaded_data):
    pipeline = Pipeline()
    with pipeline.tracer.start_as_current_span("GET /health", attributes={"http.method": "GET"}):
        pipeline.tracer.start_span("db query").end()
    spans = pipeline.spans()
    assert dict(spans["GET /health"].attributes) == {"http.method": "GET"}
    assert dict(spans["db query"].attributes) == {}


def _client_with_nested_foreign_span(fake: Any, tracer: Any) -> openai.OpenAI:
    """An openai client whose HTTP layer is wrapped by 'another instrumentation' that
    emits its own GenAI span for the same call (inside ours)."""
    client = openai.OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0)
    post = client.post

    def instrumented_post(*args: Any, **kwargs: Any) -> Any:
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 10}
        with tracer.start_as_current_span("chat gpt-4o (other)", kind=SpanKind.CLIENT, attributes=attrs):
            return post(*args, **kwargs)

    client.post = instrumented_post  # type: ignore[method-assign]
    return client


@pytest.mark.parametrize("keep", [False, True])
def test_a_foreign_genai_span_nested_under_ours_is_never_counted_again(loaded_data, fake, keep):
    pipeline = Pipeline(keep_nested_genai_spans=keep)
    reader = InMemoryMetricReader()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.provider, meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        client = _client_with_nested_foreign_span(fake, pipeline.tracer)
        with pipeline.tracer.start_as_current_span("agent run"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    finally:
        instrumentor.uninstrument()
    spans = pipeline.spans()
    genai = [s for s in spans.values() if s.attributes.get(sc.OPERATION_NAME) == "chat"]
    assert [s.name for s in genai] == (["chat gpt-4o (other)", "chat gpt-4o"] if keep else ["chat gpt-4o"])
    if keep:
        assert not any(key.startswith("tokenkpi.") for key in spans["chat gpt-4o (other)"].attributes)
    assert spans["agent run"].attributes[sc.TRACE_LLM_CALLS] == 1


def test_enriched_spans_keep_their_own_attributes_events_and_limits(loaded_data):
    from opentelemetry.sdk.trace import SpanLimits

    original = semconv_style()
    limit = len(original) + 3
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=limit))
    provider.add_span_processor(TokenKPISpanProcessor(SimpleSpanProcessor(exporter)))
    span = provider.get_tracer("other").start_span("chat gpt-4o", attributes=original)
    span.add_event("gen_ai.choice", {"index": 0})
    span.end()
    (finished,) = exporter.get_finished_spans()
    unlimited = Pipeline()
    unlimited.tracer.start_span("chat gpt-4o", attributes=original).end()
    ours = [k for k in unlimited.spans()["chat gpt-4o"].attributes if k not in original]
    assert len(ours) > 3
    assert len(finished.attributes) == limit
    assert all(finished.attributes[key] == (tuple(v) if isinstance(v, list) else v) for key, v in original.items())
    assert finished.dropped_attributes == len(ours) - 3
    assert [e.name for e in finished.events] == ["gen_ai.choice"]


def test_a_span_the_processor_cannot_read_is_forwarded_unchanged(loaded_data, monkeypatch):
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

    class Recording(SpanProcessor):
        def __init__(self) -> None:
            self.ended: list[Any] = []

        def on_end(self, span: Any) -> None:
            self.ended.append(span)

    recording = Recording()
    odd = ReadableSpan(name="hand-made", context=None, attributes={"http.route": "/"})
    TokenKPISpanProcessor(recording).on_end(odd)  # no context, no trace: nothing to read, nothing raised
    assert recording.ended == [odd]

    pipeline = Pipeline()
    (processor,) = pipeline.provider._active_span_processor._span_processors

    def broken(span: Any) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(processor, "_on_end", broken)
    pipeline.tracer.start_span("chat gpt-4o", attributes=semconv_style()).end()
    finished = pipeline.exporter.get_finished_spans()[-1]
    assert finished.name == "chat gpt-4o"
    assert not any(key.startswith("tokenkpi.") for key in finished.attributes)  # forwarded as it was
