"""Read Cohere Chat API v2 shapes: ``chat`` / ``chat_stream`` kwargs, ``V2ChatResponse`` and stream events.

Shapes only (API reference: v2 Chat, Chat with Streaming); the lifecycle does everything else. Messages may
be plain dicts or the SDK's models (``UserChatMessageV2``, a response's ``AssistantMessageResponse``...):
``_shapes.get`` reads both.

Choices made here:

* Roles are the API's own: ``system``, ``user``, ``assistant``, ``tool``. Content is a string or a list of
  blocks; ``text`` blocks are text, ``thinking`` blocks never count (the model's reasoning, not its answer),
  images count as no text. A tool message's ``document`` blocks count as the compact JSON of their ``data``.
* An assistant message's ``tool_plan`` (the model's plan before its tool calls) is text the model wrote and
  sees again when the turn is re-sent: it is part of the item's text, before the content text. The same
  holds for the response, plain or streamed (``tool-plan-delta`` pieces), so both give the same record.
* Top-level ``documents`` (RAG) are context the model reads on every call: one ``user`` item before the
  messages holding their texts (a document is a string, or the compact JSON of its ``data``).
* Tool-call arguments are the JSON text the API sends (``function.arguments``), compacted when valid JSON;
  a stream's ``tool-call-delta`` pieces are joined first.
* Usage: semconv asks for billed counts where a provider reports billed and processed ones, so
  ``usage.billed_units`` gives ``gen_ai.usage.*`` and ``usage.tokens`` (what the model processed, prompt
  template included) goes to ``tokenkpi.usage.processed.*``. With no billed units (some deployments), the
  processed counts stand in. ``usage.cached_tokens`` is the cache read. The SDK types counts as floats:
  whole numbers are reported as ints.
"""

from __future__ import annotations

import json
from typing import Any

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.invocation import (
    AttributeValue,
    CallRequest,
    CallResult,
    ContextItem,
    OutputMessage,
    ToolCall,
    ToolDefinition,
    Usage,
)

from ._shapes import IdentityMemo, ParamNames, as_list, compact_json, get, read_params, text_of


def _document_block_text(block: Any) -> str:
    """A content block without text: a ``document`` block counts as its data, anything else as nothing."""
    return document_text(get(block, "document")) if get(block, "type") == "document" else ""


def _blocks_text(content: Any) -> str:
    """Text of a message's content: a string, or ``text`` blocks (``document`` blocks: their data)."""
    return text_of(content if isinstance(content, str) else as_list(content), other_part=_document_block_text)


def document_text(document: Any) -> str:
    """A document as the model reads it: a string, or its ``data`` as compact JSON."""
    if isinstance(document, str):
        return document
    data = get(document, "data")
    return data if isinstance(data, str) else compact_json(data) if data is not None else ""


def arguments_json(raw: Any) -> str:
    """Tool-call arguments as compact JSON when they parse, else the text as sent (e.g. cut off)."""
    if not isinstance(raw, str):
        return compact_json(raw) if raw is not None else "{}"
    if not raw:
        return "{}"
    try:
        return compact_json(json.loads(raw))
    except ValueError:
        return raw


def _tool_call(call: Any) -> ToolCall:
    function = get(call, "function")
    return ToolCall(
        name=get(function, "name", "") or "",
        arguments=arguments_json(get(function, "arguments")),
        id=get(call, "id", "") or "",
    )


def _plan_and_text(plan: Any, text: str) -> str:
    return (plan if isinstance(plan, str) else "") + text


def read_message(message: Any) -> ContextItem:
    role = get(message, "role", "user") or "user"
    text = _blocks_text(get(message, "content"))
    if role == "assistant":
        calls = [_tool_call(c) for c in as_list(get(message, "tool_calls"))]
        return ContextItem(role="assistant", text=_plan_and_text(get(message, "tool_plan"), text), tool_calls=calls)
    if role == "tool":
        return ContextItem(role="tool", text=text, tool_call_id=get(message, "tool_call_id", "") or "")
    return ContextItem(role=role if role in ("system", "user") else "user", text=text)


def read_tool_definition(tool: Any) -> ToolDefinition:
    function = get(tool, "function")
    parameters = get(function, "parameters")
    return ToolDefinition(
        name=get(function, "name", "") or "",
        description=get(function, "description", "") or "",
        parameters_json=compact_json(parameters) if parameters is not None else "",
    )


_message_memo = IdentityMemo(read_message)
_tool_memo = IdentityMemo(read_tool_definition)


def output_type(response_format: Any) -> str | None:
    kind = get(response_format, "type")
    if kind == "json_object":
        return "json"
    if kind == "text":
        return "text"
    return None


PARAM_NAMES = ParamNames(
    numbers=(
        (sc.REQUEST_MAX_TOKENS, "max_tokens"),
        (sc.REQUEST_TEMPERATURE, "temperature"),
        (sc.REQUEST_TOP_P, "p"),
        (sc.REQUEST_TOP_K, "k"),
        (sc.REQUEST_FREQUENCY_PENALTY, "frequency_penalty"),
        (sc.REQUEST_PRESENCE_PENALTY, "presence_penalty"),
        (sc.REQUEST_SEED, "seed"),
    ),
    stop="stop_sequences",
)


def request_params(kwargs: dict[str, Any], stream: bool) -> dict[str, Any]:
    return read_params(kwargs, PARAM_NAMES, stream=stream, output_type=output_type(kwargs.get("response_format")))


def read_request(base: CallRequest, kwargs: dict[str, Any], stream: bool) -> CallRequest:
    base.params = request_params(kwargs, stream)
    documents = "\n".join(document_text(d) for d in as_list(kwargs.get("documents")))
    if documents:
        base.messages.append(ContextItem(role="user", text=documents))
    base.messages.extend(_message_memo(m) for m in as_list(kwargs.get("messages")))
    base.tools = [_tool_memo(t) for t in as_list(kwargs.get("tools"))]
    base.stream = stream
    return base


def count(value: Any) -> int | None:
    """A token count as an int (the SDK types them as floats); None when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if float(value).is_integer() else None


def read_usage(usage: Any, result: CallResult) -> None:
    """``usage`` (a chat ``usage`` or an embed ``meta``) into ``result``: billed as semconv usage, processed
    as ``tokenkpi.usage.processed.*``."""
    if usage is None:
        return
    billed, processed = get(usage, "billed_units"), get(usage, "tokens")
    processed_in, processed_out = count(get(processed, "input_tokens")), count(get(processed, "output_tokens"))
    extra: dict[str, AttributeValue] = {}
    if processed_in is not None:
        extra[sc.USAGE_PROCESSED_INPUT_TOKENS] = processed_in
    if processed_out is not None:
        extra[sc.USAGE_PROCESSED_OUTPUT_TOKENS] = processed_out
    result.provider_attributes.update(extra)
    billed_in, billed_out = count(get(billed, "input_tokens")), count(get(billed, "output_tokens"))
    input_tokens = billed_in if billed_in is not None else processed_in
    output_tokens = billed_out if billed_out is not None else processed_out
    cached = count(get(usage, "cached_tokens"))
    if input_tokens is None and output_tokens is None and cached is None:
        return
    result.usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached)


def read_response(response: Any) -> CallResult:
    message = get(response, "message")
    reason = get(response, "finish_reason")
    text = _blocks_text(get(message, "content"))
    output = OutputMessage(
        text=_plan_and_text(get(message, "tool_plan"), text),
        tool_calls=[_tool_call(c) for c in as_list(get(message, "tool_calls"))],
        finish_reason=str(reason) if reason else None,
    )
    result = CallResult(response_id=get(response, "id") or None, outputs=[output])
    read_usage(get(response, "usage"), result)
    return result


class EventReader:
    """Accumulates v2 stream events: the id from ``message-start``, text from ``content-delta``, the plan
    from ``tool-plan-delta``, tool calls from ``tool-call-start`` / ``-delta`` (by index), and the finish
    reason and usage from ``message-end``."""

    def __init__(self, request: CallRequest) -> None:
        self._result = CallResult()
        self._seen = False
        self._plan: list[str] = []
        self._texts: list[str] = []
        self._calls: dict[int, list[Any]] = {}  # index -> [id, name, [argument pieces]]
        self._finish: str | None = None

    def feed(self, event: Any) -> None:
        kind = get(event, "type")
        message = get(get(event, "delta"), "message")
        if kind == "content-delta":
            text = get(get(message, "content"), "text")  # thinking deltas carry ``thinking`` instead
            if isinstance(text, str):
                self._texts.append(text)
        elif kind == "tool-call-delta":
            slot = self._calls.get(get(event, "index", 0) or 0)
            piece = get(get(get(message, "tool_calls"), "function"), "arguments")
            if slot is not None and isinstance(piece, str):
                slot[2].append(piece)
        elif kind == "tool-plan-delta":
            piece = get(message, "tool_plan")
            if isinstance(piece, str):
                self._plan.append(piece)
        elif kind == "tool-call-start":
            call = get(message, "tool_calls")
            function = get(call, "function")
            first = get(function, "arguments")
            pieces = [first] if isinstance(first, str) and first else []
            self._calls[get(event, "index", 0) or 0] = [get(call, "id", "") or "", get(function, "name", ""), pieces]
        elif kind == "message-start":
            self._result.response_id = get(event, "id") or None
        elif kind == "message-end":
            delta = get(event, "delta")
            reason = get(delta, "finish_reason")
            if reason:
                self._finish = str(reason)
            read_usage(get(delta, "usage"), self._result)
        else:
            return
        self._seen = True

    def result(self) -> CallResult:
        result = self._result
        if not self._seen:
            return result
        calls = [
            ToolCall(name=name or "", arguments=arguments_json("".join(pieces)), id=call_id)
            for _, (call_id, name, pieces) in sorted(self._calls.items())
        ]
        text = "".join(self._plan) + "".join(self._texts)
        result.outputs = [OutputMessage(text=text, tool_calls=calls, finish_reason=self._finish)]
        return result
