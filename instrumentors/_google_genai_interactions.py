"""Read the Gemini Interactions API (``client.interactions.create``): requests, ``Interaction`` responses and
their server-sent events. Shapes only; wire format in ``otel_tokenkpi/testing/_gemini_interactions.py``.

Request: ``model`` (or ``agent``), ``input`` (a string, a content block, a list of content blocks, or a
list of steps: ``user_input`` / ``model_output`` with ``content`` blocks, ``function_call`` with ``name`` /
``arguments`` / ``id``, ``function_result`` with ``call_id`` / ``result``; ``thought`` steps are the model's
reasoning, not conversation), ``system_instruction`` (a string), ``tools`` (``function`` tools carry a
schema; built-in tools are offered by type), ``generation_config`` (``temperature``, ``top_p``, ``seed``,
``max_output_tokens``, ``stop_sequences``), ``previous_interaction_id`` (history the server holds), and
``stream``. The SDK's generated ``create`` takes the body as keywords or as ``request=`` (an object whose
``body`` holds them): both are read.

Response: ``id``, ``model``, ``status`` (recorded as the finish reason: ``completed``, ``requires_action``
when the model calls functions, ``incomplete``, ``failed``), ``steps`` (``model_output`` text,
``function_call`` tool calls) and ``usage``. Usage is mapped as for ``generateContent``: input =
``total_input_tokens`` (the cached part, ``total_cached_tokens``, included) + ``total_tool_use_tokens``;
output = ``total_output_tokens`` + ``total_thought_tokens`` (reported beside it, as ``thoughtsTokenCount`` is).
A stream's ``interaction.completed`` event carries the final status and usage.
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

from ._shapes import ParamNames, as_list, compact_json, get, read_params, type_of

PARAM_NAMES = ParamNames(
    numbers=(
        (sc.REQUEST_MAX_TOKENS, "max_output_tokens"),
        (sc.REQUEST_TEMPERATURE, "temperature"),
        (sc.REQUEST_TOP_P, "top_p"),
        (sc.REQUEST_SEED, "seed"),
    ),
    stop="stop_sequences",
)
_REQUEST_FIELDS = ("model", "agent", "input", "system_instruction", "tools", "generation_config", "stream")


def request_body(kwargs: dict[str, Any]) -> Any:
    """The create's body: its keywords, or ``request=``'s ``body`` (an object or a dict)."""
    request = kwargs.get("request")
    if request is not None and not any(name in kwargs for name in _REQUEST_FIELDS):
        body = get(request, "body")
        return body if body is not None else request
    return kwargs


def _content_text(blocks: Any) -> str:
    """The text of content blocks (``{"type": "text", "text": ...}``); a bare string is its own text."""
    if isinstance(blocks, str):
        return blocks
    return "".join(get(block, "text") or "" for block in as_list(blocks) if type_of(block) in ("text", ""))


def _result_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, list):
        return _content_text(result)
    return compact_json(result)


def _step_items(step: Any) -> list[ContextItem]:
    kind = type_of(step)
    if kind == "user_input":
        return [ContextItem("user", _content_text(get(step, "content")))]
    if kind == "model_output":
        return [ContextItem("assistant", _content_text(get(step, "content")))]
    if kind == "function_call":
        call = ToolCall(str(get(step, "name") or ""), compact_json(get(step, "arguments") or {}), get(step, "id") or "")
        return [ContextItem("assistant", tool_calls=[call])]
    if kind == "function_result":
        result = _result_text(get(step, "result"))
        return [ContextItem("tool", result, tool_call_id=str(get(step, "call_id") or ""))]
    role = get(step, "role")  # a turn (``role`` + ``content``), as earlier releases of the API took them
    if not kind and role in ("user", "model"):
        return [ContextItem("user" if role == "user" else "assistant", _content_text(get(step, "content")))]
    return []  # thoughts, built-in tool steps: no conversation text of their own


def read_messages(body: Any) -> list[ContextItem]:
    items = []
    system = get(body, "system_instruction")
    if isinstance(system, str) and system:
        items.append(ContextItem("system", system, is_instructions=True))
    value = get(body, "input")
    if isinstance(value, list) and any(type_of(v) in _STEP_TYPES or get(v, "role") for v in value):
        for step in value:
            items.extend(_step_items(step))
    elif value is not None:
        items.append(ContextItem("user", _content_text(value)))
    return items


_STEP_TYPES = frozenset({"user_input", "model_output", "function_call", "function_result", "thought"})


def read_tools(tools: Any) -> list[ToolDefinition]:
    definitions = []
    for tool in as_list(tools):
        kind = type_of(tool)
        if kind == "function":
            definitions.append(
                ToolDefinition(
                    str(get(tool, "name") or ""),
                    str(get(tool, "description") or ""),
                    compact_json(get(tool, "parameters")),
                )
            )
        elif kind:
            definitions.append(ToolDefinition(kind))  # a built-in tool (google_search, code_execution, ...)
    return definitions


def read_request(base: CallRequest, kwargs: dict[str, Any]) -> CallRequest:
    body = request_body(kwargs)
    base.model = base.model or get(body, "model") or get(body, "agent") or None
    base.stream = get(body, "stream") is True
    base.params = read_params(get(body, "generation_config"), PARAM_NAMES, stream=base.stream)
    base.messages = read_messages(body)
    base.tools = read_tools(get(body, "tools"))
    history = get(body, "previous_interaction_id")
    if isinstance(history, str) and history:
        base.server_history_ref = history
    return base


def _sum(*values: Any) -> int | None:
    present = [v for v in values if isinstance(v, int)]
    return sum(present) if present else None


def read_usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    thoughts = get(usage, "total_thought_tokens")
    counted = Usage(
        input_tokens=_sum(get(usage, "total_input_tokens"), get(usage, "total_tool_use_tokens")),
        output_tokens=_sum(get(usage, "total_output_tokens"), thoughts),
        cache_read_tokens=get(usage, "total_cached_tokens"),
        reasoning_tokens=thoughts,
    )
    return counted if counted.input_tokens is not None or counted.output_tokens is not None else None


def _status(interaction: Any) -> str | None:
    status = get(interaction, "status")
    value = getattr(status, "value", status)
    return str(value) if value else None


def read_response(interaction: Any) -> CallResult:
    result = CallResult(
        response_id=get(interaction, "id") or None,
        response_model=get(interaction, "model") or get(interaction, "agent") or None,
        usage=read_usage(get(interaction, "usage")),
    )
    texts, calls = [], []
    for step in as_list(get(interaction, "steps")):
        kind = type_of(step)
        if kind == "model_output":
            texts.append(_content_text(get(step, "content")))
        elif kind == "function_call":
            (item,) = _step_items(step)
            calls.extend(item.tool_calls)
    result.outputs = [OutputMessage(text="".join(texts), tool_calls=calls, finish_reason=_status(interaction))]
    return result


class EventReader:
    """Accumulates a streamed interaction's events: text per ``model_output`` step, function calls from their
    ``step.start`` and ``arguments_delta`` pieces, id / model / final status / usage from the lifecycle events."""

    def __init__(self, request: CallRequest) -> None:
        self._result = CallResult()
        self._steps: dict[int, tuple[str, list[str], Any]] = {}  # index -> (type, text or argument pieces, start)
        self._status: str | None = None

    def feed(self, event: Any) -> None:
        kind = get(event, "event_type")
        if kind == "step.delta":
            step = self._steps.get(get(event, "index"))
            delta = get(event, "delta")
            if step is not None:
                piece = get(delta, "text") if step[0] == "model_output" else get(delta, "arguments")
                if isinstance(piece, str):
                    step[1].append(piece)
        elif kind == "step.start":
            start = get(event, "step")
            index = get(event, "index")
            if isinstance(index, int):
                self._steps[index] = (type_of(start), [], start)
        elif kind in ("interaction.created", "interaction.completed"):
            interaction = get(event, "interaction")
            result = self._result
            result.response_id = result.response_id or get(interaction, "id") or None
            result.response_model = result.response_model or get(interaction, "model") or None
            if kind == "interaction.completed":
                self._status = _status(interaction)
                result.usage = read_usage(get(interaction, "usage")) or result.usage

    def result(self) -> CallResult:
        texts, calls = [], []
        for index in sorted(self._steps):
            kind, pieces, start = self._steps[index]
            if kind == "model_output":
                texts.append("".join(pieces))
            elif kind == "function_call":
                arguments = "".join(pieces) if pieces else compact_json(get(start, "arguments") or {})
                calls.append(ToolCall(str(get(start, "name") or ""), arguments, get(start, "id") or ""))
        result = self._result
        result.outputs = [OutputMessage(text="".join(texts), tool_calls=calls, finish_reason=self._status)]
        return result
