"""Reading spans back from OTLP JSON lines: the Collector ``file`` exporter's format, and protobuf-JSON.

OTLP/JSON writes trace and span ids as hex and field names in lowerCamelCase; tools that use protobuf's
own JSON mapping write base64 ids, and some keep the proto field names (``resource_spans``). All of them
are read here, with the standard library only; ``_otlp_fast`` reads the same lines faster with msgspec
when it is installed, and falls back to this reader for any line it does not take.

Only what the report reads is kept, so a large file streams in flat memory: a span comes back only when
it carries a ``tokenkpi.*`` attribute (a model call we or the span processor enriched, a roll-up, a late
outcome); of its attributes only the ``wanted`` ones, typed as asked. A line is malformed when it is not
an OTLP/JSON trace request, or when something the report reads in it is broken (an attribute without a
string key, a non-numeric token count, a bad id or time on a roll-up): the reader raises before
returning any span, so a bad line contributes nothing. Spans the report does not read are not checked
beyond the JSON syntax.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ANY",
    "FLOAT",
    "INT",
    "STR",
    "LineSpans",
    "MalformedLine",
    "Resource",
    "SpanRecord",
    "hex_id",
    "read_line",
]

# How a wanted attribute's value is taken: INT and FLOAT accept either OTLP number type, STR only a string,
# ANY any value (arrays as tuples). A value of another type counts as absent.
INT, FLOAT, STR, ANY = "int", "float", "str", "any"

# OTLP span flags: bit 8 says whether the parent's remoteness is known, bit 9 that the parent is remote.
FLAG_HAS_IS_REMOTE = 0x100
FLAG_IS_REMOTE = 0x200
REMOTE_PARENT = FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE
ERROR_CODES = (2, "STATUS_CODE_ERROR")
# Spans whose ids the report reads (roll-ups and late outcomes): their ids are checked and normalized.
ID_KEYS = ("tokenkpi.trace.llm_calls", "tokenkpi.outcome")
SERVICE_NAME = "service.name"
SERVICE_INSTANCE = "service.instance.id"


class MalformedLine(ValueError):
    """A line that is not an OTLP/JSON ``ExportTraceServiceRequest``; the message says why."""


@dataclass(slots=True, frozen=True)
class Resource:
    """What the report reads of a span's resource: its service, the process it came from, the ``--by``
    attribute when set on the resource rather than the span."""

    service: str | None
    instance: str  # service.instance.id, else service.name, else "": nesting is read within one process
    by_value: Any = None


NO_RESOURCE = Resource(None, "")


@dataclass(slots=True)
class SpanRecord:
    trace_id: str  # lowercase hex for spans with ID_KEYS; as written otherwise (unused)
    span_id: str
    parent_span_id: str | None
    parent_remote: bool  # the parent is in another process: this span is a local root
    name: str
    start: int
    end: int
    error: bool
    attributes: dict[str, Any]
    resource: Resource = NO_RESOURCE
    links: tuple[str, ...] = ()  # linked trace ids (hex), read on late-outcome spans only


@dataclass(slots=True)
class LineSpans:
    """One line read: how many spans it held, and the ones the report reads."""

    total: int
    spans: list[SpanRecord]


def hex_id(value: Any, size: int, what: str) -> str:
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


def _field(obj: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    value = obj.get(camel)
    return obj.get(snake, default) if value is None else value


def _list(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _field(obj, camel, snake, [])
    if not isinstance(value, list):
        raise MalformedLine(f"{where}.{camel} is not a list")
    return value


def _special_float(text: Any) -> float:
    try:
        return float(text)  # "NaN", "Infinity", "-Infinity" in proto3 JSON
    except (TypeError, ValueError):
        raise MalformedLine(f"doubleValue {text!r} is not a number") from None


def _integer(text: Any) -> int:
    if isinstance(text, bool):
        raise MalformedLine(f"intValue {text!r} is not an integer")
    try:
        return int(text)
    except (TypeError, ValueError, OverflowError):
        raise MalformedLine(f"intValue {text!r} is not an integer") from None


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as a Python value (int64 arrives as a decimal string, doubles may be "NaN")."""
    if not isinstance(value, dict):
        raise MalformedLine("an attribute value is not an object")
    for camel, snake in (("stringValue", "string_value"), ("boolValue", "bool_value")):
        if camel in value or snake in value:
            return _field(value, camel, snake)
    if "intValue" in value or "int_value" in value:
        return _integer(_field(value, "intValue", "int_value"))
    if "doubleValue" in value or "double_value" in value:
        number = _field(value, "doubleValue", "double_value")
        return float(number) if isinstance(number, (int, float)) else _special_float(number)
    if "arrayValue" in value or "array_value" in value:
        array = _field(value, "arrayValue", "array_value") or {}
        if not isinstance(array, dict) or not isinstance(array.get("values", []), list):
            raise MalformedLine("an arrayValue has no values list")
        return tuple(any_value(item) for item in array.get("values", ()))
    return None  # kvlist, bytes, empty: nothing the report reads


def typed(value: Any, kind: str) -> Any:
    """``value`` (already a Python value) as ``kind``; None when it is of another type."""
    if kind == ANY:
        return value
    if kind == STR:
        return value if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if kind == FLOAT:
        return float(value)
    return int(value) if value == value and abs(value) != float("inf") else None


def _attributes(items: Any, wanted: Mapping[str, str], only_ours: bool = True) -> tuple[dict[str, Any], bool]:
    """The wanted attributes, typed, and whether any key is ``tokenkpi.*``. With ``only_ours`` (spans), a
    span without such a key returns nothing and is not checked; a broken attribute of one with such a key
    raises. For a repeated key the last one counts."""
    if not isinstance(items, list):
        return {}, False
    try:  # the common case, at C speed: every item an object with a string key
        found = {item["key"]: item for item in items}
        keys = "\n".join(found)
    except (TypeError, KeyError):
        return _attributes_one_by_one(items, wanted)
    ours = keys.startswith("tokenkpi.") or "\ntokenkpi." in keys
    attrs: dict[str, Any] = {}
    if only_ours and not ours:
        return attrs, False
    for key in found.keys() & wanted.keys():
        value = typed(any_value(found[key].get("value", {})), wanted[key])
        if value is not None:
            attrs[key] = value
    return attrs, ours


def _attributes_one_by_one(items: list[Any], wanted: Mapping[str, str]) -> tuple[dict[str, Any], bool]:
    attrs: dict[str, Any] = {}
    ours = False
    problem = None
    for item in items:
        try:
            key = item["key"]
            if key.startswith("tokenkpi."):
                ours = True
        except (TypeError, KeyError, AttributeError):
            problem = "an attribute has no string key"
            continue
        kind = wanted.get(key)
        if kind is not None:
            try:
                value = typed(any_value(item.get("value", {})), kind)
            except MalformedLine as exc:
                problem = str(exc)
                continue
            if value is None:
                attrs.pop(key, None)
            else:
                attrs[key] = value
    if ours and problem is not None:
        raise MalformedLine(problem)
    return attrs, ours


def _resource(resource_spans: dict[str, Any], by: str | None) -> Resource:
    resource = resource_spans.get("resource")
    if not isinstance(resource, dict):
        return NO_RESOURCE
    wanted = {SERVICE_NAME: STR, SERVICE_INSTANCE: STR}
    if by is not None:
        wanted[by] = ANY
    try:
        attrs, _ = _attributes(resource.get("attributes"), wanted, only_ours=False)
    except MalformedLine:  # a resource with tokenkpi.* keys and a broken attribute: not ours to judge
        attrs = {}
    return make_resource(attrs, by)


def make_resource(attrs: dict[str, Any], by: str | None) -> Resource:
    service = attrs.get(SERVICE_NAME)
    instance = attrs.get(SERVICE_INSTANCE) or service or ""
    return Resource(service, instance, attrs.get(by) if by is not None else None)


def make_record(
    trace_id: Any,
    span_id: Any,
    parent: Any,
    flags: Any,
    name: Any,
    start: Any,
    end: Any,
    code: Any,
    attrs: dict[str, Any],
    resource: Resource,
    links: Any,
) -> SpanRecord:
    """A read span, from fields either reader took out of the JSON; ids checked where the report reads them."""
    if type(start) is not int or type(end) is not int:
        try:
            start, end = int(start or 0), int(end or 0)
        except (TypeError, ValueError):
            raise MalformedLine("a span time is not an integer") from None
    linked: tuple[str, ...] = ()
    if ID_KEYS[0] in attrs or ID_KEYS[1] in attrs:
        trace_id = hex_id(trace_id, 16, "traceId")
        span_id = hex_id(span_id, 8, "spanId")
        parent = hex_id(parent, 8, "parentSpanId") if parent else None
        if links:
            linked = tuple(hex_id(trace, 16, "links.traceId") for trace in links)
    else:
        parent = parent or None
    if type(flags) is not int:
        try:
            flags = int(flags or 0)
        except (TypeError, ValueError):
            flags = 0
    return SpanRecord(
        trace_id,
        span_id,
        parent,
        flags & REMOTE_PARENT == REMOTE_PARENT,
        name if type(name) is str else str(name or ""),
        start,
        end,
        code in ERROR_CODES,
        attrs,
        resource,
        linked,
    )


def _span(span: Any, wanted: Mapping[str, str], resource: Resource) -> SpanRecord | None:
    if not isinstance(span, dict):
        return None  # not a span the report can read; not checked further, as with any span it does not read
    attrs, ours = _attributes(span.get("attributes", []), wanted)
    if not ours:
        return None
    status = span.get("status") or {}
    links: list[Any] = []
    if "tokenkpi.outcome" in attrs:
        for link in _list(span, "links", "links", "span"):
            if not isinstance(link, dict):
                raise MalformedLine("a link is not an object")
            links.append(_field(link, "traceId", "trace_id"))
    return make_record(
        _field(span, "traceId", "trace_id"),
        _field(span, "spanId", "span_id"),
        _field(span, "parentSpanId", "parent_span_id"),
        span.get("flags", 0),
        span.get("name", ""),
        _field(span, "startTimeUnixNano", "start_time_unix_nano", 0),
        _field(span, "endTimeUnixNano", "end_time_unix_nano", 0),
        status.get("code", 0) if isinstance(status, dict) else 0,
        attrs,
        resource,
        links,
    )


def _trace_request(line: bytes | str) -> dict[str, Any] | None:
    """The line's trace request; None for a blank line or another signal's; MalformedLine otherwise."""
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
    return request


def read_line(line: bytes | str | memoryview, wanted: Mapping[str, str], by: str | None = None) -> LineSpans | None:
    """The spans of one line that the report reads; ``None`` for a blank line or another signal's line.

    ``wanted`` maps attribute names to INT/FLOAT/STR/ANY; ``by`` also reads that attribute from resources.
    Raises :class:`MalformedLine` for anything else that is not a trace request, before returning any span.
    """
    request = _trace_request(line.tobytes() if isinstance(line, memoryview) else line)
    if request is None:
        return None
    total = 0
    spans: list[SpanRecord] = []
    for resource_spans in _list(request, "resourceSpans", "resource_spans", "request"):
        if not isinstance(resource_spans, dict):
            raise MalformedLine("resourceSpans holds a non-object")
        resource: Resource | None = None
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans", "resourceSpans"):
            if not isinstance(scope_spans, dict):
                raise MalformedLine("scopeSpans holds a non-object")
            items = _list(scope_spans, "spans", "spans", "scopeSpans")
            total += len(items)
            for item in items:
                if resource is None:
                    resource = _resource(resource_spans, by)
                record = _span(item, wanted, resource)
                if record is not None:
                    spans.append(record)
    return LineSpans(total, spans)
