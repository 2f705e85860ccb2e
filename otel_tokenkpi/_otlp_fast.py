"""The fast line reader: msgspec decodes OTLP/JSON straight into typed structs (``pip install
'otel-tokenkpi[fast]'``).

It reads what ``_otlp_json.read_line`` reads and returns the same records; the only difference is speed
(see docs/benchmarks.md, "Reading span files"): msgspec skips every field the report does not declare in C,
converts int64 strings to ints while decoding, and never builds the dicts of a generic JSON parse. The
Collector writes one instrumentation scope's spans together, so a scope's spans are first taken as raw
JSON and searched for ``"tokenkpi.``: the HTTP, database and foreign GenAI scopes of a fleet's file, which
never mention it, are only counted (msgspec skips their bytes in C); the others are decoded in one call.

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

_OURS = re.compile(rb'"tokenkpi\.')  # searched in a scope's raw JSON: a cheap test before decoding it


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


class _InstrumentationScope(msgspec.Struct, gc=False):
    name: str = ""


class _Scope(msgspec.Struct, gc=False):
    scope: _InstrumentationScope | None = None
    spans: msgspec.Raw = msgspec.Raw(b"")  # searched whole first: only counted when it never says tokenkpi.


class _Uncounted(msgspec.Struct, gc=False):
    """A span that is only counted: msgspec skips all of it, in C."""


_COUNT = msgspec.json.Decoder(list[_Uncounted])
_SPANS = msgspec.json.Decoder(list[_Span], strict=False)
_RAW_SPANS = msgspec.json.Decoder(list[msgspec.Raw])
_SPAN = msgspec.json.Decoder(_Span, strict=False)


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
        self.fallbacks = 0  # lines handed to the standard reader
        # Scopes whose spans were mostly not ours last time (an HTTP server's: roll-ups on its roots only):
        # their spans are searched one by one and only the ones that mention tokenkpi. decoded, instead of
        # decoding the whole scope in one call (faster when most are ours, like a model client's).
        self._sparse_scopes: set[str] = set()

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
        total = 0
        spans: list[SpanRecord] = []
        for resource_spans in request.resourceSpans or ():
            resource: Resource | None = None
            for scope in resource_spans.scopeSpans:
                raw = scope.spans
                if not raw:
                    continue
                if _OURS.search(raw) is None:
                    total += len(_COUNT.decode(raw))
                    continue
                name = scope.scope.name if scope.scope is not None else ""
                decoded, count = self._decode_scope(raw, name in self._sparse_scopes)
                total += count
                ours = 0
                for span in decoded:
                    attrs = self._attributes(span.attributes)
                    if attrs is None:
                        continue
                    if resource is None:
                        resource = self._resource(resource_spans)
                    spans.append(self._record(span, attrs, resource))
                    ours += 1
                if 2 * ours < count:
                    self._sparse_scopes.add(name)
                else:
                    self._sparse_scopes.discard(name)
        return LineSpans(total, spans)

    @staticmethod
    def _decode_scope(raw: msgspec.Raw, sparse: bool) -> tuple[list[_Span], int]:
        """(the scope's spans that may be ours, decoded; how many spans it holds)."""
        if not sparse:
            decoded = _SPANS.decode(raw)
            return decoded, len(decoded)
        raws = _RAW_SPANS.decode(raw)
        search = _OURS.search
        return [_SPAN.decode(span) for span in raws if search(span) is not None], len(raws)

    @staticmethod
    def _record(span: _Span, attrs: dict[str, Any], resource: Resource) -> SpanRecord:
        status = span.status
        if ID_KEYS[0] not in attrs and ID_KEYS[1] not in attrs and span.flags & REMOTE_PARENT != REMOTE_PARENT:
            return SpanRecord(  # the common case (a model call), without make_record's checks
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
        return make_record(
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
