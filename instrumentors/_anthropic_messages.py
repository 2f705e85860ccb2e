"""Read Anthropic Messages API shapes: request kwargs, ``Message`` responses, raw stream events.

Shapes only (API reference: Messages, streaming events); the lifecycle does everything else. Serves
the GA ``messages`` and the beta ``messages`` resources alike (same field names), and Bedrock's
``InvokeModel`` with an Anthropic body (``_bedrock_anthropic``), which is this same JSON: one reader, so
the two routes to Claude give the same record.

Choices made here:

* ``system`` (a string or a list of text blocks) is one instructions item (``is_instructions``).
* A message's content blocks are split by meaning: ``tool_result`` blocks become ``tool`` items (one
  each, in order), ``tool_use`` blocks become tool calls of the assistant item, text blocks are the
  item's text. A user message that carries tool results and text yields the tool items, then a user
  item with the text.
* Thinking (``thinking``, ``redacted_thinking``) is never counted as text, in the request or the
  response: the API drops earlier turns' thinking from the context, and the response's thinking is
  billed in ``output_tokens`` (reported as reasoning tokens), not part of the answer. Images,
  documents and server-tool blocks count as no text.
* Tool-call arguments are the compact JSON of ``input``; a stream's ``input_json_delta`` pieces are
  joined and re-serialised the same way, so a streamed and a plain call give the same record.
* Usage: Anthropic's ``input_tokens`` excludes cache reads and writes; semconv's includes them, so
  the three are added. In streams ``message_start`` holds the input counts (and a placeholder output
  count, ignored) and ``message_delta`` the final output count; newer API versions repeat the
  input and cache counts there, and those win when present.
"""

from __future__ import annotations

import json
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

from ._shapes import (
    IdentityMemo,
    ParamNames,
    as_list,
    compact_json,
    get,
    input_with_cache,
    read_params,
    text_of,
    tool_choice_of,
)


def _tool_result(block: Any) -> ContextItem:
    content = get(block, "content")
    text = content if isinstance(content, str) else text_of(as_list(content))
    return ContextItem(role="tool", text=text, tool_call_id=get(block, "tool_use_id", "") or "")


def _tool_call(block: Any) -> ToolCall:
    return ToolCall(
        name=get(block, "name", "") or "",
        arguments=compact_json(get(block, "input", {})),
        id=get(block, "id", "") or "",
    )


def read_message(message: Any) -> list[ContextItem]:
    """One request message as context items (see the module docstring for the split)."""
    role = get(message, "role", "user")
    content = get(message, "content")
    if isinstance(content, str):
        return [ContextItem(role=role, text=content)]
    items: list[ContextItem] = []
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in as_list(content):
        kind = get(block, "type")
        if kind == "text":
            texts.append(get(block, "text", "") or "")
        elif kind == "tool_result":
            items.append(_tool_result(block))
        elif kind == "tool_use" and role == "assistant":
            calls.append(_tool_call(block))
    if texts or calls or not items:
        items.append(ContextItem(role=role, text="".join(texts), tool_calls=calls))
    return items


def read_tool_definition(tool: Any) -> ToolDefinition:
    schema = get(tool, "input_schema")
    return ToolDefinition(
        name=get(tool, "name", "") or get(tool, "type", "") or "",
        description=get(tool, "description", "") or "",
        parameters_json=compact_json(schema) if schema is not None else "",
    )


_message_memo = IdentityMemo(read_message)
_tool_memo = IdentityMemo(read_tool_definition)


PARAM_NAMES = ParamNames(
    numbers=(
        (sc.REQUEST_MAX_TOKENS, "max_tokens"),
        (sc.REQUEST_TEMPERATURE, "temperature"),
        (sc.REQUEST_TOP_P, "top_p"),
        (sc.REQUEST_TOP_K, "top_k"),
    ),
    stop="stop_sequences",
)


def sampling_params(fields: dict[str, Any]) -> dict[str, Any]:
    """Sampling parameters of a Messages body (SDK kwargs or Bedrock body JSON: same names)."""
    return read_params(fields, PARAM_NAMES)


def request_params(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Sampling parameters; newer SDKs (2.x) dropped ``temperature``/``top_p``/``top_k`` from the method
    signature, so they arrive in ``extra_body``, which wins over kwargs as it does in the SDK."""
    extra = kwargs.get("extra_body")
    if isinstance(extra, dict):
        kwargs = {**kwargs, **extra}
    return read_params(kwargs, PARAM_NAMES, stream=kwargs.get("stream") is True)


def read_context(base: CallRequest, fields: dict[str, Any], memoized: bool = True) -> None:
    """System, messages and tools of a Messages body into ``base``. ``memoized`` is for the SDK's
    kwargs, the user's own objects re-sent every call; a Bedrock body is JSON parsed afresh for each
    call, where a memo could never hit and would only keep dead objects alive."""
    system = fields.get("system")
    system_text = text_of(as_list(system) if not isinstance(system, str) else system)
    if system_text:
        base.messages.append(ContextItem(role="system", text=system_text, is_instructions=True))
    read_one, read_tool = (_message_memo, _tool_memo) if memoized else (read_message, read_tool_definition)
    for message in as_list(fields.get("messages")):
        base.messages.extend(read_one(message))
    base.tools = [read_tool(t) for t in as_list(fields.get("tools"))]
    base.tool_choice = tool_choice_of(fields.get("tool_choice"))


def read_request(base: CallRequest, kwargs: dict[str, Any]) -> CallRequest:
    base.params = request_params(kwargs)
    read_context(base, kwargs)
    base.stream = kwargs.get("stream") is True
    return base


def _count(usage: Any, key: str) -> int | None:
    value = get(usage, key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage_from(*layers: Any) -> Usage:
    """Usage from usage objects, the first layer that has a count winning; output from the first only."""

    def pick(key: str, sub: str | None = None) -> int | None:
        for layer in layers:
            value = _count(get(layer, sub) if sub else layer, key)
            if value is not None:
                return value
        return None

    uncached, cache_read, cache_write = (
        pick("input_tokens"),
        pick("cache_read_input_tokens"),
        pick("cache_creation_input_tokens"),
    )
    return Usage(
        input_tokens=input_with_cache(uncached, cache_read, cache_write),
        output_tokens=_count(layers[0], "output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=pick("thinking_tokens", "output_tokens_details"),
    )


def read_usage(usage: Any) -> Usage | None:
    return _usage_from(usage) if usage is not None else None


def read_response(response: Any) -> CallResult:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in as_list(get(response, "content")):
        kind = get(block, "type")
        if kind == "text":
            texts.append(get(block, "text", "") or "")
        elif kind == "tool_use":
            calls.append(_tool_call(block))
    reason = get(response, "stop_reason")
    return CallResult(
        response_id=get(response, "id") or None,
        response_model=get(response, "model") or None,
        outputs=[OutputMessage(text="".join(texts), tool_calls=calls, finish_reason=str(reason) if reason else None)],
        usage=read_usage(get(response, "usage")),
    )


def _arguments(start_input: Any, pieces: list[str]) -> str:
    """A streamed tool call's arguments, as compact JSON when the pieces make valid JSON."""
    raw = "".join(pieces)
    if not raw:
        return compact_json(start_input if start_input is not None else {})
    try:
        return compact_json(json.loads(raw))
    except ValueError:
        return raw  # cut off mid-way: what arrived


class EventReader:
    """Accumulates raw Messages stream events: ids and input usage from ``message_start``, text and
    tool-use input per content block, the stop reason and final usage from ``message_delta``."""

    def __init__(self, request: CallRequest) -> None:
        self._result = CallResult()
        self._start_usage: Any = None
        self._delta_usage: Any = None
        self._finish: str | None = None
        self._texts: list[str] = []
        self._tools: dict[int, list[Any]] = {}  # block index -> [id, name, start input, [json pieces]]

    def feed(self, event: Any) -> None:
        kind = get(event, "type")
        if kind == "content_block_delta":
            delta = get(event, "delta")
            delta_kind = get(delta, "type")
            if delta_kind == "text_delta":
                self._texts.append(get(delta, "text", "") or "")
            elif delta_kind == "input_json_delta":
                slot = self._tools.get(get(event, "index", 0))
                if slot is not None:
                    slot[3].append(get(delta, "partial_json", "") or "")
        elif kind == "content_block_start":
            block = get(event, "content_block")
            if get(block, "type") == "tool_use":
                slot = [get(block, "id", "") or "", get(block, "name", "") or "", get(block, "input"), []]
                self._tools[get(event, "index", 0)] = slot
        elif kind == "message_start":
            message = get(event, "message")
            self._result.response_id = get(message, "id") or None
            self._result.response_model = get(message, "model") or None
            self._start_usage = get(message, "usage")
        elif kind == "message_delta":
            reason = get(get(event, "delta"), "stop_reason")
            if reason:
                self._finish = str(reason)
            usage = get(event, "usage")
            if usage is not None:
                self._delta_usage = usage

    def result(self) -> CallResult:
        result = self._result
        result.usage = self._usage()
        if self._start_usage is None and self._delta_usage is None and not self._texts and not self._tools:
            return result
        calls = [
            ToolCall(name=name, arguments=_arguments(start_input, pieces), id=call_id)
            for _, (call_id, name, start_input, pieces) in sorted(self._tools.items())
        ]
        result.outputs = [OutputMessage(text="".join(self._texts), tool_calls=calls, finish_reason=self._finish)]
        return result

    def _usage(self) -> Usage | None:
        if self._start_usage is None and self._delta_usage is None:
            return None
        # message_start's output count is a placeholder: only message_delta's is the real one (none
        # when the stream ended before it). Input and cache counts the delta repeats win.
        return _usage_from(self._delta_usage, self._start_usage)
