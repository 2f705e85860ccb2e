"""A local fake of the Gemini API, for driving the real ``google-genai`` SDK without a key or a network.

Point a client at it with ``genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.url))``
(Vertex AI express mode works the same with ``vertexai=True``) and script what the "model" answers with
:class:`Reply` objects. The server speaks the documented wire format of ``models.generateContent`` (JSON) and
``models.streamGenerateContent?alt=sse`` (SSE ``data:`` events, each a ``GenerateContentResponse``), with
camelCase fields and Google's error body ``{"error": {"code", "message", "status"}}``, so the SDK's own
parsing, streaming and error mapping run exactly as against the real service.

The scripted-reply API mirrors :mod:`otel_tokenkpi.testing.fake_openai` (``Reply(text=..., tool_calls=[...],
finish_reason=..., input_tokens=..., output_tokens=..., cache_read_tokens=...)``), so one test can script
several providers alike. Standard library only.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
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

__all__ = ["FakeGeminiServer", "RecordedRequest", "Reply", "ToolCall"]

# What non-stream ``bad_json`` replies send: the start of a response, cut off mid-string.
TRUNCATED_JSON = b'{"candidates": [{"content": {"parts": [{"text": "'
# /{api_version}/[projects/P/locations/L/][publishers/google/]models/{model}:{method}
_MODEL_PATH = re.compile(r"^/(?P<version>[^/]+)/(?:.+/)?models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")
_GENERATE, _STREAM, _EMBED = "generateContent", "streamGenerateContent", "batchEmbedContents"
EMBEDDING_TOKENS_PER_INPUT = 8  # promptTokenCount of batchEmbedContents, per request in the batch
EMBEDDING_DIMENSIONS = 8
# google.rpc.Code names the Gemini API puts in error.status, by HTTP status.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass
class ToolCall:
    """A function call the fake model makes (a ``functionCall`` part)."""

    name: str
    arguments: str = "{}"  # JSON object text; sent as the part's ``args`` object
    id: str = ""  # sent as ``functionCall.id`` only when set (the Gemini API often omits it)


@dataclass
class Reply:
    """One scripted model response; the fields below ``model`` script failures rather than content.

    Token fields map to ``usageMetadata``: ``input_tokens`` is ``promptTokenCount`` (which, as in the real
    API, already includes ``cachedContentTokenCount`` = ``cache_read_tokens``), ``output_tokens`` is
    ``candidatesTokenCount``; thoughts and tool-use prompt tokens are reported beside them.
    """

    text: str | None = "ok"
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # default "STOP" (Gemini says STOP after function calls too)
    input_tokens: int = 10
    output_tokens: int = 5
    cache_read_tokens: int = 0
    thoughts_tokens: int = 0
    tool_use_prompt_tokens: int = 0
    thought_text: str | None = None  # a thought-summary part (``thought: true``) before the answer
    model: str | None = None  # modelVersion; default: the model named in the request path
    status: int = 200  # anything else: a Google error body with this status
    error_message: str = "fake error"
    bad_json: bool = False  # 200 whose body is not JSON (non-stream only)
    cut_stream_after: int | None = None  # stream: send this many SSE events, then drop the connection
    stream_error_after: int | None = None  # stream: after this many events, send an in-stream error event
    text_chunks: int | None = None  # stream: this many text deltas (default: one per word)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers

    @property
    def effective_finish_reason(self) -> str:
        return self.finish_reason or "STOP"


@dataclass
class RecordedRequest:
    """A request as the server received it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None  # parsed JSON body, None when the body is not a JSON object
    model: str | None = None  # from the path
    api_version: str | None = None


def _split_text(text: str, pieces: int | None) -> list[str]:
    """Cut ``text`` into deltas whose concatenation is exactly ``text`` (per word, or ``pieces`` parts)."""
    if not text:
        return []
    if pieces is None:
        return re.findall(r"\s*\S+\s*", text) or [text]
    size, extra = divmod(len(text), max(1, pieces))
    bounds = [0]
    for i in range(max(1, pieces)):
        bounds.append(bounds[-1] + size + (1 if i < extra else 0))
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@dataclass
class _Turn:
    """A reply bound to one request: the numbers every shape of the answer must agree on."""

    reply: Reply
    number: int
    model: str
    candidates: int

    @property
    def response_id(self) -> str:
        return f"resp-{self.number}"

    def usage(self) -> dict[str, Any]:
        r = self.reply
        total = r.input_tokens + r.output_tokens + r.thoughts_tokens + r.tool_use_prompt_tokens
        usage: dict[str, Any] = {
            "promptTokenCount": r.input_tokens,
            "candidatesTokenCount": r.output_tokens,
            "totalTokenCount": total,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": r.input_tokens}],
        }
        for key, value in (
            ("cachedContentTokenCount", r.cache_read_tokens),
            ("thoughtsTokenCount", r.thoughts_tokens),
            ("toolUsePromptTokenCount", r.tool_use_prompt_tokens),
        ):
            if value:
                usage[key] = value
        return usage

    def partial_usage(self) -> dict[str, Any]:
        """What the API puts on a stream's intermediate chunks: the prompt only."""
        r = self.reply
        return {"promptTokenCount": r.input_tokens, "totalTokenCount": r.input_tokens}

    def parts(self) -> list[dict[str, Any]]:
        reply = self.reply
        parts: list[dict[str, Any]] = []
        if reply.thought_text is not None:
            parts.append({"text": reply.thought_text, "thought": True})
        if reply.text is not None:
            parts.append({"text": reply.text})
        parts.extend(_function_call_part(tc) for tc in reply.tool_calls)
        return parts

    def envelope(self, candidates: list[dict[str, Any]], usage: dict[str, Any]) -> dict[str, Any]:
        return {
            "candidates": candidates,
            "usageMetadata": usage,
            "modelVersion": self.model,
            "responseId": self.response_id,
        }


def _function_call_part(call: ToolCall) -> dict[str, Any]:
    function_call: dict[str, Any] = {"name": call.name, "args": json.loads(call.arguments or "{}")}
    if call.id:
        function_call["id"] = call.id
    return {"functionCall": function_call}


def _candidate(index: int, parts: list[dict[str, Any]], finish_reason: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": index}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    return candidate


def _response(turn: _Turn) -> dict[str, Any]:
    reason = turn.reply.effective_finish_reason
    candidates = [_candidate(i, turn.parts(), reason) for i in range(turn.candidates)]
    return turn.envelope(candidates, turn.usage())


def _stream_chunks(turn: _Turn) -> list[dict[str, Any]]:
    """The ``GenerateContentResponse`` chunks of a stream: a thought chunk, one chunk per text delta,
    one per function call (whole), per candidate; the last one carries the finish reason and full usage."""
    reply = turn.reply
    pieces: list[tuple[int, dict[str, Any]]] = []
    for index in range(turn.candidates):
        if reply.thought_text is not None:
            pieces.append((index, {"text": reply.thought_text, "thought": True}))
        pieces.extend((index, {"text": piece}) for piece in _split_text(reply.text or "", reply.text_chunks))
        pieces.extend((index, _function_call_part(tc)) for tc in reply.tool_calls)
        if not pieces or pieces[-1][0] != index:
            pieces.append((index, {"text": ""}))
    chunks = []
    for position, (index, part) in enumerate(pieces):
        is_last_of_candidate = position + 1 == len(pieces) or pieces[position + 1][0] != index
        reason = reply.effective_finish_reason if is_last_of_candidate else None
        usage = turn.usage() if position + 1 == len(pieces) else turn.partial_usage()
        chunks.append(turn.envelope([_candidate(index, [part], reason)], usage))
    return chunks


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """``batchEmbedContents``: one deterministic vector per request of the batch (a hash of its content)."""
    requests = body.get("requests") or []
    embeddings = []
    for item in requests:
        digest = hashlib.shake_256(json.dumps(item.get("content"), sort_keys=True).encode()).digest(
            EMBEDDING_DIMENSIONS
        )
        embeddings.append({"values": [(b - 128) / 128 for b in digest]})
    tokens = EMBEDDING_TOKENS_PER_INPUT * len(requests)
    return {"embeddings": embeddings, "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens}}


def _error_body(status: int, message: str) -> dict[str, Any]:
    name = _STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": message, "status": name}}


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
        match = _MODEL_PATH.match(urlsplit(self.path).path)
        model = match["model"] if match else None
        fake._record(RecordedRequest(self.command, self.path, headers, body, model, match and match["version"]))
        if self.command != "POST" or match is None or match["method"] not in (_GENERATE, _STREAM, _EMBED):
            self._send_json(404, _error_body(404, f"Invalid URL ({self.command} {self.path})"), {})
        elif body is None:
            self._send_json(400, _error_body(400, "Invalid JSON payload received."), {})
        elif match["method"] == _EMBED:  # embeddings never take a scripted reply
            self._send_json(200, _embeddings(body), {})
        else:
            turn = fake._take_turn(str(model), body)
            self._answer(turn, streamed=match["method"] == _STREAM)

    def _answer(self, turn: _Turn, streamed: bool) -> None:
        reply = turn.reply
        if reply.status != 200:
            self._send_json(reply.status, _error_body(reply.status, reply.error_message), reply.headers)
        elif not streamed:
            if reply.bad_json:
                self._send_bytes(200, TRUNCATED_JSON, "application/json; charset=UTF-8", reply.headers)
            else:
                self._send_json(200, _response(turn), reply.headers)
        else:
            events = [b"data: " + _dumps(chunk) + b"\r\n\r\n" for chunk in _stream_chunks(turn)]
            if reply.stream_error_after is not None:
                error = b"data: " + _dumps(_error_body(500, reply.error_message)) + b"\r\n\r\n"
                events = [*events[: reply.stream_error_after], error]
            self._send_stream(events, reply)

    def _send_stream(self, events: list[bytes], reply: Reply) -> None:
        self.send_response(200)
        self._send_headers("text/event-stream", reply.headers)
        self.send_header("Transfer-Encoding", "chunked")
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

    def _send_json(self, status: int, payload: dict[str, Any], extra: dict[str, str]) -> None:
        self._send_bytes(status, _dumps(payload), "application/json; charset=UTF-8", extra)

    def _send_bytes(self, status: int, data: bytes, content_type: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        self._send_headers(content_type, extra)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_headers(self, content_type: str, extra: dict[str, str]) -> None:
        self.send_header("Content-Type", content_type)
        for name, value in extra.items():
            self.send_header(name, value)


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class _HTTPServer(ThreadingHTTPServer):
    """Serves each connection in a daemon thread and knows the fake."""

    def __init__(self, address: tuple[str, int], fake: FakeGeminiServer) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()  # open client connections, closed by stop()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are expected here (cut streams, closed SDK streams)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeGeminiServer:
    """A fake Gemini API on a local port; use as a context manager or with ``start()``/``stop()``.

    Each generateContent / streamGenerateContent request takes the next :meth:`enqueue`-d reply, or
    ``default_reply`` when none is queued; batchEmbedContents (``embed_content``) never takes one.
    Every request is kept in ``requests`` (recorded before it is answered), so tests can assert on what
    the SDK sent.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.default_reply = Reply()
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._turns = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server (the client's ``base_url``)."""
        if self._httpd is None:
            raise RuntimeError("FakeGeminiServer is not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> FakeGeminiServer:
        self._httpd = _HTTPServer((self.host, self.port), self)
        serve = functools.partial(self._httpd.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name="fake-gemini", daemon=True)
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

    def __enter__(self) -> FakeGeminiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        """Forget queued replies and recorded requests, and restart id numbering."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self._turns = itertools.count(1)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_turn(self, model: str, body: dict[str, Any]) -> _Turn:
        with self._lock:
            reply = self._queue.popleft() if self._queue else self.default_reply
            number = next(self._turns)
        config = body.get("generationConfig") or {}
        candidates = config.get("candidateCount") or 1
        return _Turn(reply, number, reply.model if reply.model is not None else model, int(candidates))
