"""The fast line reader: msgspec decodes OTLP/JSON straight into typed structs (``pip install
'otel-tokenkpi[fast]'``).

It reads what ``_otlp_json.read_line`` reads and returns the same records; the only difference is speed
(see docs/benchmarks.md, "Reading span files"): msgspec skips every field the report does not declare in C,
converts int64 strings to ints while decoding, and never builds the dicts of a generic JSON parse. A span's
attributes are first taken as raw JSON and decoded only when they hold a ``tokenkpi.*`` key, so the HTTP,
database and foreign GenAI spans of a fleet's file cost little more than their bytes.

Any line it does not take as it expects (protobuf-JSON's proto field names, a value of an unexpected type,
broken JSON, another signal) goes to ``_otlp_json.read_line``, which decides exactly as it always does,
with the same error messages. So both readers give the same report for every input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from ._otlp_json import (
    ANY,
    ERROR_CODES,
    FLOAT,
    ID_KEYS,
    INT,
    REMOTE_PARENT,
    STR,
    LineSpans,
    Resource,
    SpanRecord,
    make_record,
    make_resource,
    read_line,
)

__all__ = ["FastReader"]

_OURS = re.compile(rb'"tokenkpi\.')  # searched in a span's raw JSON: a cheap test before decoding it


class _Value(msgspec.Struct, frozen=True, gc=False):
    stringValue: str | None = None
    boolValue: bool | None = None
    intValue: int | None = None
    doubleValue: float | None = None
    arrayValue: msgspec.Raw = msgspec.Raw(b"")  # decoded only when read (by _python_value): rare, and costly


class _Array(msgspec.Struct, frozen=True, gc=False):
    values: list[_Value] = []


_ARRAY = msgspec.json.Decoder(_Array, strict=False)
_EMPTY = _Value()


class _KeyValue(msgspec.Struct, gc=False):
    key: str
    value: _Value = _EMPTY


class _Status(msgspec.Struct, gc=False):
    code: int | str = 0


class _Link(msgspec.Struct, gc=False):
    traceId: str = ""


class _Span(msgspec.Struct, gc=False):
    traceId: str = ""
    spanId: str = ""
    parentSpanId: str = ""
    flags: int = 0
    name: str = ""
    startTimeUnixNano: int = 0
    endTimeUnixNano: int = 0
    attributes: list[_KeyValue] = []
    status: _Status | None = None
    links: list[_Link] = []


class _Scope(msgspec.Struct, gc=False):
    spans: list[msgspec.Raw] = []  # decoded one by one, only those that mention tokenkpi.


class _ResourceAttributes(msgspec.Struct, gc=False):
    attributes: list[_KeyValue] = []


class _ResourceSpans(msgspec.Struct, gc=False):
    resource: _ResourceAttributes | None = None
    scopeSpans: list[_Scope] = []


class _Request(msgspec.Struct, gc=False):
    resourceSpans: list[_ResourceSpans] | None = None


def _python_value(value: _Value) -> Any:
    if value.stringValue is not None:
        return value.stringValue
    if value.boolValue is not None:
        return value.boolValue
    if value.intValue is not None:
        return value.intValue
    if value.doubleValue is not None:
        return value.doubleValue
    if value.arrayValue:
        return tuple(_python_value(item) for item in _ARRAY.decode(value.arrayValue).values)
    return None


def _typed(value: _Value, kind: str) -> Any:
    if kind == INT:
        if value.intValue is not None:
            return value.intValue
        number = value.doubleValue
        return int(number) if number is not None and number == number and abs(number) != float("inf") else None
    if kind == FLOAT:
        if value.doubleValue is not None:
            return value.doubleValue
        return float(value.intValue) if value.intValue is not None else None
    if kind == STR:
        return value.stringValue
    return _python_value(value)


class FastReader:
    """``read(line)``: the same as ``_otlp_json.read_line(line, wanted, by)``, faster."""

    def __init__(self, wanted: Mapping[str, str], by: str | None = None) -> None:
        self.wanted = dict(wanted)
        self.by = by
        self._ours_wanted = frozenset(key for key in wanted if key.startswith("tokenkpi."))
        self._request = msgspec.json.Decoder(_Request, strict=False)
        self._span = msgspec.json.Decoder(_Span, strict=False)
        self.fallbacks = 0  # lines handed to the standard reader

    def read(self, line: bytes) -> LineSpans | None:
        try:
            request = self._request.decode(line)
            if request.resourceSpans is not None:
                return self._spans(request)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        self.fallbacks += 1
        return read_line(line, self.wanted, self.by)

    def _spans(self, request: _Request) -> LineSpans:
        search = _OURS.search
        decode = self._span.decode
        total = 0
        spans: list[SpanRecord] = []
        for resource_spans in request.resourceSpans or ():
            resource: Resource | None = None
            for scope in resource_spans.scopeSpans:
                total += len(scope.spans)
                for raw in scope.spans:
                    if search(raw) is None:
                        continue
                    span = decode(raw)
                    attrs = self._attributes(span.attributes)
                    if attrs is None:
                        continue
                    if resource is None:
                        resource = self._resource(resource_spans)
                    status = span.status
                    remote = span.flags & REMOTE_PARENT == REMOTE_PARENT
                    if ID_KEYS[0] not in attrs and ID_KEYS[1] not in attrs and not remote:
                        spans.append(  # the common case (a model call), without make_record's checks
                            SpanRecord(
                                span.traceId,
                                span.spanId,
                                span.parentSpanId or None,
                                False,
                                span.name,
                                span.startTimeUnixNano,
                                span.endTimeUnixNano,
                                status is not None and status.code in ERROR_CODES,
                                attrs,
                                resource,
                            )
                        )
                        continue
                    spans.append(
                        make_record(
                            span.traceId,
                            span.spanId,
                            span.parentSpanId,
                            span.flags,
                            span.name,
                            span.startTimeUnixNano,
                            span.endTimeUnixNano,
                            status.code if status is not None else 0,
                            attrs,
                            resource,
                            [link.traceId for link in span.links] if "tokenkpi.outcome" in attrs else (),
                        )
                    )
        return LineSpans(total, spans)

    def _attributes(self, items: list[_KeyValue]) -> dict[str, Any] | None:
        """The wanted attributes, typed; None when no key is ``tokenkpi.*`` (the name was in a value)."""
        wanted = self.wanted.get
        attrs: dict[str, Any] = {}
        for item in items:
            kind = wanted(item.key)
            if kind is None:
                continue
            value = item.value
            found: Any
            if kind is INT:
                found = value.intValue
                if found is None:
                    found = _typed(value, INT)
            elif kind is STR:
                found = value.stringValue
            elif kind is FLOAT:
                found = value.doubleValue
                if found is None:
                    found = _typed(value, FLOAT)
            else:
                found = _python_value(value)
            if found is not None:
                attrs[item.key] = found
            else:
                attrs.pop(item.key, None)
        if self._ours_wanted.isdisjoint(attrs) and not any(item.key.startswith("tokenkpi.") for item in items):
            return None
        return attrs

    def _resource(self, resource_spans: _ResourceSpans) -> Resource:
        attrs: dict[str, Any] = {}
        if resource_spans.resource is not None:
            keys = {"service.name": STR, "service.instance.id": STR}
            if self.by is not None:
                keys[self.by] = ANY
            for item in resource_spans.resource.attributes:
                kind = keys.get(item.key)
                if kind is not None:
                    value = _typed(item.value, kind)
                    if value is not None:
                        attrs[item.key] = value
        return make_resource(attrs, self.by)
