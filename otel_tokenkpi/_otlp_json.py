"""Reading spans back from OTLP JSON lines: the Collector ``file`` exporter's format, and protobuf-JSON.

OTLP/JSON writes trace and span ids as hex and field names in lowerCamelCase; tools that use protobuf's
own JSON mapping write base64 ids, and some keep the proto field names (``resource_spans``). All of them
are read here. Only what the report needs is kept of each span, so a large file streams in flat memory.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["MalformedLine", "SpanRecord", "spans_of_line"]


class MalformedLine(ValueError):
    """A line that is not an OTLP/JSON ``ExportTraceServiceRequest``; the message says why."""


@dataclass(slots=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start: int
    end: int
    error: bool
    attributes: dict[str, Any]


def _field(obj: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    value = obj.get(camel)
    return obj.get(snake, default) if value is None else value


def _list(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _field(obj, camel, snake, [])
    if not isinstance(value, list):
        raise MalformedLine(f"{where}.{camel} is not a list")
    return value


def _hex_id(value: Any, size: int, what: str) -> str:
    """An id as lowercase hex, from OTLP/JSON hex or protobuf-JSON base64."""
    if not isinstance(value, str):
        raise MalformedLine(f"{what} is not a string")
    if len(value) == 2 * size:
        try:
            bytes.fromhex(value)
            return value.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise MalformedLine(f"{what} {value!r} is neither {2 * size} hex digits nor base64 of {size} bytes")
    return raw.hex()


def _any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as a Python value (int64 arrives as a decimal string, doubles may be "NaN")."""
    if not isinstance(value, dict):
        raise MalformedLine("an attribute value is not an object")
    for camel, snake in (("stringValue", "string_value"), ("boolValue", "bool_value")):
        if camel in value or snake in value:
            return _field(value, camel, snake)
    if "intValue" in value or "int_value" in value:
        return int(_field(value, "intValue", "int_value"))
    if "doubleValue" in value or "double_value" in value:
        number = _field(value, "doubleValue", "double_value")
        return float(number) if isinstance(number, (int, float)) else _special_float(number)
    if "arrayValue" in value or "array_value" in value:
        array = _field(value, "arrayValue", "array_value") or {}
        return tuple(_any_value(item) for item in array.get("values", ()))
    return None  # kvlist, bytes, empty: nothing the report reads


def _special_float(text: Any) -> float:
    try:
        return float(text)  # "NaN", "Infinity", "-Infinity" in proto3 JSON
    except (TypeError, ValueError):
        raise MalformedLine(f"doubleValue {text!r} is not a number") from None


def _attributes(items: list[Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise MalformedLine("an attribute has no string key")
        attrs[item["key"]] = _any_value(item.get("value", {}))
    return attrs


def _span(span: Any) -> SpanRecord:
    if not isinstance(span, dict):
        raise MalformedLine("a span is not an object")
    parent = _field(span, "parentSpanId", "parent_span_id")
    status = _field(span, "status", "status", {}) or {}
    code = status.get("code", 0) if isinstance(status, dict) else 0
    try:
        start = int(_field(span, "startTimeUnixNano", "start_time_unix_nano", 0))
        end = int(_field(span, "endTimeUnixNano", "end_time_unix_nano", 0))
    except (TypeError, ValueError):
        raise MalformedLine("a span time is not an integer") from None
    return SpanRecord(
        trace_id=_hex_id(_field(span, "traceId", "trace_id"), 16, "traceId"),
        span_id=_hex_id(_field(span, "spanId", "span_id"), 8, "spanId"),
        parent_span_id=_hex_id(parent, 8, "parentSpanId") if parent else None,
        name=str(span.get("name", "")),
        start=start,
        end=end,
        error=code in (2, "STATUS_CODE_ERROR"),
        attributes=_attributes(_list(span, "attributes", "attributes", "span")),
    )


def spans_of_line(line: bytes | str) -> list[SpanRecord] | None:
    """The spans of one line; ``None`` for a blank line or another signal's (metrics, logs) line.

    Raises :class:`MalformedLine` for anything else that is not a trace request, before returning any
    span, so a bad line contributes nothing.
    """
    if not line.strip():
        return None
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedLine(f"not JSON ({exc})") from None
    if not isinstance(request, dict):
        raise MalformedLine("not a JSON object")
    if "resourceSpans" not in request and "resource_spans" not in request:
        if any(key in request for key in ("resourceMetrics", "resourceLogs", "resource_metrics", "resource_logs")):
            return None
        raise MalformedLine("no resourceSpans: not an OTLP/JSON trace request")
    spans: list[SpanRecord] = []
    for resource_spans in _list(request, "resourceSpans", "resource_spans", "request"):
        if not isinstance(resource_spans, dict):
            raise MalformedLine("resourceSpans holds a non-object")
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans", "resourceSpans"):
            if not isinstance(scope_spans, dict):
                raise MalformedLine("scopeSpans holds a non-object")
            spans.extend(_span(span) for span in _list(scope_spans, "spans", "spans", "scopeSpans"))
    return spans
