"""What Bedrock Runtime sends, for the fake server: scripted replies, response bodies and event streams.

Shapes from the Bedrock Runtime API reference (Converse, ConverseStream, InvokeModel,
InvokeModelWithResponseStream) and the Anthropic Messages API as Bedrock wraps it; the event stream framing
from the AWS event stream encoding (prelude, typed headers, payload, CRC32s). Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from ._fake_server import dumps

ARGUMENT_PIECES = 3  # streamed tool-use input arrives in about this many fragments


@dataclass
class ToolCall:
    """A tool call the fake model makes (Converse ``toolUse`` / Anthropic ``tool_use``)."""

    name: str
    arguments: str  # JSON text of the tool input, exactly as streamed
    id: str = ""  # "tooluse_<n>" is assigned when empty


@dataclass
class Reply:
    """One scripted model response; the fields below ``model`` script failures rather than content.

    Usage numbers are what the wire reports: ``input_tokens`` is Bedrock's ``inputTokens`` (Anthropic's
    ``input_tokens``), which EXCLUDES the cache reads and writes reported beside it.
    """

    text: str | None = "ok"
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # default: "tool_use" if tool_calls else "end_turn"
    input_tokens: int = 10
    output_tokens: int = 5
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    model: str | None = None  # Anthropic bodies' "model"; default: derived from the model id
    status: int = 200  # anything else: an AWS error with this status
    error_message: str = "fake error"
    error_type: str | None = None  # x-amzn-errortype; default from the status
    cut_stream_after: int | None = None  # stream: send this many events, then drop the connection
    cut_body: bool = False  # non-stream: announce a longer Content-Length than sent, then drop the connection
    bad_json: bool = False  # Converse: a 200 whose JSON body is cut off mid-way
    stream_error: str | None = None  # stream: after the content, an exception event of this type
    text_chunks: int | None = None  # stream: this many text deltas (default: one per word)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    delay_s: float = 0.0  # seconds the server waits before answering (to make a client time out)

    @property
    def effective_finish_reason(self) -> str:
        return self.finish_reason or ("tool_use" if self.tool_calls else "end_turn")


def _split_text(text: str, pieces: int | None) -> list[str]:
    """Stream deltas whose concatenation is exactly ``text``: ``pieces`` near-equal parts, else one per word."""
    if not text:
        return []
    if pieces is None:
        return re.findall(r"\s*\S+\s*", text) or [text]
    size = -(-len(text) // max(1, pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event stream message: prelude (total length, headers length, prelude CRC32), headers
    (name length u8, name, type 7 = string, value length u16, value), payload, message CRC32 over
    everything before it. All integers big-endian."""
    encoded_headers = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded_headers += struct.pack("!B", len(raw_name)) + raw_name
        encoded_headers += struct.pack("!BH", 7, len(raw_value)) + raw_value
    total = 12 + len(encoded_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded_headers))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded_headers + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def _event(event_type: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_event(headers, dumps(payload))


def exception_event(exception_type: str, message: str) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_event(headers, dumps({"message": message}))


@dataclass
class Turn:
    """A reply bound to one request, with the ids every shape of the answer must agree on."""

    reply: Reply
    number: int
    model_id: str
    calls: list[tuple[str, ToolCall]]  # (tool use id, call)

    @property
    def anthropic_model(self) -> str:
        if self.reply.model is not None:
            return self.reply.model
        name = self.model_id.rsplit("/", 1)[-1].split("anthropic.", 1)[-1]
        head, sep, tail = name.rpartition("-v")
        return head if sep and tail.replace(":", "").isdigit() else name


# --- Converse ---------------------------------------------------------------------------------------


def _converse_usage(reply: Reply) -> dict[str, int]:
    usage = {
        "inputTokens": reply.input_tokens,
        "outputTokens": reply.output_tokens,
        "totalTokens": reply.input_tokens + reply.output_tokens + reply.cache_read_tokens + reply.cache_write_tokens,
    }
    if reply.cache_read_tokens or reply.cache_write_tokens:
        usage["cacheReadInputTokens"] = reply.cache_read_tokens
        usage["cacheWriteInputTokens"] = reply.cache_write_tokens
    return usage


def converse_body(turn: Turn) -> dict[str, Any]:
    reply = turn.reply
    content: list[dict[str, Any]] = [{"text": reply.text}] if reply.text is not None else []
    for call_id, tc in turn.calls:
        content.append({"toolUse": {"toolUseId": call_id, "name": tc.name, "input": json.loads(tc.arguments)}})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": reply.effective_finish_reason,
        "usage": _converse_usage(reply),
        "metrics": {"latencyMs": 42},
    }


def converse_events(turn: Turn) -> list[bytes]:
    reply = turn.reply
    events = [_event("messageStart", {"role": "assistant"})]
    index = 0
    if reply.text is not None:
        for piece in _split_text(reply.text, reply.text_chunks):
            events.append(_event("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": index}))
        events.append(_event("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    for call_id, tc in turn.calls:
        start = {"toolUse": {"toolUseId": call_id, "name": tc.name}}
        events.append(_event("contentBlockStart", {"start": start, "contentBlockIndex": index}))
        for piece in _split_text(tc.arguments, ARGUMENT_PIECES):
            delta = {"delta": {"toolUse": {"input": piece}}, "contentBlockIndex": index}
            events.append(_event("contentBlockDelta", delta))
        events.append(_event("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    if reply.stream_error:
        return [*events, exception_event(reply.stream_error, reply.error_message)]
    events.append(_event("messageStop", {"stopReason": reply.effective_finish_reason}))
    events.append(_event("metadata", {"usage": _converse_usage(reply), "metrics": {"latencyMs": 42}}))
    return events


# --- InvokeModel: Anthropic Messages bodies and one other family ------------------------------------


def _anthropic_usage(reply: Reply, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": reply.input_tokens,
        "cache_creation_input_tokens": reply.cache_write_tokens,
        "cache_read_input_tokens": reply.cache_read_tokens,
        "output_tokens": output_tokens,
    }


def anthropic_message(turn: Turn) -> dict[str, Any]:
    reply = turn.reply
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text is not None else []
    for call_id, tc in turn.calls:
        content.append({"type": "tool_use", "id": call_id, "name": tc.name, "input": json.loads(tc.arguments)})
    return {
        "id": f"msg_bdrk_{turn.number:04d}",
        "type": "message",
        "role": "assistant",
        "model": turn.anthropic_model,
        "content": content,
        "stop_reason": reply.effective_finish_reason,
        "stop_sequence": None,
        "usage": _anthropic_usage(reply, reply.output_tokens),
    }


def anthropic_events(turn: Turn) -> list[dict[str, Any]]:
    """The Anthropic streaming events Bedrock wraps in ``chunk`` events, in order."""
    reply = turn.reply
    opening = {**anthropic_message(turn), "content": [], "stop_reason": None, "usage": _anthropic_usage(reply, 1)}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": opening}]
    index = 0
    if reply.text is not None:
        events.append({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
        for piece in _split_text(reply.text, reply.text_chunks):
            events.append(
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
            )
        events.append({"type": "content_block_stop", "index": index})
        index += 1
    for call_id, tc in turn.calls:
        block = {"type": "tool_use", "id": call_id, "name": tc.name, "input": {}}
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        for piece in _split_text(tc.arguments, ARGUMENT_PIECES):
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
        index += 1
    stop = {"stop_reason": reply.effective_finish_reason, "stop_sequence": None}
    events.append({"type": "message_delta", "delta": stop, "usage": {"output_tokens": reply.output_tokens}})
    metrics = {
        "inputTokenCount": reply.input_tokens,
        "outputTokenCount": reply.output_tokens,
        "invocationLatency": 42,
        "firstByteLatency": 7,
    }
    events.append({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics})
    return events


def titan_text(turn: Turn) -> dict[str, Any]:
    """Amazon Titan Text's response body: a family whose shape instrumentation does not read."""
    reply = turn.reply
    result = {"tokenCount": reply.output_tokens, "outputText": reply.text or "", "completionReason": "FINISH"}
    return {"inputTextTokenCount": reply.input_tokens, "results": [result]}


def chunk_event(payload: dict[str, Any]) -> bytes:
    return _event("chunk", {"bytes": base64.b64encode(dumps(payload)).decode()})
