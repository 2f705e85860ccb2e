"""OTLPJsonLinesSpanExporter writes the Collector file exporter's format: OTLP/JSON, one request a line."""

from __future__ import annotations

import base64
import io
import json
import re
import threading

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_tokenkpi.jsonl_exporter import OTLPJsonLinesSpanExporter

HEX_TRACE = re.compile(r"^[0-9a-f]{32}$")
HEX_SPAN = re.compile(r"^[0-9a-f]{16}$")


def make_spans():
    """Parent, child (with a link, an event, an error status) and every attribute value type."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test.scope", "1.2.3")
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        link = Link(root.get_span_context(), {"why": "retry"})
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT, links=[link]) as child:
            child.set_attributes(
                {
                    "s": "text é",
                    "b": True,
                    "i": 2**62,
                    "f": 0.25,
                    "sa": ["x", "y"],
                    "ia": [1, 2],
                    "fa": [1.5],
                    "ba": [False],
                }
            )
            child.add_event("retry", {"attempt": 2})
            child.set_status(Status(StatusCode.ERROR, "boom"))
    return memory.get_finished_spans()


def unhex(node):
    """Reverse the OTLP/JSON id fix-up, so protobuf's own JSON parser reads the line."""
    for resource_spans in node["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for item in (span, *span.get("links", ())):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in item:
                            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()
    return node


def test_a_line_parses_back_to_exactly_the_exported_spans(tmp_path):
    spans = make_spans()
    path = tmp_path / "spans.jsonl"
    exporter = OTLPJsonLinesSpanExporter(path)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    (line,) = path.read_text(encoding="utf-8").splitlines()
    parsed = json_format.ParseDict(unhex(json.loads(line)), ExportTraceServiceRequest())
    assert parsed == encode_spans(spans)
    assert len(parsed.resource_spans[0].scope_spans[0].spans) == 2


def test_the_line_follows_the_otlp_json_rules(tmp_path):
    spans = make_spans()
    path = tmp_path / "spans.jsonl"
    exporter = OTLPJsonLinesSpanExporter(path)
    exporter.export(spans)
    exporter.shutdown()
    request = json.loads(path.read_text(encoding="utf-8"))
    (scope_spans,) = request["resourceSpans"][0]["scopeSpans"]
    assert scope_spans["scope"] == {"name": "test.scope", "version": "1.2.3"}
    child, root = scope_spans["spans"]
    by_name = {child["name"]: child, root["name"]: root}
    child, root = by_name["child"], by_name["root"]
    # Ids are hex, not protobuf-JSON's base64, and they are the SDK's ids.
    assert HEX_TRACE.match(child["traceId"]) and HEX_SPAN.match(child["spanId"])
    assert child["traceId"] == f"{spans[0].context.trace_id:032x}"
    assert child["parentSpanId"] == root["spanId"] == f"{spans[1].context.span_id:016x}"
    assert child["links"][0]["spanId"] == root["spanId"] and HEX_TRACE.match(child["links"][0]["traceId"])
    assert "parentSpanId" not in root
    # Enums are integers; int64 values are decimal strings; names are lowerCamelCase.
    assert (child["kind"], root["kind"]) == (3, 2)
    assert child["status"] == {"code": 2, "message": "boom"}
    assert child["startTimeUnixNano"] == str(spans[0].start_time)
    attrs = {a["key"]: a["value"] for a in child["attributes"]}
    assert attrs["i"] == {"intValue": str(2**62)}
    assert attrs["s"] == {"stringValue": "text é"}
    assert attrs["f"] == {"doubleValue": 0.25}
    assert attrs["b"] == {"boolValue": True}
    assert attrs["ia"] == {"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "2"}]}}
    assert child["events"][0]["attributes"] == [{"key": "attempt", "value": {"intValue": "2"}}]
    assert "resource_spans" not in request and "scope_spans" not in request["resourceSpans"][0]


def test_appends_one_whole_line_per_export_across_threads(tmp_path):
    spans = make_spans()
    path = tmp_path / "spans.jsonl"
    path.write_text("", encoding="utf-8")
    exporter = OTLPJsonLinesSpanExporter(path)

    def export_many():
        for _ in range(40):
            assert exporter.export(spans) == SpanExportResult.SUCCESS

    threads = [threading.Thread(target=export_many) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    exporter.shutdown()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 240
    assert all(len(json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]) == 2 for line in lines)
    # A second exporter on the same path appends rather than truncating.
    again = OTLPJsonLinesSpanExporter(str(path))
    again.export(spans[:1])
    again.shutdown()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 241


def test_writes_to_a_stream_it_does_not_own_and_fails_cleanly_after_shutdown():
    stream = io.StringIO()
    exporter = OTLPJsonLinesSpanExporter(file=stream)
    assert exporter.export(make_spans()) == SpanExportResult.SUCCESS
    assert exporter.export([]) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert not stream.closed and stream.getvalue().count("\n") == 1
    assert exporter.export(make_spans()) == SpanExportResult.FAILURE
    assert exporter.force_flush() is True


def test_needs_exactly_one_destination_and_fails_at_construction_on_a_bad_path(tmp_path):
    with pytest.raises(TypeError, match="exactly one"):
        OTLPJsonLinesSpanExporter()
    with pytest.raises(TypeError, match="exactly one"):
        OTLPJsonLinesSpanExporter(tmp_path / "a", file=io.StringIO())
    with pytest.raises(OSError):
        OTLPJsonLinesSpanExporter(tmp_path / "missing-dir" / "spans.jsonl")


def test_the_exporter_is_public_and_imported_only_when_asked_for():
    import subprocess
    import sys

    code = (
        "import sys, otel_tokenkpi\n"
        "assert 'otel_tokenkpi.jsonl_exporter' not in sys.modules\n"
        "from otel_tokenkpi import OTLPJsonLinesSpanExporter\n"
        "print(OTLPJsonLinesSpanExporter.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "otel_tokenkpi.jsonl_exporter"
