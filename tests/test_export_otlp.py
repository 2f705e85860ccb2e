"""Manual wiring, exported for real: ``TokenKPISpanProcessor(BatchSpanProcessor(OTLPSpanExporter))``.

In-process (no global providers): a TracerProvider wired as the README tells users to, the real
``openai`` SDK against the fake server, real OTLP exporters (gRPC and HTTP/protobuf) into the real
local receiver. What the backend gets must be what the spans held: exact usage, finish reasons as
an array, tool-call fan-out, kind CLIENT and the parent/child link to the user's own span.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import tiktoken
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

try:  # repo root on sys.path (python -m pytest)
    from tests.otlp_receiver import OtlpReceiver
except ImportError:  # plain `pytest`: conftest puts tests/ on sys.path
    from otlp_receiver import OtlpReceiver  # type: ignore[no-redef]

from otel_tokenkpi import TokenKPISpanProcessor
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall

Rx, Fake = OtlpReceiver, FakeOpenAIServer  # short names for test signatures
SCOPE = "otel_tokenkpi.instrumentors.openai"
MESSAGES = [
    {"role": "system", "content": "You are a terse travel assistant."},
    {"role": "user", "content": "Weather and local time in Paris and Oslo?"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Local time in a time zone.",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
        },
    },
]
STREAM_REPLY = Reply(text="Sunny and mild in Paris today.", prompt_tokens=42, completion_tokens=7)
TOOL_REPLY = Reply(
    text=None,
    tool_calls=[
        ToolCall("get_weather", '{"city": "Paris"}'),
        ToolCall("get_weather", '{"city": "Oslo"}'),
        ToolCall("get_time", '{"tz": "Europe/Paris"}'),
    ],
    prompt_tokens=120,  # the content plus OpenAI's rendering of the tool schemas and message framing
    completion_tokens=21,
    cached_tokens=16,
)
# genai-prices (bundled): gpt-4o-mini $0.15 in / $0.60 out per Mtok; gpt-4o $2.50 in / $1.25 cached / $10 out.
STREAM_COST = (42 * 0.15 + 7 * 0.6) / 1_000_000
TOOL_COST = ((120 - 16) * 2.5 + 16 * 1.25 + 21 * 10.0) / 1_000_000


def _o200k(text: str) -> int:
    return len(tiktoken.get_encoding("o200k_base").encode_ordinary(text))


def _tool_definition_tokens(tools: list[dict[str, Any]]) -> int:
    """What OpenAI bills for TOOLS (docs/tool-token-counting.md): the functions namespace appended to the
    system message, less one token per object whose first property has no comment (two here)."""
    assert [t["function"]["name"] for t in tools] == ["get_weather", "get_time"]
    namespace = (
        "# Tools\n\n## functions\n\nnamespace functions {\n\n"
        "// Current weather for a city.\ntype get_weather = (_: {\ncity: string,\n}) => any;\n\n"
        "// Local time in a time zone.\ntype get_time = (_: {\ntz?: string,\n}) => any;\n\n"
        "} // namespace functions"
    )
    system = MESSAGES[0]["content"]
    return _o200k(system + "\n\n" + namespace) - _o200k(system) - 1 - 2


@pytest.fixture(autouse=True)
def _clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exporters read OTEL_EXPORTER_OTLP_* themselves: keep the parent's settings out."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def rx() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def _exporters(rx: OtlpReceiver, transport: str) -> tuple[Any, Any]:
    if transport == "grpc":
        return (
            GrpcSpanExporter(endpoint=rx.grpc_endpoint, insecure=True),
            GrpcMetricExporter(endpoint=rx.grpc_endpoint, insecure=True),
        )
    return (
        HttpSpanExporter(endpoint=rx.http_endpoint + "/v1/traces"),
        HttpMetricExporter(endpoint=rx.http_endpoint + "/v1/metrics"),
    )


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_spans_exported_over_otlp(transport: str, rx: Rx, fake: Fake, loaded_data: None) -> None:
    span_exporter, metric_exporter = _exporters(rx, transport)
    resource = Resource.create({"service.name": "export-test"})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(TokenKPISpanProcessor(BatchSpanProcessor(span_exporter)))
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    mp = MeterProvider(resource=resource, metric_readers=[reader])
    tracer = tp.get_tracer("user-agent")
    client = openai.OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0)
    fake.enqueue(STREAM_REPLY, TOOL_REPLY)

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tp, meter_provider=mp)
    try:
        with tracer.start_as_current_span("agent") as agent:
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS)
        assert tp.force_flush(10_000)
        assert mp.force_flush(10_000)
    finally:
        instrumentor.uninstrument()
        tp.shutdown()
        mp.shutdown()

    # the user's call results are untouched
    assert text == "Sunny and mild in Paris today."
    assert [c.function.name for c in response.choices[0].message.tool_calls] == [
        "get_weather",
        "get_weather",
        "get_time",
    ]

    spans = rx.spans()
    assert {r.transport for r in rx.requests("traces")} == {"http" if transport == "http" else "grpc"}
    assert sorted(s["name"] for s in spans) == ["agent", "chat gpt-4o", "chat gpt-4o-mini"]
    by_name = {s["name"]: s for s in spans}
    root, streamed, tools = by_name["agent"], by_name["chat gpt-4o-mini"], by_name["chat gpt-4o"]

    agent_ctx = agent.get_span_context()
    assert root["span_id"] == format(agent_ctx.span_id, "016x")
    assert root["trace_id"] == format(agent_ctx.trace_id, "032x")
    assert root["parent_span_id"] == ""
    assert root["kind"] == "INTERNAL"
    assert not any(k.startswith("gen_ai.") for k in root["attributes"])
    for span in (streamed, tools):
        assert span["kind"] == "CLIENT"
        assert span["scope"] == SCOPE
        assert span["trace_id"] == root["trace_id"]
        assert span["parent_span_id"] == root["span_id"]
        assert span["resource"]["service.name"] == "export-test"
        assert span["status"] == "UNSET"
        assert root["start_time_unix_nano"] <= span["start_time_unix_nano"]
        assert span["end_time_unix_nano"] <= root["end_time_unix_nano"]

    s = streamed["attributes"]
    assert s["gen_ai.operation.name"] == "chat"
    assert s["gen_ai.request.model"] == "gpt-4o-mini"
    assert s["gen_ai.request.stream"] is True
    assert s["gen_ai.response.id"] == "chatcmpl-1"
    assert s["gen_ai.response.model"] == "gpt-4o-mini"
    assert s["gen_ai.response.finish_reasons"] == ["stop"]
    assert s["gen_ai.usage.input_tokens"] == 42
    assert s["gen_ai.usage.output_tokens"] == 7
    assert s["gen_ai.usage.cache_read.input_tokens"] == 0
    assert s["tokenkpi.tool_calls.count"] == 0
    assert s["tokenkpi.tools.defined_count"] == 0
    assert s["tokenkpi.context.system_tokens"] == _o200k(MESSAGES[0]["content"])
    assert s["tokenkpi.context.tool_definitions_tokens"] == 0
    # The breakdown adds up to the bill: all new (a first call), the rest is OpenAI's framing.
    content = _o200k(MESSAGES[0]["content"]) + _o200k(MESSAGES[1]["content"])
    assert (s["tokenkpi.context.resent_tokens"], s["tokenkpi.context.new_tokens"]) == (0, content)
    assert s["tokenkpi.context.unattributed_tokens"] == 42 - content
    assert s["tokenkpi.context.window"] == 128000
    assert s["tokenkpi.context.utilization"] == pytest.approx(42 / 128000, rel=1e-12)
    assert s["tokenkpi.cost.usd"] == pytest.approx(STREAM_COST, rel=1e-12)
    assert "tokenkpi.tokens.estimated" not in s

    t = tools["attributes"]
    assert "gen_ai.request.stream" not in t
    assert t["gen_ai.response.id"] == "chatcmpl-2"
    assert t["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert t["gen_ai.usage.input_tokens"] == 120
    assert t["gen_ai.usage.output_tokens"] == 21
    assert t["gen_ai.usage.cache_read.input_tokens"] == 16
    assert t["tokenkpi.tool_calls.count"] == 3
    assert t["tokenkpi.tools.defined_count"] == 2
    assert t["tokenkpi.context.tool_definitions_tokens"] == _tool_definition_tokens(TOOLS)
    assert t["tokenkpi.context.system_tokens"] == _o200k(MESSAGES[0]["content"])
    assert t["tokenkpi.context.tool_results_tokens"] == 0
    assert t["tokenkpi.context.new_tokens"] == content + _tool_definition_tokens(TOOLS)
    assert t["tokenkpi.context.unattributed_tokens"] == 120 - content - _tool_definition_tokens(TOOLS)
    assert t["tokenkpi.cost.usd"] == pytest.approx(TOOL_COST, rel=1e-12)
    assert "tokenkpi.tokens.estimated" not in t

    # the same calls as metrics, over the same transport
    usage = rx.metrics()["gen_ai.client.token.usage"]
    summary = {
        (p["attributes"]["gen_ai.request.model"], p["attributes"]["gen_ai.token.type"], p["sum"], p["count"])
        for p in usage
    }
    assert summary == {
        ("gpt-4o-mini", "input", 42.0, 1),
        ("gpt-4o-mini", "output", 7.0, 1),
        ("gpt-4o", "input", 120.0, 1),
        ("gpt-4o", "output", 21.0, 1),
    }
