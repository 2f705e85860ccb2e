"""OTLP JSON lines on disk: spans for ``otel-tokenkpi report`` (and anything else) without a Collector.

Each ``export()`` appends one line: an ``ExportTraceServiceRequest`` in the OTLP/JSON encoding, exactly what
the OpenTelemetry Collector's ``file`` exporter writes. So a file from this exporter and a file from a
Collector are interchangeable: ``otel-tokenkpi report`` reads both, and the Collector's ``otlpjsonfile``
receiver can replay ours. The OTLP/JSON rules (opentelemetry-proto ``docs/specification.md``, "JSON Protobuf
Encoding") differ from protobuf's own JSON mapping in one place, which is why this is more than a
``MessageToJson`` call: trace and span ids are hex strings, not base64. The rest is the proto3 JSON mapping
with lowerCamelCase names, int64 values as decimal strings and enums as integers.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Sequence
from typing import IO, Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._safety import logger

__all__ = ["OTLPJsonLinesSpanExporter", "hex_ids", "otlp_json_line"]

# The bytes fields of a span (and of its links) that OTLP/JSON writes as hex.
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def hex_ids(request: dict[str, Any]) -> dict[str, Any]:
    """Rewrite, in place, the base64 ids that protobuf's JSON mapping produced as OTLP/JSON's hex ids."""
    for resource_spans in request.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                for item in (span, *span.get("links", ())):
                    for key in _ID_FIELDS:
                        if key in item:
                            item[key] = _to_hex(item[key])
    return request


def otlp_json_line(spans: Sequence[ReadableSpan]) -> str:
    """The spans as one OTLP/JSON ``ExportTraceServiceRequest``, without the newline."""
    message = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    return json.dumps(hex_ids(message), separators=(",", ":"), ensure_ascii=False)


class OTLPJsonLinesSpanExporter(SpanExporter):
    """Append spans to a file as OTLP JSON lines (the Collector ``file`` exporter's format).

    ``OTLPJsonLinesSpanExporter("spans.jsonl")`` appends to that path (created if missing); pass ``file=``
    an open text stream to write there instead (it is flushed, never closed). Each batch is one line,
    written whole under a lock, so exporters in several threads never interleave. Use it behind a
    ``BatchSpanProcessor`` (wrapped in ``TokenKPISpanProcessor`` for root roll-ups) like any exporter.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, file: IO[str] | None = None) -> None:
        if (path is None) == (file is None):
            raise TypeError("OTLPJsonLinesSpanExporter needs exactly one of a path or file=")
        self._lock = threading.Lock()
        self._owned = file is None
        # Opened now, so a bad path fails at construction rather than in a background export.
        self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path is not None else file  # noqa: SIM115
        self.path = os.fspath(path) if path is not None else None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            line = otlp_json_line(spans) + "\n"
            with self._lock:
                if self._file is None:
                    return SpanExportResult.FAILURE
                self._file.write(line)
                self._file.flush()
        except Exception as exc:  # noqa: BLE001 - an exporter reports failure, it never raises into the SDK
            logger.warning("otel-tokenkpi: could not write spans to %s: %r", self.path or "the file", exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is flushed as it is written

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None and self._owned:
                self._file.close()
            self._file = None
