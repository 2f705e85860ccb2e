"""Read Anthropic Messages bodies sent through Bedrock ``InvokeModel`` / ``InvokeModelWithResponseStream``.

The request body is the Anthropic Messages JSON with ``anthropic_version`` ("bedrock-2023-05-31") and no
``model`` (the model is the call's ``modelId``). The response body is an Anthropic message; a response
stream wraps each Anthropic streaming event in ``{"chunk": {"bytes": b"<event JSON>"}}``, the last one
(``message_stop``) carrying Bedrock's ``amazon-bedrock-invocationMetrics``.

Usage: Anthropic's ``input_tokens`` EXCLUDES ``cache_read_input_tokens`` and
``cache_creation_input_tokens``; our input adds them (semconv: input includes cached tokens).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.record import CallRequest, CallResult, ContextItem, OutputMessage, ToolCall, ToolDefinition, Usage

from ._shapes import as_list, compact_json, get, param_number, stop_sequences, text_of


def parse_body(body: Any) -> dict[str, Any] | None:
    """The request body as a JSON object when it is an Anthropic Messages body, else None.

    Only bytes and str are read: a file-like body is the SDK's to stream, and reading it would consume it."""
    if not isinstance(body, (bytes, bytearray, str)):
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) and "anthropic_version" in parsed else None


def _tool_call(block: Any) -> ToolCall:
    return ToolCall(
        name=get(block, "name", "") or "", arguments=compact_json(get(block, "input")), id=get(block, "id", "")
    )


def read_message(message: Any) -> list[ContextItem]:
    """Tool results become ``tool`` items (in block order); text and tool_use blocks make the message's own
    item. Images, documents and thinking blocks carry no counted text."""
    role = get(message, "role", "user") or "user"
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
        elif kind == "tool_use":
            calls.append(_tool_call(block))
        elif kind == "tool_result":
            if texts or calls:
                items.append(ContextItem(role=role, text="".join(texts), tool_calls=calls))
                texts, calls = [], []
            items.append(
                ContextItem(
                    role="tool", text=text_of(get(block, "content")), tool_call_id=get(block, "tool_use_id", "")
                )
            )
    if texts or calls:
        items.append(ContextItem(role=role, text="".join(texts), tool_calls=calls))
    return items


def read_request(base: CallRequest, body: dict[str, Any], stream: bool) -> CallRequest:
    params: dict[str, Any] = {}
    for key, value in (
        (sc.REQUEST_MAX_TOKENS, body.get("max_tokens")),
        (sc.REQUEST_TEMPERATURE, body.get("temperature")),
        (sc.REQUEST_TOP_P, body.get("top_p")),
        (sc.REQUEST_TOP_K, body.get("top_k")),
    ):
        number = param_number(value)
        if number is not None:
            params[key] = number
    stops = stop_sequences(body.get("stop_sequences"))
    if stops:
        params[sc.REQUEST_STOP_SEQUENCES] = stops
    if stream:
        params[sc.REQUEST_STREAM] = True
    base.params, base.stream = params, stream
    system = body.get("system")
    blocks = [system] if isinstance(system, str) else [get(b, "text") for b in as_list(system)]
    base.messages = [ContextItem(role="system", text=t, is_instructions=True) for t in blocks if isinstance(t, str)]
    for message in as_list(body.get("messages")):
        base.messages.extend(read_message(message))
    base.tools = [
        ToolDefinition(
            name=get(tool, "name", "") or "",
            description=get(tool, "description", "") or "",
            parameters_json=compact_json(get(tool, "input_schema")),
        )
        for tool in as_list(body.get("tools"))
    ]
    return base


def read_usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    read = get(usage, "cache_read_input_tokens")
    write = get(usage, "cache_creation_input_tokens")
    uncached = get(usage, "input_tokens")
    return Usage(
        input_tokens=uncached + (read or 0) + (write or 0) if isinstance(uncached, int) else None,
        output_tokens=get(usage, "output_tokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def read_response(message: Any) -> CallResult:
    texts, calls = [], []
    for block in as_list(get(message, "content")):
        kind = get(block, "type")
        if kind == "text":
            texts.append(get(block, "text", "") or "")
        elif kind == "tool_use":
            calls.append(_tool_call(block))
    reason = get(message, "stop_reason")
    return CallResult(
        response_id=get(message, "id"),
        response_model=get(message, "model") or None,
        outputs=[OutputMessage(text="".join(texts), tool_calls=calls, finish_reason=str(reason) if reason else None)],
        usage=read_usage(get(message, "usage")),
    )


class _FailedRaw(io.RawIOBase):
    """The body the user gets when our read failed: their read raises that same error."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def read(self, size: int | None = -1) -> bytes:
        raise self._error


def unwrap_invoke_response(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    """Read an InvokeModel response body (a one-shot ``StreamingBody``) and hand the user an equivalent
    one over the same bytes: their ``response["body"].read()`` returns exactly what it would have."""
    from botocore.response import StreamingBody

    body = result.get("body") if isinstance(result, dict) else None
    if body is None or not hasattr(body, "read"):
        return None, None
    try:
        data = body.read()  # one read, as users do: a failure surfaces exactly as theirs would
    except Exception as exc:  # noqa: BLE001 - the user's own read() raises it instead
        result["body"] = StreamingBody(_FailedRaw(exc), getattr(body, "_content_length", None))
        return None, None
    result["body"] = StreamingBody(io.BytesIO(data), len(data))
    try:
        return json.loads(data), None
    except (ValueError, UnicodeDecodeError):
        return None, None


def unwrap_invoke_stream(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    """The response stream lives at ``result["body"]``: our proxy goes there."""
    if not isinstance(result, dict) or result.get("body") is None:
        return None, None

    def rewrap(proxy: Any) -> Any:
        result["body"] = proxy
        return result

    return result["body"], rewrap


class ChunkReader:
    """Accumulates the Anthropic events inside ``chunk`` events: text and tool-input deltas by block
    index, ``message_start`` input usage, ``message_delta`` stop reason and output usage, and Bedrock's
    invocation metrics as a fallback when the events carry no usage."""

    def __init__(self, request: CallRequest) -> None:
        self._result = CallResult()
        self._texts: list[str] = []
        self._tools: dict[int, list[Any]] = {}  # block index -> [id, name, [input pieces]]
        self._reason: str | None = None
        self._started = False
        self._metrics: Any = None

    def feed(self, event: Any) -> None:
        raw = get(get(event, "chunk"), "bytes")
        if not isinstance(raw, (bytes, str)):
            return
        data = json.loads(raw)
        kind = get(data, "type")
        if kind == "content_block_delta":
            delta = get(data, "delta")
            if get(delta, "type") == "text_delta":
                self._texts.append(get(delta, "text", "") or "")
            elif get(delta, "type") == "input_json_delta":
                self._slot(data)[2].append(get(delta, "partial_json", "") or "")
        elif kind == "content_block_start":
            block = get(data, "content_block")
            if get(block, "type") == "tool_use":
                slot = self._slot(data)
                slot[0], slot[1] = get(block, "id", "") or "", get(block, "name", "") or ""
        elif kind == "message_start":
            self._started = True
            message = get(data, "message")
            self._result.response_id = get(message, "id")
            self._result.response_model = get(message, "model") or None
            self._result.usage = read_usage(get(message, "usage"))
        elif kind == "message_delta":
            reason = get(get(data, "delta"), "stop_reason")
            self._reason = str(reason) if reason else self._reason
            output = get(get(data, "usage"), "output_tokens")
            if isinstance(output, int):
                self._result.usage = self._result.usage or Usage()
                self._result.usage.output_tokens = output
        self._metrics = get(data, "amazon-bedrock-invocationMetrics") or self._metrics

    def _slot(self, data: Any) -> list[Any]:
        return self._tools.setdefault(get(data, "index", 0), ["", "", []])

    def result(self) -> CallResult:
        result = self._result
        if result.usage is None and self._metrics is not None:
            result.usage = Usage(
                input_tokens=get(self._metrics, "inputTokenCount"), output_tokens=get(self._metrics, "outputTokenCount")
            )
        if self._started or self._texts or self._tools or self._reason:
            calls = [
                ToolCall(name=name, arguments="".join(pieces), id=call_id)
                for _, (call_id, name, pieces) in sorted(self._tools.items())
            ]
            result.outputs = [OutputMessage(text="".join(self._texts), tool_calls=calls, finish_reason=self._reason)]
        return result
