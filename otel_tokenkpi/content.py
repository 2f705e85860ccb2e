"""Opt-in content capture in the semconv JSON shape.

Off unless ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` says so
(``true``, or ``SPAN_ONLY`` / ``SPAN_AND_EVENT`` in latest-experimental mode).
Counts are always recorded; text only when the user opts in.

Under an attribute length limit (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``, ``SpanLimits``) the SDK would
cut a long value at the limit, leaving JSON that no backend can parse. So each value is fitted here
first: whole when it fits; otherwise the newest messages that fit, the oldest of those with its texts
cut short (ending in "…"), always a valid JSON array within the limit.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .invocation import CallRequest, CallResult, ContextItem, ToolCall

_ON_VALUES = {"true", "1", "yes", "span_only", "span_and_event"}


def capture_enabled() -> bool:
    value = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return value.strip().lower() in _ON_VALUES


def _dumps(value: Any) -> str:
    """JSON text that is valid UTF-8. A lone surrogate (from ``surrogateescape`` decoding, or a JSON
    ``"\\ud800"`` escape parsed by the SDK) would make the OTLP exporter drop the whole attribute, with an
    error log per span: such text is written with ASCII escapes instead (still the same JSON value)."""
    text = json.dumps(value, ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(value)
    return text


def _arguments(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments) if call.arguments else {}
    except ValueError:
        return call.arguments


def _parts(item: ContextItem) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if item.role == "tool":
        return [{"type": "tool_call_response", "id": item.tool_call_id, "response": item.text}]
    if item.text:
        parts.append({"type": "text", "content": item.text})
    for call in item.tool_calls:
        parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": _arguments(call)})
    return parts


def input_messages_json(request: CallRequest, limit: int | None = None) -> str:
    """Chat history, system messages included (semconv); top-level
    instructions go to ``gen_ai.system_instructions`` instead."""
    messages = [{"role": m.role, "parts": _parts(m)} for m in request.messages if not m.is_instructions]
    return json_array_within(messages, limit)


def system_instructions_json(request: CallRequest, limit: int | None = None) -> str | None:
    parts = [{"type": "text", "content": m.text} for m in request.messages if m.is_instructions and m.text]
    return json_array_within(parts, limit) if parts else None


def output_messages_json(result: CallResult, limit: int | None = None) -> str:
    messages = []
    for output in result.outputs:
        item = ContextItem(role="assistant", text=output.text, tool_calls=output.tool_calls)
        messages.append({"role": "assistant", "parts": _parts(item), "finish_reason": output.finish_reason or ""})
    return json_array_within(messages, limit)


_CUT_MARK = "…"
_TEXT_KEYS = ("content", "response", "arguments")  # what a part says, as opposed to what it is


def json_array_within(values: list[Any], limit: int | None) -> str:
    """``values`` as a JSON array of at most ``limit`` characters (no limit: all of it).

    Newest first, each whole value that fits is kept; the first one that does not is kept with its texts
    cut short if that fits, and everything older is left out. Linear in the size of the content: each
    value is serialized once, and only the one that is cut more than once (on text already cut to the
    remaining room)."""
    text = _dumps(values)
    if limit is None or len(text) <= limit:
        return text
    kept: list[str] = []
    room = limit - 2  # the brackets
    for value in reversed(values):
        comma = 1 if kept else 0
        piece = _dumps(value)
        if len(piece) + comma <= room:
            kept.append(piece)
            room -= len(piece) + comma
            continue
        cut = _cut_to_fit(value, room - comma)
        if cut is not None:
            kept.append(cut)
        break
    return "[" + ",".join(reversed(kept)) + "]"


def _cut_to_fit(value: Any, room: int) -> str | None:
    """``value`` serialized within ``room`` characters with its texts cut to one common length, the
    longest that fits; None if even empty texts do not fit."""
    if room <= 0:
        return None
    shortest = _dumps(_cut_texts(value, 0))
    if len(shortest) > room:
        return None
    value = _cut_texts(value, room)  # no text longer than the room can fit: bound the work below
    low, high, best = 0, room, shortest
    while low <= high:
        middle = (low + high) // 2
        piece = _dumps(_cut_texts(value, middle))
        if len(piece) <= room:
            best, low = piece, middle + 1
        else:
            high = middle - 1
    return best


def _cut_texts(value: Any, length: int) -> Any:
    """A copy of a message (or part) whose text fields are at most ``length`` characters plus the cut mark.
    Tool-call arguments that are JSON objects and must be cut become their cut JSON text."""
    if isinstance(value, list):
        return [_cut_texts(item, length) for item in value]
    if not isinstance(value, dict):
        return value
    copy: dict[str, Any] = {}
    for key, item in value.items():
        if key in _TEXT_KEYS and item is not None:
            text = item if isinstance(item, str) else _dumps(item)
            copy[key] = item if len(text) <= length else text[:length] + _CUT_MARK
        else:
            copy[key] = _cut_texts(item, length)
    return copy
