"""Opt-in content capture in the semconv JSON shape.

Off unless ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` says so
(``true``, or ``SPAN_ONLY`` / ``SPAN_AND_EVENT`` in latest-experimental mode).
Counts are always recorded; text only when the user opts in.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .record import CallRequest, CallResult, ContextItem, ToolCall

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


def input_messages_json(request: CallRequest) -> str:
    """Chat history, system messages included (semconv); top-level
    instructions go to ``gen_ai.system_instructions`` instead."""
    messages = [{"role": m.role, "parts": _parts(m)} for m in request.messages if not m.is_instructions]
    return _dumps(messages)


def system_instructions_json(request: CallRequest) -> str | None:
    parts = [{"type": "text", "content": m.text} for m in request.messages if m.is_instructions and m.text]
    return _dumps(parts) if parts else None


def output_messages_json(result: CallResult) -> str:
    messages = []
    for output in result.outputs:
        item = ContextItem(role="assistant", text=output.text, tool_calls=output.tool_calls)
        messages.append({"role": "assistant", "parts": _parts(item), "finish_reason": output.finish_reason or ""})
    return _dumps(messages)
