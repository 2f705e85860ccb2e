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

import contextlib
import functools
import itertools
import json
import re
import socket
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

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

    @property
    def stop_reason(self) -> str:
        return self.finish_reason or ("tool_use" if self.tool_calls else "end_turn")


@dataclass
class RecordedRequest:
    """A request as the server received it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None  # parsed JSON body, None when the body is not a JSON object


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


def split_text(text: str, pieces: int | None) -> list[str]:
    """Cut ``text`` into deltas whose concatenation is exactly ``text``: ``pieces`` near-equal parts, or
    one part per word (each with the whitespace after it)."""
    if not text:
        return []
    if pieces is None:
        return re.findall(r"\s*\S+\s*", text) or [text]
    size, extra = divmod(len(text), max(1, pieces))
    bounds = [0]
    for i in range(max(1, pieces)):
        bounds.append(bounds[-1] + size + (1 if i < extra else 0))
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


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


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; SSE streams use chunked encoding so a cut stream is visibly incomplete."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # without it each small response waits ~40 ms for delayed ACKs
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: tests would otherwise print a line per request."""

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def _dispatch(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        number = fake._record(RecordedRequest(self.command, self.path, headers, body))
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
        frames = [f"event: {e['type']}\ndata: ".encode() + _dumps(e) + b"\n\n" for e in stream_events(turn)]
        if reply.error_event_after is not None:
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            frames = frames[: reply.error_event_after] + [b"event: error\ndata: " + _dumps(error) + b"\n\n"]
        if reply.bad_json:
            frames.insert(1, b"event: content_block_start\ndata: " + TRUNCATED_JSON + b"\n\n")
        self._send_stream(frames, reply)

    def _send_stream(self, frames: list[bytes], reply: Reply) -> None:
        self.send_response(200)
        self._send_headers("text/event-stream; charset=utf-8", reply.headers)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        cut = reply.cut_stream_after
        try:
            for sent, frame in enumerate(frames):
                if cut is not None and sent >= cut:
                    # Closing without the terminating zero-size chunk: the client sees a truncated body.
                    self.close_connection = True
                    return
                chunk = f"{len(frame):x}\r\n".encode() + frame + b"\r\n"
                if sent == len(frames) - 1:
                    chunk += b"0\r\n\r\n"  # same write as the last event, so the client never waits for it
                self.wfile.write(chunk)
        except OSError:
            self.close_connection = True

    def _send_json(self, status: int, payload: dict[str, Any], extra: dict[str, str]) -> None:
        self._send_bytes(status, _dumps(payload), "application/json", extra)

    def _send_error(self, status: int, kind: str, message: str, extra: dict[str, str]) -> None:
        payload = {"type": "error", "error": {"type": kind, "message": message}, "request_id": self._request_id}
        self._send_json(status, payload, extra)

    def _send_bytes(self, status: int, data: bytes, content_type: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        self._send_headers(content_type, extra)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_headers(self, content_type: str, extra: dict[str, str]) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("request-id", self._request_id)
        for name, value in extra.items():
            self.send_header(name, value)


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class _HTTPServer(ThreadingHTTPServer):
    """Serves each connection in a daemon thread and knows the fake."""

    def __init__(self, address: tuple[str, int], fake: FakeAnthropicServer) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()  # open client connections, closed by stop()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are expected here (cut streams, closed SDK streams)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeAnthropicServer:
    """A fake Anthropic API on a local port; use as a context manager or with ``start()``/``stop()``.

    Each ``POST /v1/messages`` takes the next :meth:`enqueue`-d reply, or ``default_reply`` when none is
    queued; ``count_tokens`` never takes one (it answers ``count_tokens_result``, or a word count of the
    request when that is None). Every request is kept in ``requests`` (recorded before it is answered).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.default_reply = Reply()
        self.count_tokens_result: int | None = None
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._turns = itertools.count(1)
        self._calls = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server; clients use ``base_url=url``."""
        if self._httpd is None:
            raise RuntimeError("FakeAnthropicServer is not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> FakeAnthropicServer:
        self._httpd = _HTTPServer((self.host, self.port), self)
        serve = functools.partial(self._httpd.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close kept-alive connections, so no handler thread answers after this."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        for conn in list(self._httpd.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> FakeAnthropicServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        """Forget queued replies, recorded requests and ``count_tokens_result``; restart id numbering."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.count_tokens_result = None
            self._turns = itertools.count(1)
            self._calls = itertools.count(1)

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            return len(self.requests)

    def _take_turn(self, request: dict[str, Any]) -> _Turn:
        with self._lock:
            reply = self._queue.popleft() if self._queue else self.default_reply
            number = next(self._turns)
            calls = [(tc.id or f"toolu_{next(self._calls):04d}", tc) for tc in reply.tool_calls]
        model = reply.model if reply.model is not None else str(request.get("model", ""))
        return _Turn(reply, number, model, calls)
