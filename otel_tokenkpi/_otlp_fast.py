"""The fast line reader: msgspec decodes OTLP/JSON straight into typed structs (``pip install
'otel-tokenkpi[fast]'``).

It reads what ``_otlp_json.read_line`` reads and returns the same records; the only difference is speed
(see docs/benchmarks.md, "Reading span files"): msgspec skips every field the report does not declare in C,
converts int64 strings to ints while decoding, and never builds the dicts of a generic JSON parse. The
Collector writes one instrumentation scope's spans together, so a scope's spans are first taken as raw
JSON and searched for ``tokenkpi.``: the HTTP, database and foreign GenAI scopes of a fleet's file, which
never mention it, are only counted (msgspec skips their bytes in C); the others are decoded in one call,
each attribute as a struct tagged by its key (:class:`_KeyUnion`), so the ones the report does not read
cost a tag lookup and no value.

Any line it does not take as it expects (protobuf-JSON's proto field names, a value of an unexpected type,
broken JSON, another signal) goes to ``_otlp_json.read_line``, which decides exactly as it always does,
with the same error messages. So both readers give the same report for every input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Union

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
    typed,
)

__all__ = ["FastReader"]

# Searched in a scope's raw JSON: a cheap test before decoding it. Without the key's opening quote, which is
# JSON's commonest byte, the search runs a third faster; a value that mentions tokenkpi. only costs a decode.
_OURS = re.compile(rb"tokenkpi\.")


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
    """``value`` as ``kind``: what the standard reader makes of it, with its precedence (string, bool, int,
    double, array) and its checks (a malformed array raises, so the line goes to that reader)."""
    return typed(_python_value(value), kind)


class _Attribute(msgspec.Struct, gc=False, tag_field="key"):
    """One attribute of a span decoded by :class:`_KeyUnion`: a subclass per key, tagged by the key."""

    entry: ClassVar[tuple[str, str] | None] = None  # (key, kind) when the report reads it


class _Number(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """An INT or FLOAT key's value, as valid OTLP holds it. Any other field fails the decode, so the scope
    goes the plain way (``_Value``), which reads it as the standard reader does; the class variables let
    ``_typed`` read this like a ``_Value``."""

    intValue: int | None = None
    doubleValue: float | None = None
    stringValue: ClassVar[None] = None
    boolValue: ClassVar[None] = None
    arrayValue: ClassVar[bytes] = b""


class _String(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """A STR key's value, as valid OTLP holds it (see :class:`_Number`)."""

    stringValue: str | None = None
    boolValue: ClassVar[None] = None
    intValue: ClassVar[None] = None
    doubleValue: ClassVar[None] = None
    arrayValue: ClassVar[bytes] = b""


# What a read key's value decodes into: fewer fields to fill than _Value (2% of a fleet file's report).
_VALUES: dict[str, type[Any]] = {INT: _Number, FLOAT: _Number, STR: _String, ANY: _Value}


def _tagged_span_type(attribute: Any) -> Any:
    """``_Span`` with ``attributes: list[attribute]``."""
    fields = []
    for field in msgspec.structs.fields(_Span):
        default = field.default
        if default is msgspec.NODEFAULT:
            default = msgspec.field(default_factory=field.default_factory)
        fields.append((field.name, list[attribute] if field.name == "attributes" else field.type, default))
    return msgspec.defstruct("_TaggedSpan", fields, gc=False)


class _KeyUnion:
    """Decodes spans with each attribute as a struct tagged by its key: the ones the report does not read
    are skipped in C, value and all, and the ones it reads come with their (key, kind) on their class, so
    no key string is built or hashed (a model call decodes in about 70% of the time; docs/benchmarks.md).

    msgspec rejects a key outside the union, so the union is learned: a scope with an unknown key is decoded
    the plain way (``_Span``), and its keys join the union for the next lines. Learning is bounded (each
    lesson rebuilds the decoder: 4 ms at 2,000 keys), and so is a scope's failing: a scope that keeps
    bringing new keys past either bound is decoded the plain way from then on."""

    MAX_KEYS = 2_000
    MAX_LESSONS = 64
    MAX_MISSES = 8  # per scope name

    def __init__(self, wanted: Mapping[str, str]) -> None:
        self._wanted = wanted
        self._classes: list[type[msgspec.Struct]] = []
        self._keys: set[str] = set()
        self._lessons = 0
        self._misses: dict[str, int] = {}
        self.ours: set[type[msgspec.Struct]] = set()  # the classes of ``tokenkpi.*`` keys
        self._add(wanted)
        self._build()

    def usable(self, scope: str) -> bool:
        return self._misses.get(scope, 0) < self.MAX_MISSES

    def missed(self, scope: str, spans: list[_Span]) -> None:
        """A decode of ``scope`` failed; ``spans`` are its spans decoded the plain way."""
        self._misses[scope] = self._misses.get(scope, 0) + 1
        self._learn({item.key for span in spans for item in span.attributes})

    def _learn(self, keys: Iterable[str]) -> None:
        new = [key for key in keys if key not in self._keys]
        if not new or self._lessons >= self.MAX_LESSONS or len(self._keys) + len(new) > self.MAX_KEYS:
            return
        self._lessons += 1
        self._add(new)
        self._build()

    def _add(self, keys: Iterable[str]) -> None:
        for key in keys:
            kind = self._wanted.get(key)
            fields = [("value", _VALUES[kind], _VALUES[kind]())] if kind is not None else []
            namespace = {"entry": (key, kind) if kind is not None else None}
            name = f"_Attribute{len(self._classes)}"
            attribute = msgspec.defstruct(name, fields, bases=(_Attribute,), namespace=namespace, tag=key, gc=False)
            self._classes.append(attribute)
            self._keys.add(key)
            if key.startswith("tokenkpi."):
                self.ours.add(attribute)

    def _build(self) -> None:
        span = _tagged_span_type(Union[tuple(self._classes)])  # noqa: UP007 - a runtime union of classes
        self.spans = msgspec.json.Decoder(list[span], strict=False)  # type: ignore[valid-type]
        self.span = msgspec.json.Decoder(span, strict=False)


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
        # decoding the whole scope in one call (faster when most are ours, like a model client's; with the
        # key union, the two cost the same at a third ours).
        self._sparse_scopes: set[str] = set()
        self._union = _KeyUnion(self.wanted)

    def read(self, line: bytes | memoryview) -> LineSpans | None:
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
                decoded, count, tagged = self._decode_scope(raw, name)
                total += count
                ours = 0
                read_attributes = self._tagged_attributes if tagged else self._attributes
                for span in decoded:
                    attrs = read_attributes(span.attributes)
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

    def _decode_scope(self, raw: msgspec.Raw, scope: str) -> tuple[list[Any], int, bool]:
        """(the scope's spans that may be ours, decoded; how many spans it holds; decoded by the key union?)"""
        found: list[msgspec.Raw] | None = None
        count = 0
        if scope in self._sparse_scopes:
            raws = _RAW_SPANS.decode(raw)
            search = _OURS.search
            found, count = [span for span in raws if search(span) is not None], len(raws)
        union = self._union
        tagged = union.usable(scope)
        if tagged:
            try:
                decoded = union.spans.decode(raw) if found is None else [union.span.decode(s) for s in found]
                return decoded, count or len(decoded), True
            except msgspec.ValidationError:
                pass  # a key outside the union; or a value the plain decode rejects too, raising for read()
        decoded = _SPANS.decode(raw) if found is None else [_SPAN.decode(span) for span in found]
        if tagged:
            union.missed(scope, decoded)
        return decoded, count or len(decoded), False

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
        """The wanted attributes, typed; None when no key is ``tokenkpi.*`` (the name was in a value). The
        plain way, for the spans the key union does not take (see :meth:`_tagged_attributes`)."""
        wanted = self.wanted.get
        attrs: dict[str, Any] = {}
        for item in items:
            kind = wanted(item.key)
            if kind is not None:
                found = _typed(item.value, kind)
                if found is not None:
                    attrs[item.key] = found
                else:
                    attrs.pop(item.key, None)
        if self._ours_wanted.isdisjoint(attrs) and not any(item.key.startswith("tokenkpi.") for item in items):
            return None
        return attrs

    def _tagged_attributes(self, items: list[_Attribute]) -> dict[str, Any] | None:
        """:meth:`_attributes` for spans decoded by the key union: most spans, so ``_typed`` is inlined for
        the common kinds (about 60 ns per attribute read, 18 per one skipped)."""
        attrs: dict[str, Any] = {}
        for item in items:
            entry = item.entry
            if entry is None:
                continue
            key, kind = entry
            value = item.value  # type: ignore[attr-defined]  # entry is set on the classes with a value only
            found: Any
            if kind is INT:
                found = value.intValue  # a _Number: the int comes first, as in the standard reader
                if found is None:
                    found = _typed(value, INT)
            elif kind is STR:
                found = value.stringValue  # a _String
            elif kind is FLOAT:
                found = value.doubleValue  # a _Number
                if found is None or value.intValue is not None:
                    found = _typed(value, FLOAT)
            else:
                found = _python_value(value)
            if found is not None:
                attrs[key] = found
            else:
                attrs.pop(key, None)
        if self._ours_wanted.isdisjoint(attrs) and self._union.ours.isdisjoint(map(type, items)):
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
