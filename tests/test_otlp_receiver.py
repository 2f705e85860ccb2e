"""Self-test of the local OTLP receiver: the real SDK and real OTLP exporters talk to it."""

from __future__ import annotations

import gzip
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

try:  # repo root on sys.path (python -m pytest, tests/ as a package)
    from tests.otlp_receiver import OtlpReceiver
except ImportError:  # plain `pytest` with rootdir-less tests/ (prepend import mode)
    from otlp_receiver import OtlpReceiver  # type: ignore[no-redef]

TRANSPORTS = ["grpc", "http", "http-gzip"]
HONEYCOMB = {"x-honeycomb-team": "abc", "x-honeycomb-dataset": "ds"}
RESOURCE = Resource.create({"service.name": "rx-selftest"})


@pytest.fixture(autouse=True)
def _clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def rx() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def _span_exporter(rx: OtlpReceiver, transport: str, **kw: object) -> object:
    if transport == "grpc":
        return GrpcSpanExporter(endpoint=rx.grpc_endpoint, insecure=True, **kw)  # type: ignore[arg-type]
    gz = HttpCompression.Gzip if transport == "http-gzip" else HttpCompression.NoCompression
    return HttpSpanExporter(endpoint=rx.http_endpoint + "/v1/traces", compression=gz, **kw)  # type: ignore[arg-type]


def _metric_exporter(rx: OtlpReceiver, transport: str, **kw: object) -> object:
    if transport == "grpc":
        return GrpcMetricExporter(endpoint=rx.grpc_endpoint, insecure=True, **kw)  # type: ignore[arg-type]
    gz = HttpCompression.Gzip if transport == "http-gzip" else HttpCompression.NoCompression
    return HttpMetricExporter(endpoint=rx.http_endpoint + "/v1/metrics", compression=gz, **kw)  # type: ignore[arg-type]


def _emit_spans(exporter: object) -> None:
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
    tracer = provider.get_tracer("rx.selftest.scope")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        parent.set_attribute("gen_ai.system", "openai")
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_attributes(
                {
                    "s": "text",
                    "i": 42,
                    "f": 0.25,
                    "b": True,
                    "ls": ["a", "b"],
                    "li": [1, 2, 3],
                    "lf": [0.5, 1.5],
                    "lb": [True, False],
                }
            )
            child.add_event("receiver_test.note", {"n": 7})
            child.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()


def _emit_metrics(exporter: object) -> None:
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)  # type: ignore[arg-type]
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("rx.selftest.meter")
    counter = meter.create_counter("receiver_test.tokens", unit="{token}")
    counter.add(3, {"kind": "input"})
    counter.add(2, {"kind": "input"})
    counter.add(1.5, {"kind": "output"})
    hist = meter.create_histogram("receiver_test.cost", unit="USD")
    hist.record(0.5, {"model": "m"})
    hist.record(1.0, {"model": "m"})
    provider.shutdown()  # collects and exports once


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_spans_arrive_with_attributes_ids_and_headers(rx: OtlpReceiver, transport: str) -> None:
    _emit_spans(_span_exporter(rx, transport, headers=dict(HONEYCOMB)))
    spans = {s["name"]: s for s in rx.wait_for_spans(2)}
    parent, child = spans["parent"], spans["child"]

    assert child["attributes"] == {
        "s": "text",
        "i": 42,
        "f": 0.25,
        "b": True,
        "ls": ["a", "b"],
        "li": [1, 2, 3],
        "lf": [0.5, 1.5],
        "lb": [True, False],
    }
    assert isinstance(child["attributes"]["i"], int) and isinstance(child["attributes"]["b"], bool)
    assert parent["attributes"] == {"gen_ai.system": "openai"}
    assert len(parent["trace_id"]) == 32 and len(parent["span_id"]) == 16
    assert child["trace_id"] == parent["trace_id"]
    assert child["parent_span_id"] == parent["span_id"]
    assert parent["parent_span_id"] == ""
    assert (parent["kind"], child["kind"]) == ("SERVER", "CLIENT")
    assert (child["status"], child["status_message"]) == ("ERROR", "boom")
    assert parent["status"] == "UNSET"
    assert child["events"] == [{"name": "receiver_test.note", "attributes": {"n": 7}}]
    assert child["scope"] == "rx.selftest.scope"
    assert child["resource"]["service.name"] == "rx-selftest"
    assert child["end_time_unix_nano"] >= child["start_time_unix_nano"] > 0

    headers = rx.headers("traces")
    assert headers and all(h["x-honeycomb-team"] == "abc" for h in headers)
    assert all(h["x-honeycomb-dataset"] == "ds" for h in headers)
    assert {r.transport for r in rx.requests()} == {"grpc" if transport == "grpc" else "http"}
    if transport == "http-gzip":
        assert all(h["content-encoding"] == "gzip" for h in headers)
    elif transport == "http":
        assert all("content-encoding" not in h for h in headers)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_headers_from_env(rx: OtlpReceiver, transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=abc,x-honeycomb-dataset=ds")
    _emit_spans(_span_exporter(rx, transport))  # the exporter reads the env at construction
    rx.wait_for_spans(2)
    for h in rx.headers():
        assert h["x-honeycomb-team"] == "abc" and h["x-honeycomb-dataset"] == "ds"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metrics_arrive(rx: OtlpReceiver, transport: str) -> None:
    _emit_metrics(_metric_exporter(rx, transport, headers=dict(HONEYCOMB)))
    metrics = rx.wait_for_metrics("receiver_test.tokens", "receiver_test.cost")
    assert rx.metric_names() == {"receiver_test.tokens", "receiver_test.cost"}

    tokens = {p["attributes"]["kind"]: p for p in metrics["receiver_test.tokens"]}
    assert tokens["input"]["type"] == "sum" and tokens["input"]["unit"] == "{token}"
    assert tokens["input"]["value"] == 5 and tokens["output"]["value"] == 1.5
    assert tokens["input"]["resource"]["service.name"] == "rx-selftest"
    assert tokens["input"]["scope"] == "rx.selftest.meter"

    (cost,) = metrics["receiver_test.cost"]
    assert cost["type"] == "histogram" and cost["attributes"] == {"model": "m"}
    assert (cost["count"], cost["sum"]) == (2, 1.5)
    assert sum(cost["bucket_counts"]) == 2
    assert all(h["x-honeycomb-team"] == "abc" for h in rx.headers("metrics"))


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_http_json_body_with_hex_ids(rx: OtlpReceiver) -> None:
    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "json.scope"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "json-span",
                                "kind": 3,
                                "attributes": [{"key": "n", "value": {"intValue": "5"}}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    raw = gzip.compress(json.dumps(body).encode())
    status, reply = _post(
        rx.http_endpoint + "/v1/traces",
        raw,
        {"Content-Type": "application/json", "Content-Encoding": "gzip", "X-Custom": "Yes"},
    )
    assert status == 200 and json.loads(reply) == {}
    (span,) = rx.wait_for_spans(1)
    assert (span["trace_id"], span["span_id"], span["kind"]) == (trace_id, span_id, "CLIENT")
    assert span["attributes"] == {"n": 5} and span["scope"] == "json.scope"
    assert rx.headers()[0]["x-custom"] == "Yes"


def test_http_logs_protobuf_and_errors(rx: OtlpReceiver) -> None:
    logs = json_format.ParseDict(
        {
            "resourceLogs": [
                {"scopeLogs": [{"logRecords": [{"body": {"stringValue": "hello"}, "severityText": "INFO"}]}]}
            ]
        },
        ExportLogsServiceRequest(),
    )
    proto = {"Content-Type": "application/x-protobuf"}
    assert _post(rx.http_endpoint + "/v1/logs", logs.SerializeToString(), proto)[0] == 200
    assert rx.wait_for(lambda: rx.logs())[0]["body"] == "hello"

    assert _post(rx.http_endpoint + "/v1/nothing", b"", proto)[0] == 404
    assert _post(rx.http_endpoint + "/v1/traces", b"\xff\xff not protobuf", proto)[0] == 400
    rx.clear()
    assert rx.requests() == [] and rx.spans() == [] and rx.metrics() == {}
    ok = ExportTraceServiceRequest().SerializeToString()
    assert _post(rx.http_endpoint + "/v1/traces", ok, proto)[0] == 200
    assert rx.wait_for(lambda: rx.requests("traces")) and rx.spans() == []


def test_wait_for_times_out(rx: OtlpReceiver) -> None:
    with pytest.raises(AssertionError, match="timed out"):
        rx.wait_for_spans(1, timeout=0.2)
