"""Read Mistral chat completion shapes: request kwargs, ``ChatCompletionResponse``, stream ``CompletionEvent``s.

Shapes only (API reference: ``POST /v1/chat/completions``); the lifecycle does everything else. The SDK
accepts plain dicts and its own models alike (users re-send ``response.choices[0].message``), and fills
fields a payload omitted with its ``UNSET`` sentinel; ``_shapes.get`` reads all of those the same way.

Choices made here:

* Roles are the API's own: system, user, assistant, tool. A system message is a chat message (as in
  OpenAI chat), not top-level instructions.
* Content is a string or a list of chunks; only ``text`` chunks count as text. Thinking chunks
  (``{"type": "thinking", "thinking": [...]}``, Magistral) are not the answer and never counted as text;
  images, documents and references count as no text.
* ``function.arguments`` may be JSON text or an object: text is kept as sent, an object becomes compact
  JSON, so both name the same call for the waste engine.
* The SDK's ``ToolCall.id`` defaults to the string ``"null"`` when the payload has none: read as no id.
* Usage: ``prompt_tokens`` already includes cache reads (``prompt_tokens_details.cached_tokens``, as
  Mistral documents prompt caching; ``num_cached_tokens`` is read when that is absent).
* Streams: usage arrives on the last chunk. Mistral sends a tool call whole in one delta, several calls
  of one reply in one delta, and the SDK gives every call ``index`` 0 when the payload has none; calls
  that arrive in fragments are joined by index. So a delta opens a new call when no call is open at its
  index, when it carries an id other than the open call's, or, carrying no id, when it names a function
  while the open call already has a name and complete JSON arguments.
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

from ._shapes import IdentityMemo, ParamNames, as_list, compact_json, get, read_params, text_of


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else compact_json(value)


def _call_id(call: Any) -> str:
    call_id = get(call, "id")
    return call_id if isinstance(call_id, str) and call_id != "null" else ""


def read_tool_calls(message: Any) -> list[ToolCall]:
    calls = []
    for call in as_list(get(message, "tool_calls")):
        function = get(call, "function")
        calls.append(
            ToolCall(
                name=get(function, "name", "") or "",
                arguments=_arguments(get(function, "arguments")),
                id=_call_id(call),
            )
        )
    return calls


def read_message(message: Any) -> ContextItem:
    role = get(message, "role", "user") or "user"
    return ContextItem(
        role=role,
        text=text_of(get(message, "content")),
        tool_calls=read_tool_calls(message) if role == "assistant" else [],
        tool_call_id=(get(message, "tool_call_id") or get(message, "name") or "") if role == "tool" else "",
    )


def read_tool_definition(tool: Any) -> ToolDefinition:
    function = get(tool, "function") or tool
    return ToolDefinition(
        name=get(function, "name", "") or get(tool, "type", "") or "",
        description=get(function, "description", "") or "",
        parameters_json=compact_json(get(function, "parameters")),
    )


_message_memo = IdentityMemo(read_message)
_tool_memo = IdentityMemo(read_tool_definition)


def output_type(response_format: Any) -> str | None:
    kind = get(response_format, "type")
    if kind in ("json_object", "json_schema"):
        return "json"
    return "text" if kind == "text" else None


PARAM_NAMES = ParamNames(
    numbers=(
        (sc.REQUEST_MAX_TOKENS, "max_tokens"),
        (sc.REQUEST_TEMPERATURE, "temperature"),
        (sc.REQUEST_TOP_P, "top_p"),
        (sc.REQUEST_TOP_K, "top_k"),
        (sc.REQUEST_FREQUENCY_PENALTY, "frequency_penalty"),
        (sc.REQUEST_PRESENCE_PENALTY, "presence_penalty"),
        (sc.REQUEST_SEED, "random_seed"),
    ),
    stop="stop",
    choices="n",
)


def request_params(kwargs: dict[str, Any], stream: bool) -> dict[str, Any]:
    return read_params(kwargs, PARAM_NAMES, stream=stream, output_type=output_type(kwargs.get("response_format")))


def read_request(base: CallRequest, kwargs: dict[str, Any], stream: bool) -> CallRequest:
    """``stream`` is the method's, not the kwarg's: ``complete`` always answers with JSON and ``stream``
    always with events, whatever ``stream=`` says."""
    base.params = request_params(kwargs, stream)
    base.messages = [_message_memo(m) for m in as_list(kwargs.get("messages"))]
    base.tools = [_tool_memo(t) for t in as_list(kwargs.get("tools"))]
    base.stream = stream
    return base


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    cached = _count(get(get(usage, "prompt_tokens_details"), "cached_tokens"))
    if cached is None:
        cached = _count(get(usage, "num_cached_tokens"))
    return Usage(
        input_tokens=_count(get(usage, "prompt_tokens")),
        output_tokens=_count(get(usage, "completion_tokens")),
        cache_read_tokens=cached,
    )


def read_response(response: Any) -> CallResult:
    result = CallResult(
        response_id=get(response, "id") or None,
        response_model=get(response, "model") or None,
        usage=read_usage(get(response, "usage")),
    )
    for choice in as_list(get(response, "choices")):
        message = get(choice, "message")
        reason = get(choice, "finish_reason")
        result.outputs.append(
            OutputMessage(
                text=text_of(get(message, "content")),
                tool_calls=read_tool_calls(message),
                finish_reason=str(reason) if reason else None,
            )
        )
    return result


def _is_complete_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class _PendingCall:
    __slots__ = ("id", "name", "pieces")

    def __init__(self, call_id: str, name: str) -> None:
        self.id = call_id
        self.name = name
        self.pieces: list[str] = []

    def opens_new(self, call_id: str, name: str) -> bool:
        if call_id:
            return bool(self.id) and call_id != self.id
        return bool(name) and bool(self.name) and _is_complete_json("".join(self.pieces))


class ChunkReader:
    """Accumulates ``CompletionEvent``s (or bare chunks): text and tool calls per choice, finish reasons,
    and the usage of the last chunk."""

    def __init__(self, request: CallRequest) -> None:
        self._result = CallResult()
        self._texts: dict[int, list[str]] = {}
        self._finish: dict[int, str] = {}
        self._calls: dict[int, list[_PendingCall]] = {}  # choice -> calls in arrival order
        self._open: dict[tuple[int, int], _PendingCall] = {}  # (choice, tool index) -> call being assembled

    def feed(self, event: Any) -> None:
        chunk = get(event, "data", event)
        result = self._result
        if result.response_id is None:
            result.response_id = get(chunk, "id") or None
        if not result.response_model:
            result.response_model = get(chunk, "model") or None
        usage = get(chunk, "usage")
        if usage is not None:
            result.usage = read_usage(usage)
        for choice in as_list(get(chunk, "choices")):
            index = get(choice, "index", 0) or 0
            reason = get(choice, "finish_reason")
            if reason:
                self._finish[index] = str(reason)
            delta = get(choice, "delta")
            text = text_of(get(delta, "content"))
            if text:
                self._texts.setdefault(index, []).append(text)
            for call in as_list(get(delta, "tool_calls")):
                self._feed_call(index, call)

    def _feed_call(self, choice: int, call: Any) -> None:
        function = get(call, "function")
        call_id, name = _call_id(call), get(function, "name", "") or ""
        key = (choice, get(call, "index", 0) or 0)
        pending = self._open.get(key)
        if pending is None or pending.opens_new(call_id, name):
            pending = self._open[key] = _PendingCall(call_id, name)
            self._calls.setdefault(choice, []).append(pending)
        pending.id = pending.id or call_id
        pending.name = pending.name or name
        piece = _arguments(get(function, "arguments"))
        if piece:
            pending.pieces.append(piece)

    def result(self) -> CallResult:
        result = self._result
        choices = sorted(set(self._texts) | set(self._finish) | set(self._calls))
        result.outputs = [
            OutputMessage(
                text="".join(self._texts.get(i, ())),
                tool_calls=[
                    ToolCall(name=c.name, arguments="".join(c.pieces), id=c.id) for c in self._calls.get(i, ())
                ],
                finish_reason=self._finish.get(i),
            )
            for i in choices
        ]
        return result
