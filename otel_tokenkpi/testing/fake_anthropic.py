"""A local fake of the Anthropic Messages API, for driving the real ``anthropic`` SDK without a key or a network.

Tests point an ``Anthropic``/``AsyncAnthropic`` client at ``base_url=server.url`` and script what the "model"
answers with :class:`Reply` objects, as with :mod:`otel_tokenkpi.testing.fake_openai`. The server speaks the
documented wire format: ``POST /v1/messages`` (a ``message`` JSON body, or with ``"stream": true`` the SSE
events ``message_start``, ``content_block_start``, ``ping``, ``content_block_delta`` with ``text_delta`` /
``input_json_delta`` / ``thinking_delta`` / ``signature_delta``, ``content_block_stop``, ``message_delta``
and ``message_stop``), ``POST /v1/messages/count_tokens``, and error bodies
``{"type": "error", "error": {"type", "message"}}``. So the SDK's own parsing, stream helpers and error
mapping run exactly as against the real service.

Token fields of :class:`Reply` are as on the wire: ``input_tokens`` EXCLUDES cache reads and writes.

Standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._fake_server import FakeRequestHandler, FakeServer, RecordedRequest, dumps, split_text

__all__ = ["FakeAnthropicServer", "RecordedRequest", "Reply", "ToolCall"]

MESSAGES_PATH, COUNT_TOKENS_PATH = "/v1/messages", "/v1/messages/count_tokens"
TRUNCATED_JSON = b'{"id": "msg_'  # what ``bad_json`` replies send: a message cut off mid-string
ARGUMENT_PIECES = 3  # streamed tool-use input arrives in about this many input_json_delta fragments
SIGNATURE = "fake-signature"
# The error "type" the API names for each status; other 4xx are invalid_request_error, other 5xx api_error.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class ToolCall:
    """A ``tool_use`` block the fake model emits."""

    name: str
    arguments: str  # JSON object text; sent as ``input`` (parsed) or as input_json_delta pieces of this text
    id: str = ""  # "toolu_<n>" is assigned when empty


@dataclass
class Reply:
    """One scripted model response; the fields below ``model`` script failures rather than content."""

    text: str | None = "ok"
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # the stop_reason; default: "tool_use" if tool_calls else "end_turn"
    input_tokens: int = 10  # uncached input, as Anthropic reports it
    output_tokens: int = 5
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # cache_creation_input_tokens
    thinking: str | None = None  # a thinking block before the text
    thinking_tokens: int | None = None  # usage.output_tokens_details.thinking_tokens, when set
    stop_sequence: str | None = None
    start_output_tokens: int = 1  # the placeholder output count of message_start
    usage_in_delta: bool = False  # message_delta repeats input and cache counts (newer API versions)
    model: str | None = None  # default: the request's model string unchanged
    status: int = 200  # anything else: an Anthropic error body with this status
    error_message: str = "fake error"
    error_type: str | None = None  # default: the API's type for ``status``
    bad_json: bool = False  # 200 whose body is not JSON; streamed: the 2nd SSE event's data is not JSON
    cut_stream_after: int | None = None  # stream: send this many SSE events, then drop the connection
    error_event_after: int | None = None  # stream: after this many events, an ``error`` event (overloaded)
    text_chunks: int | None = None  # stream: this many text deltas (default: one per word)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    delay_s: float = 0.0  # seconds the server waits before answering (to make a client time out)

    @property
    def stop_reason(self) -> str:
        return self.finish_reason or ("tool_use" if self.tool_calls else "end_turn")


@dataclass
class _Turn:
    """A reply bound to one request: the id and tool ids every shape of the answer agrees on."""

    reply: Reply
    number: int
    model: str
    calls: list[tuple[str, ToolCall]]  # (tool_use id, tool call)

    def usage(self, output_tokens: int, *, with_input: bool = True, final: bool = True) -> dict[str, Any]:
        r = self.reply
        usage: dict[str, Any] = {}
        if with_input:
            usage.update(
                input_tokens=r.input_tokens,
                cache_creation_input_tokens=r.cache_write_tokens,
                cache_read_input_tokens=r.cache_read_tokens,
            )
        usage["output_tokens"] = output_tokens
        if r.thinking_tokens is not None and final:
            usage["output_tokens_details"] = {"thinking_tokens": r.thinking_tokens}
        return usage

    def content(self) -> list[dict[str, Any]]:
        r = self.reply
        blocks: list[dict[str, Any]] = []
        if r.thinking is not None:
            blocks.append({"type": "thinking", "thinking": r.thinking, "signature": SIGNATURE})
        if r.text:
            blocks.append({"type": "text", "text": r.text})
        for call_id, tc in self.calls:
            blocks.append({"type": "tool_use", "id": call_id, "name": tc.name, "input": json.loads(tc.arguments)})
        return blocks

    def message(self, *, finished: bool = True) -> dict[str, Any]:
        r = self.reply
        return {
            "id": f"msg_{self.number:04d}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content() if finished else [],
            "stop_reason": r.stop_reason if finished else None,
            "stop_sequence": r.stop_sequence if finished else None,
            "usage": {
                **self.usage(r.output_tokens if finished else r.start_output_tokens, final=finished),
                "service_tier": "standard",
            },
        }


def stream_events(turn: _Turn) -> list[dict[str, Any]]:
    """The SSE events of a streamed answer, in order; each has a ``type`` that is also its event name."""
    reply = turn.reply
    events: list[dict[str, Any]] = [{"type": "message_start", "message": turn.message(finished=False)}]
    for index, block in enumerate(turn.content()):
        kind = block["type"]
        opened = {**block, "input": {}} if kind == "tool_use" else {**block, kind: ""}
        if kind == "thinking":
            opened["signature"] = ""
        events.append({"type": "content_block_start", "index": index, "content_block": opened})
        if index == 0:
            events.append({"type": "ping"})
        if kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": p} for p in split_text(block["thinking"], None)]
            deltas.append({"type": "signature_delta", "signature": SIGNATURE})
        elif kind == "text":
            deltas = [{"type": "text_delta", "text": p} for p in split_text(block["text"], reply.text_chunks)]
        else:
            arguments = dict(turn.calls)[block["id"]].arguments
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in split_text(arguments, ARGUMENT_PIECES)]
        events.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        events.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence}
    usage = turn.usage(reply.output_tokens, with_input=reply.usage_in_delta)
    events.append({"type": "message_delta", "delta": delta, "usage": usage})
    events.append({"type": "message_stop"})
    return events


def count_tokens(body: dict[str, Any]) -> int:
    """A deterministic stand-in for the real count: words in every string of system, messages and tools."""

    def words(value: Any) -> int:
        if isinstance(value, str):
            return len(value.split())
        if isinstance(value, dict):
            return sum(words(v) for v in value.values())
        if isinstance(value, list):
            return sum(words(v) for v in value)
        return 0

    return words(body.get("system")) + words(body.get("messages")) + words(body.get("tools"))


class _Handler(FakeRequestHandler):
    """Routes ``/v1/messages`` and ``count_tokens``; SSE streams are chunked (see FakeRequestHandler)."""

    request_id_header = "request-id"
    stream_headers = {"Cache-Control": "no-cache"}
    fake: FakeAnthropicServer

    def _dispatch(self) -> None:
        fake = self.fake
        body = self._read_json_body()
        number = fake._record(RecordedRequest(self.command, self.path, self._lowered_headers(), body))
        self._request_id = f"req_{number:04d}"

        path = urlsplit(self.path).path.rstrip("/")
        if self.command != "POST" or path not in (MESSAGES_PATH, COUNT_TOKENS_PATH):
            self._send_error(404, "not_found_error", f"Not found: {self.command} {self.path}", {})
        elif body is None:
            self._send_error(400, "invalid_request_error", "There was an issue with the JSON body.", {})
        elif path == COUNT_TOKENS_PATH:
            result = fake.count_tokens_result
            self._send_json(200, {"input_tokens": count_tokens(body) if result is None else result}, {})
        else:
            self._answer(body, fake._take_turn(body))

    def _answer(self, body: dict[str, Any], turn: _Turn) -> None:
        reply = turn.reply
        if reply.status != 200:
            kind = (
                reply.error_type
                or _ERROR_TYPES.get(reply.status)
                or ("api_error" if reply.status >= 500 else "invalid_request_error")
            )
            self._send_error(reply.status, kind, reply.error_message, reply.headers)
            return
        if not body.get("stream"):
            if reply.bad_json:
                self._send_bytes(200, TRUNCATED_JSON, "application/json", reply.headers)
            else:
                self._send_json(200, turn.message(), reply.headers)
            return
        frames = [f"event: {e['type']}\ndata: ".encode() + dumps(e) + b"\n\n" for e in stream_events(turn)]
        if reply.error_event_after is not None:
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            frames = frames[: reply.error_event_after] + [b"event: error\ndata: " + dumps(error) + b"\n\n"]
        if reply.bad_json:
            frames.insert(1, b"event: content_block_start\ndata: " + TRUNCATED_JSON + b"\n\n")
        self._send_stream(frames, "text/event-stream; charset=utf-8", reply.headers, reply.cut_stream_after)

    def _send_error(self, status: int, kind: str, message: str, extra: dict[str, str]) -> None:
        payload = {"type": "error", "error": {"type": kind, "message": message}, "request_id": self._request_id}
        self._send_json(status, payload, extra)


class FakeAnthropicServer(FakeServer[Reply, RecordedRequest]):
    """A fake Anthropic API on a local port; use as a context manager or with ``start()``/``stop()``.

    Clients use ``base_url=server.url``. Each ``POST /v1/messages`` takes the next :meth:`enqueue`-d reply,
    or ``default_reply`` when none is queued; ``count_tokens`` never takes one (it answers
    ``count_tokens_result``, or a word count of the request when that is None). Every request is kept in
    ``requests`` (recorded before it is answered).
    """

    handler = _Handler
    thread_name = "fake-anthropic"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Reply(), host, port)
        self.count_tokens_result: int | None = None

    def reset(self) -> None:
        """Forget queued replies, recorded requests and ``count_tokens_result``; restart id numbering."""
        super().reset()
        self.count_tokens_result = None

    def _take_turn(self, request: dict[str, Any]) -> _Turn:
        with self._lock:
            reply, number = self._pop_reply()
            calls = [(tc.id or f"toolu_{next(self._calls):04d}", tc) for tc in reply.tool_calls]
        model = reply.model if reply.model is not None else str(request.get("model", ""))
        return _Turn(reply, number, model, calls)
