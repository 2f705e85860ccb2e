"""A local fake of the OpenAI HTTP API, for driving the real ``openai`` SDK without a key or a network.

Tests and the demo point an ``OpenAI``/``AsyncOpenAI`` client at ``server.url + "/v1"`` and script what the
"model" answers with :class:`Reply` objects. The server speaks the documented wire format of Chat
Completions, Responses and Embeddings (JSON bodies and SSE streams), so the SDK's own parsing, streaming
helpers and error mapping run exactly as they would against the real service. That is the point: an
instrumentation tested against mocks of the SDK would not notice when the SDK changes how it reads a stream.

Standard library only, so the demo can import it from the installed package with no extra dependency.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import itertools
import json
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FakeOpenAIServer", "RecordedRequest", "Reply", "ToolCall"]

# What non-stream ``bad_json`` replies send: the start of a chat completion, cut off mid-string.
TRUNCATED_JSON = b'{"id": "chatcmpl-'
EMBEDDING_TOKENS_PER_INPUT = 8
EMBEDDING_DIMENSIONS = 8
ARGUMENT_PIECES = 3  # streamed tool-call arguments arrive in about this many fragments
SYSTEM_FINGERPRINT = "fp_fake"
CHAT_PATH, RESPONSES_PATH, EMBEDDINGS_PATH = "/v1/chat/completions", "/v1/responses", "/v1/embeddings"
# Chat finish reasons that make a Responses API answer "incomplete", and the reason it then gives.
_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}

# OpenAI's error "type" and "code" where the real API names them; otherwise server_error for 5xx and
# invalid_request_error for 4xx, with no code.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass
class ToolCall:
    """A tool call the fake model makes."""

    name: str
    arguments: str  # JSON text exactly as sent on the wire
    id: str = ""  # "call_<n>" is assigned when empty


@dataclass
class Reply:
    """One scripted model response; the fields below ``model`` script failures rather than content."""

    text: str | None = "ok"
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # default: "tool_calls" if tool_calls else "stop"
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    model: str | None = None  # default: the request's model string unchanged
    status: int = 200  # anything else: an OpenAI error body with this status
    error_message: str = "fake error"
    bad_json: bool = False  # 200 whose body is not JSON; streamed: the 2nd SSE event's data is not JSON
    cut_stream_after: int | None = None  # stream: send this many SSE events, then drop the connection
    text_chunks: int | None = None  # stream: this many text deltas (default: one per word)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers

    @property
    def effective_finish_reason(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")


@dataclass
class RecordedRequest:
    """A request as the server received it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None  # parsed JSON body, None when the body is not a JSON object


@dataclass
class _Turn:
    """A reply bound to one request: the numbers and ids every shape of the answer must agree on."""

    reply: Reply
    number: int  # n in chatcmpl-<n>, resp_<n>, msg_<n>
    model: str
    created: int
    calls: list[tuple[int, str, ToolCall]]  # (n in fc_<n>, call id, tool call)

    def chat_usage(self) -> dict[str, Any]:
        r = self.reply
        return {
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "total_tokens": r.prompt_tokens + r.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": r.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": r.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def responses_usage(self) -> dict[str, Any]:
        r = self.reply
        return {
            "input_tokens": r.prompt_tokens,
            # cache_write_tokens and text_tokens are required by the installed SDK's ResponseUsage model.
            "input_tokens_details": {"cached_tokens": r.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": r.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": r.reasoning_tokens},
            "total_tokens": r.prompt_tokens + r.completion_tokens,
            "text_tokens": r.prompt_tokens,
        }


def _split_text(text: str, pieces: int | None) -> list[str]:
    """Cut ``text`` into stream deltas whose concatenation is exactly ``text``.

    With ``pieces`` given, into that many near-equal parts; otherwise one part per word, each keeping the
    whitespace that follows it (leading whitespace stays with the first word).
    """
    if not text:
        return []
    if pieces is None:
        return re.findall(r"\s*\S+\s*", text) or [text]
    size, extra = divmod(len(text), max(1, pieces))
    bounds = [0]
    for i in range(max(1, pieces)):
        bounds.append(bounds[-1] + size + (1 if i < extra else 0))
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _chat_completion(turn: _Turn, choices: int) -> dict[str, Any]:
    reply = turn.reply
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if turn.calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}
            for _, call_id, tc in turn.calls
        ]
    return {
        "id": f"chatcmpl-{turn.number}",
        "object": "chat.completion",
        "created": turn.created,
        "model": turn.model,
        "choices": [
            {"index": i, "message": message, "finish_reason": reply.effective_finish_reason, "logprobs": None}
            for i in range(choices)
        ],
        "usage": turn.chat_usage(),
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "service_tier": "default",
    }


def _chat_chunks(turn: _Turn, choices: int, include_usage: bool) -> list[dict[str, Any]]:
    """The chat.completion.chunk objects of a stream, in order (without the final ``[DONE]``)."""
    reply = turn.reply

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{turn.number}",
            "object": "chat.completion.chunk",
            "created": turn.created,
            "model": turn.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "service_tier": "default",
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            "usage": None,
        }

    chunks = []
    for index in range(choices):
        # A reply with no text opens with content null, as the real API does before tool calls.
        chunks.append(chunk(index, {"role": "assistant", "content": "" if reply.text is not None else None}))
        for piece in _split_text(reply.text or "", reply.text_chunks):
            chunks.append(chunk(index, {"content": piece}))
        for position, (_, call_id, tc) in enumerate(turn.calls):
            opening = {
                "index": position,
                "id": call_id,
                "type": "function",
                "function": {"name": tc.name, "arguments": ""},
            }
            chunks.append(chunk(index, {"tool_calls": [opening]}))
            for piece in _split_text(tc.arguments, ARGUMENT_PIECES):
                fragment = {"index": position, "function": {"arguments": piece}}
                chunks.append(chunk(index, {"tool_calls": [fragment]}))
        chunks.append(chunk(index, {}, reply.effective_finish_reason))
    if include_usage:
        chunks.append({**chunk(0, {}), "choices": [], "usage": turn.chat_usage()})
    return chunks


def _response_items(turn: _Turn) -> list[dict[str, Any]]:
    """The finished ``output`` items of a Responses API answer: a message, then one item per tool call."""
    reply = turn.reply
    items: list[dict[str, Any]] = []
    if reply.text is not None:
        items.append(
            {
                "type": "message",
                "id": f"msg_{turn.number}",
                "status": "incomplete" if _incomplete_reason(reply) else "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}],
            }
        )
    for seq, call_id, tc in turn.calls:
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{seq}",
                "call_id": call_id,
                "name": tc.name,
                "arguments": tc.arguments,
                "status": "completed",
            }
        )
    return items


def _incomplete_reason(reply: Reply) -> str | None:
    return _INCOMPLETE_REASONS.get(reply.effective_finish_reason)


def _response_object(turn: _Turn, request: dict[str, Any], *, finished: bool) -> dict[str, Any]:
    """A ``response`` object; unfinished (as in response.created) it has no output and no usage yet."""
    reason = _incomplete_reason(turn.reply)
    status = ("incomplete" if reason else "completed") if finished else "in_progress"
    return {
        "id": f"resp_{turn.number}",
        "object": "response",
        "created_at": turn.created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": reason} if finished and reason else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": turn.model,
        "output": _response_items(turn) if finished else [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": turn.responses_usage() if finished else None,
        "user": None,
        "metadata": request.get("metadata") or {},
    }


def _response_events(turn: _Turn, request: dict[str, Any]) -> list[dict[str, Any]]:
    """The Responses API stream events, in order, numbered by ``sequence_number``."""
    events: list[dict[str, Any]] = []

    def emit(event_type: str, **fields: Any) -> None:
        events.append({"type": event_type, "sequence_number": len(events), **fields})

    emit("response.created", response=_response_object(turn, request, finished=False))
    emit("response.in_progress", response=_response_object(turn, request, finished=False))
    for output_index, item in enumerate(_response_items(turn)):
        where = {"item_id": item["id"], "output_index": output_index}
        if item["type"] == "message":
            part, text = item["content"][0], item["content"][0]["text"]
            opened = {**item, "status": "in_progress", "content": []}
            emit("response.output_item.added", output_index=output_index, item=opened)
            emit("response.content_part.added", **where, content_index=0, part={**part, "text": ""})
            for piece in _split_text(text, turn.reply.text_chunks):
                emit("response.output_text.delta", **where, content_index=0, delta=piece, logprobs=[])
            emit("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
            emit("response.content_part.done", **where, content_index=0, part=part)
        else:
            opened = {**item, "status": "in_progress", "arguments": ""}
            emit("response.output_item.added", output_index=output_index, item=opened)
            for piece in _split_text(item["arguments"], ARGUMENT_PIECES):
                emit("response.function_call_arguments.delta", **where, delta=piece)
            emit("response.function_call_arguments.done", **where, arguments=item["arguments"])
        emit("response.output_item.done", output_index=output_index, item=item)
    final = _response_object(turn, request, finished=True)
    emit(f"response.{final['status']}", response=final)
    return events


def _embeddings(request: dict[str, Any]) -> dict[str, Any]:
    """One deterministic vector per input item, derived from a hash of the item.

    Components are multiples of 1/128, exact in float32, so ``encoding_format="base64"`` (what the SDK asks
    for by default) decodes to the very same numbers as ``"float"``.
    """
    raw = request.get("input")
    inputs: list[Any] = [raw]  # a lone string or token array is one input
    if isinstance(raw, list) and any(not isinstance(t, int) for t in raw):
        inputs = raw  # a batch: a list of strings or of token arrays
    dims = request.get("dimensions") or EMBEDDING_DIMENSIONS
    data = []
    for index, item in enumerate(inputs):
        digest = hashlib.shake_256(json.dumps(item).encode()).digest(dims)
        vector = [(b - 128) / 128 for b in digest]
        encoded: Any = vector
        if request.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = EMBEDDING_TOKENS_PER_INPUT * len(inputs)
    return {
        "object": "list",
        "data": data,
        "model": request.get("model", ""),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


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
        request_number = fake._record(RecordedRequest(self.command, self.path, headers, body))
        self._request_id = f"req_{request_number}"

        path = urlsplit(self.path).path.rstrip("/")
        if self.command != "POST" or path not in (CHAT_PATH, RESPONSES_PATH, EMBEDDINGS_PATH):
            self._send_error(404, f"Invalid URL ({self.command} {self.path})")
        elif body is None:
            self._send_error(400, "We could not parse the JSON body of your request.")
        elif path == EMBEDDINGS_PATH:
            self._send_json(200, _embeddings(body))
        else:
            self._answer_model_request(path, body, fake._take_turn(body))

    def _answer_model_request(self, path: str, body: dict[str, Any], turn: _Turn) -> None:
        reply = turn.reply
        if reply.status != 200:
            self._send_error(reply.status, reply.error_message, reply.headers)
            return
        is_chat = path == CHAT_PATH
        if not body.get("stream"):
            if reply.bad_json:
                self._send_bytes(200, TRUNCATED_JSON, "application/json", reply.headers)
            elif is_chat:
                self._send_json(200, _chat_completion(turn, int(body.get("n") or 1)), reply.headers)
            else:
                self._send_json(200, _response_object(turn, body, finished=True), reply.headers)
            return
        if is_chat:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = _chat_chunks(turn, int(body.get("n") or 1), include_usage)
            events = [b"data: " + _dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
        else:
            items = _response_events(turn, body)
            events = [f"event: {e['type']}\ndata: ".encode() + _dumps(e) + b"\n\n" for e in items]
        if reply.bad_json:
            events.insert(1, b"data: " + TRUNCATED_JSON + b"\n\n")
        self._send_stream(events, reply)

    def _send_stream(self, events: list[bytes], reply: Reply) -> None:
        self.send_response(200)
        self._send_headers("text/event-stream; charset=utf-8", reply.headers)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        cut = reply.cut_stream_after
        try:
            for sent, event in enumerate(events):
                if cut is not None and sent >= cut:
                    # Closing without the terminating zero-size chunk: the client sees a truncated body.
                    self.close_connection = True
                    return
                frame = f"{len(event):x}\r\n".encode() + event + b"\r\n"
                if sent == len(events) - 1:
                    frame += b"0\r\n\r\n"  # same write as the last event, so the client never waits for it
                self.wfile.write(frame)
        except OSError:
            self.close_connection = True

    def _send_json(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        self._send_bytes(status, _dumps(payload), "application/json", extra or {})

    def _send_error(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        fallback = ("server_error" if status >= 500 else "invalid_request_error", None)
        error_type, code = _ERROR_KINDS.get(status, fallback)
        error = {"message": message, "type": error_type, "param": None, "code": code}
        self._send_json(status, {"error": error}, extra)

    def _send_bytes(self, status: int, data: bytes, content_type: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        self._send_headers(content_type, extra)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_headers(self, content_type: str, extra: dict[str, str]) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("x-request-id", self._request_id)
        for name, value in extra.items():
            self.send_header(name, value)


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class _HTTPServer(ThreadingHTTPServer):
    """Serves each connection in a daemon thread (ThreadingHTTPServer's default) and knows the fake."""

    request_queue_size = 1024  # hundreds of concurrent clients connect at once in tests (default: 5)

    def __init__(self, address: tuple[str, int], fake: FakeOpenAIServer) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()  # open client connections, closed by stop()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are expected here (cut streams, closed SDK streams)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeOpenAIServer:
    """A fake OpenAI API on a local port; use as a context manager or with ``start()``/``stop()``.

    Model requests (chat completions and responses) each take the next :meth:`enqueue`-d reply, or
    ``default_reply`` when none is queued. Embeddings never take one. Every request is kept in
    ``requests`` (recorded before it is answered), so tests can assert on what the SDK sent.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.default_reply = Reply()
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._turns = itertools.count(1)
        self._calls = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server; clients use ``base_url=url + "/v1"``."""
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not started")
        port = self._httpd.server_address[1]
        return f"http://{self.host}:{port}"

    def start(self) -> FakeOpenAIServer:
        self._httpd = _HTTPServer((self.host, self.port), self)
        # A short poll interval keeps stop() quick: shutdown() waits for the serve loop's next poll.
        serve = functools.partial(self._httpd.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
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

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        """Forget queued replies and recorded requests, and restart id numbering (ids stay deterministic)."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
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
            calls = []
            for tc in reply.tool_calls:
                seq = next(self._calls)
                calls.append((seq, tc.id or f"call_{seq}", tc))
        model = reply.model if reply.model is not None else str(request.get("model", ""))
        return _Turn(reply, number, model, int(time.time()), calls)
