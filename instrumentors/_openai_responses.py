"""Read OpenAI Responses API shapes: request kwargs, response, stream events.

Shapes only (API reference: Responses object and streaming events). The
final ``response.completed`` / ``response.incomplete`` / ``response.failed``
event carries the whole response with usage; items seen before it are kept
so a stream left early still reports what it produced.
"""

from __future__ import annotations

from typing import Any

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.invocation import (
    CallRequest,
    CallResult,
    ContextItem,
    OutputMessage,
    ToolCall,
    ToolDefinition,
    Usage,
)

from ._shapes import IdentityMemo, ParamNames, as_list, compact_json, get, read_params, text_of, tool_choice_of, type_of

_TEXT_KEYS = ("text", "refusal")
_ROLES = {"developer": "system", "system": "system"}


_TOOL_CALL_ITEMS = {"function_call": "arguments", "custom_tool_call": "input"}  # item type -> arguments key


def read_tool_call_item(item: Any, kind: str) -> ToolCall:
    arguments = get(item, _TOOL_CALL_ITEMS[kind]) or ""
    return ToolCall(name=get(item, "name", ""), arguments=arguments, id=get(item, "call_id", ""))


def read_input_item(item: Any) -> ContextItem | None:
    if isinstance(item, str):
        return ContextItem(role="user", text=item)
    kind = type_of(item)
    if kind in _TOOL_CALL_ITEMS:
        return ContextItem(role="assistant", tool_calls=[read_tool_call_item(item, kind)])
    if kind in ("function_call_output", "custom_tool_call_output"):
        output = get(item, "output")
        text = output if isinstance(output, str) else text_of(output, ("text",))
        return ContextItem(role="tool", text=text, tool_call_id=get(item, "call_id", ""))
    role = get(item, "role")
    if role is None:
        return None  # reasoning items, item references: not counted
    role = role if isinstance(role, str) else "user"  # an unhashable role would raise in the lookup
    return ContextItem(role=_ROLES.get(role, role), text=text_of(get(item, "content"), _TEXT_KEYS))


def read_tool_definition(tool: Any) -> ToolDefinition:
    kind = type_of(tool)
    if kind in ("function", "custom"):
        schema = get(tool, "parameters") if kind == "function" else get(tool, "format")
        return ToolDefinition(
            name=get(tool, "name", ""),
            description=get(tool, "description") or "",
            parameters_json=compact_json(schema),
            kind=kind,
            strict=get(tool, "strict") is True,
        )
    return ToolDefinition(name=kind, kind=kind)  # built-in tools (web_search, file_search, ...)


_input_memo = IdentityMemo(read_input_item)
_tool_memo = IdentityMemo(read_tool_definition)
PARAM_NAMES = ParamNames(
    numbers=(
        (sc.REQUEST_MAX_TOKENS, "max_output_tokens"),
        (sc.REQUEST_TEMPERATURE, "temperature"),
        (sc.REQUEST_TOP_P, "top_p"),
    )
)


def read_request(base: CallRequest, kwargs: dict[str, Any]) -> CallRequest:
    text_format = get(get(kwargs.get("text"), "format"), "type")
    json_output = text_format in ("json_schema", "json_object") or isinstance(kwargs.get("text_format"), type)
    base.params = read_params(
        kwargs, PARAM_NAMES, stream=kwargs.get("stream") is True, output_type="json" if json_output else None
    )
    messages = []
    instructions = get(kwargs, "instructions")
    if isinstance(instructions, str) and instructions:
        messages.append(ContextItem(role="system", text=instructions, is_instructions=True))
    for item in as_list(kwargs.get("input")):
        message = _input_memo(item)
        if message is not None:
            messages.append(message)
    base.messages = messages
    base.tools = [_tool_memo(t) for t in as_list(kwargs.get("tools"))]
    base.stream = kwargs.get("stream") is True
    base.tool_choice, base.api = tool_choice_of(kwargs.get("tool_choice")), "responses"
    history = get(kwargs, "previous_response_id") or get(kwargs, "conversation")
    if history is not None:
        base.server_history_ref = history if isinstance(history, str) else get(history, "id")
    return base


def read_usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    return Usage(
        input_tokens=get(usage, "input_tokens"),
        output_tokens=get(usage, "output_tokens"),
        cache_read_tokens=get(get(usage, "input_tokens_details"), "cached_tokens"),
        reasoning_tokens=get(get(usage, "output_tokens_details"), "reasoning_tokens"),
    )


def _finish_reason(response: Any, has_tool_calls: bool) -> str | None:
    status = get(response, "status")
    if status == "completed":
        return "tool_calls" if has_tool_calls else "stop"
    if status == "incomplete":
        reason = get(get(response, "incomplete_details"), "reason")
        return "length" if reason == "max_output_tokens" else (reason or "incomplete")
    if status == "failed":
        return "error"
    return None


def read_output_items(items: Any) -> OutputMessage:
    """All output items of one response as one output message."""
    texts, calls = [], []
    for item in as_list(items):
        kind = type_of(item)
        if kind == "message":
            texts.append(text_of(get(item, "content"), _TEXT_KEYS))
        elif kind in _TOOL_CALL_ITEMS:
            calls.append(read_tool_call_item(item, kind))
    return OutputMessage(text="".join(texts), tool_calls=calls)


def read_response(response: Any) -> CallResult:
    output = read_output_items(get(response, "output"))
    output.finish_reason = _finish_reason(response, bool(output.tool_calls))
    return CallResult(
        response_id=get(response, "id"),
        response_model=get(response, "model") or None,
        usage=read_usage(get(response, "usage")),
        outputs=[output],
    )


_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class EventReader:
    """Accumulates Responses streaming events."""

    def __init__(self, request: CallRequest) -> None:
        self._final: CallResult | None = None
        self._partial = CallResult()
        self._text: list[str] = []
        self._items: list[Any] = []

    def feed(self, event: Any) -> None:
        kind = type_of(event)
        if kind in _FINAL_EVENTS:
            self._final = read_response(get(event, "response"))
        elif kind == "response.created":
            response = get(event, "response")
            self._partial.response_id = get(response, "id")
            self._partial.response_model = get(response, "model") or None
        elif kind == "response.output_text.delta":
            self._text.append(get(event, "delta", ""))
        elif kind == "response.output_item.done":
            self._items.append(get(event, "item"))

    def result(self) -> CallResult:
        if self._final is not None:
            return self._final
        partial = self._partial
        output = read_output_items(self._items)
        if not output.text:
            output.text = "".join(self._text)  # text of an item not yet done
        partial.outputs = [output]
        return partial
