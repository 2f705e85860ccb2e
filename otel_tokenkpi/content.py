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
    messages = [{"role": m.role, "parts": _parts(m)} for m in request.messages if m.role != "system"]
    return json.dumps(messages, ensure_ascii=False)


def system_instructions_json(request: CallRequest) -> str | None:
    parts = [{"type": "text", "content": m.text} for m in request.messages if m.role == "system" and m.text]
    return json.dumps(parts, ensure_ascii=False) if parts else None


def output_messages_json(result: CallResult) -> str:
    item = ContextItem(role="assistant", text=result.output_text, tool_calls=result.tool_calls)
    message: dict[str, Any] = {"role": "assistant", "parts": _parts(item)}
    if result.finish_reasons:
        message["finish_reason"] = result.finish_reasons[0]
    return json.dumps([message], ensure_ascii=False)
