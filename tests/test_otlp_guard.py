"""The OTLP export guard with the SDK's real OTLP exporters (gRPC and HTTP), a real receiver and a closed port:
nothing listening means no export attempt (so no retries), one line per outage, and a healthy endpoint gets
every batch as before."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator, Sequence

import pytest
from _telemetry import check_in_forked_child
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from otlp_receiver import OtlpReceiver

from otel_tokenkpi import otlp_guard
from otel_tokenkpi.otlp_guard import ExportGuard, GuardedMetricExporter, GuardedSpanExporter


class Counting(SpanExporter):
    """Passes every batch to the real exporter and counts the batches that reached it."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner, self.calls = inner, 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        return self.inner.export(spans)

    def shutdown(self) -> None:
        self.inner.shutdown()


@pytest.fixture(autouse=True)
def fresh_guard_state() -> Iterator[None]:
    otlp_guard._reset_for_tests()
    yield
    otlp_guard._reset_for_tests()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused


def span_exporter(protocol: str, endpoint: str) -> SpanExporter:
    if protocol == "grpc":
        return GrpcSpanExporter(endpoint=endpoint, insecure=True, timeout=2)
    return HttpSpanExporter(endpoint=endpoint + "/v1/traces", timeout=2)


def one_span(exporter: SpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("work").end()
    provider.shutdown()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_nothing_listening_means_no_export_attempt_and_one_line(protocol, closed_port, caplog):
    endpoint = f"http://127.0.0.1:{closed_port}"
    lines: list[str] = []
    guard = ExportGuard(endpoint, report=lines.append)
    counting = Counting(span_exporter(protocol, endpoint))
    exporter = GuardedSpanExporter(counting, guard)
    with caplog.at_level(logging.DEBUG):
        assert exporter.export([]) is SpanExportResult.FAILURE
        assert exporter.export([]) is SpanExportResult.FAILURE
    exporter.shutdown()
    assert counting.calls == 0  # the SDK exporter never ran, so it never retried
    assert lines == [
        f"otel-tokenkpi: nothing answers at the OTLP endpoint 127.0.0.1:{closed_port} (connection refused); "
        "telemetry for it is dropped until it does. Start a collector there or set OTEL_EXPORTER_OTLP_ENDPOINT "
        "(OTEL_TRACES_EXPORTER=none / OTEL_METRICS_EXPORTER=none: no export)"
    ]
    assert (guard.failures, guard.last_error) == (2, "connection refused")
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]


def test_traces_and_metrics_to_one_address_share_one_line(closed_port, caplog):
    endpoint = f"http://127.0.0.1:{closed_port}"
    spans = GuardedSpanExporter(span_exporter("grpc", endpoint), ExportGuard(endpoint))
    metrics = GuardedMetricExporter(GrpcMetricExporter(endpoint=endpoint, insecure=True), ExportGuard(endpoint))
    meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(metrics)])
    meter_provider.get_meter("m").create_counter("calls").add(1)
    with caplog.at_level(logging.WARNING):
        one_span(spans)
        meter_provider.shutdown()  # its last export, as at process exit
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"otel-tokenkpi: nothing answers at the OTLP endpoint 127.0.0.1:{closed_port} (connection refused)"
    )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_listening_collector_gets_every_batch(protocol):
    with OtlpReceiver() as receiver:
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
        lines: list[str] = []
        guard = ExportGuard(endpoint, report=lines.append)
        one_span(GuardedSpanExporter(span_exporter(protocol, endpoint), guard))
        if protocol == "grpc":
            inner = GrpcMetricExporter(endpoint=endpoint, insecure=True)
        else:
            inner = HttpMetricExporter(endpoint=endpoint + "/v1/metrics")
        metrics = GuardedMetricExporter(inner, ExportGuard(endpoint, report=lines.append))
        meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(metrics)])
        meter_provider.get_meter("m").create_counter("calls").add(3)
        meter_provider.shutdown()
        assert [s["name"] for s in receiver.wait_for_spans(1)] == ["work"]
        (point,) = receiver.wait_for_metrics("calls")["calls"]
        assert point["value"] == 3
    assert lines == [] and guard.failures == 0


def test_metric_temporality_and_aggregation_are_the_inner_exporters():
    from opentelemetry.sdk.metrics import Counter

    inner = GrpcMetricExporter(endpoint="http://127.0.0.1:4317", insecure=True)
    inner._preferred_temporality[Counter] = AggregationTemporality.DELTA
    guarded = GuardedMetricExporter(inner, ExportGuard("http://127.0.0.1:4317"))
    assert guarded._preferred_temporality[Counter] is AggregationTemporality.DELTA
    assert guarded._preferred_aggregation == inner._preferred_aggregation
    inner.shutdown()


def test_a_collector_that_went_away_is_probed_again_at_exit():
    with OtlpReceiver() as receiver:
        lines: list[str] = []
        guard = ExportGuard(receiver.http_endpoint, report=lines.append)
        counting = Counting(span_exporter("http/protobuf", receiver.http_endpoint))
        exporter = GuardedSpanExporter(counting, guard)
        assert exporter.export([]) is SpanExportResult.SUCCESS  # it answered: no probe before the next one
    otlp_guard.exiting()  # the receiver is gone; at exit every export probes first
    assert exporter.export([]) is SpanExportResult.FAILURE
    assert counting.calls == 1 and guard.last_error == "connection refused"
    assert len(lines) == 1
    exporter.shutdown()


@pytest.mark.parametrize(
    ("endpoint", "address"),
    [
        ("localhost:4317", ("localhost", 4317)),  # gRPC's host:port form
        ("http://collector:4318/v1/traces", ("collector", 4318)),
        ("https://api.honeycomb.io", ("api.honeycomb.io", 443)),
        ("http://[::1]:4317", ("::1", 4317)),
        ("unix:///run/otel.sock", None),  # nothing to probe
        ("http://collector:notaport", None),
    ],
)
def test_endpoint_addresses(endpoint, address):
    assert otlp_guard.address(endpoint) == address


def test_behind_a_proxy_there_is_no_probe(monkeypatch):
    for name in ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert not otlp_guard._behind_proxy("collector")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert otlp_guard._behind_proxy("collector")
    monkeypatch.setenv("NO_PROXY", "collector")
    assert not otlp_guard._behind_proxy("collector")


def test_the_endpoint_follows_the_standard_environment(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert otlp_guard.default_endpoint("traces", "grpc") == "http://localhost:4317"
    assert otlp_guard.default_endpoint("traces", "http/protobuf") == "http://localhost:4318"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    assert otlp_guard.default_endpoint("metrics", "grpc") == "http://collector:4317"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/v1/traces")
    assert otlp_guard.default_endpoint("traces", "http/protobuf") == "http://traces:4318/v1/traces"


def test_a_fork_while_the_guard_is_busy_leaves_the_child_able_to_export(closed_port):
    endpoint = f"http://127.0.0.1:{closed_port}"
    lines: list[str] = []
    exporter = GuardedSpanExporter(span_exporter("http/protobuf", endpoint), ExportGuard(endpoint, lines.append))
    with otlp_guard._lock:  # as if another thread were recording a probe at the moment of the fork
        check_in_forked_child(lambda: {"exported": exporter.export([]) is SpanExportResult.FAILURE})
    assert lines == []  # the child's line was the child's
    exporter.shutdown()
