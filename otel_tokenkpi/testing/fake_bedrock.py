"""A local fake of Amazon Bedrock Runtime, for driving the real ``boto3`` client without AWS.

Point ``boto3.client("bedrock-runtime", endpoint_url=server.url, ...)`` at it and script what the "model"
answers with :class:`Reply` objects (the same shape as :mod:`otel_tokenkpi.testing.fake_openai`). It speaks
Bedrock Runtime's REST-JSON wire format:

- ``POST /model/{modelId}/converse`` and ``/converse-stream`` (Converse API);
- ``POST /model/{modelId}/invoke`` and ``/invoke-with-response-stream`` with an Anthropic Messages body
  (``anthropic_version``) answered in the Anthropic Messages shape, or with any other body answered in an
  Amazon Titan Text shape (an "other model family");
- ``GET /async-invoke`` (ListAsyncInvokes: an operation nobody instruments, for overhead measurements).

Streams use the real AWS event stream framing (``application/vnd.amazon.eventstream``), encoded by
:func:`encode_event` from the published binary layout, so botocore's own decoder and parser run exactly as
against AWS. Errors carry ``x-amzn-errortype`` and a JSON ``{"message": ...}`` body, as AWS sends them.

Standard library only.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import socket
import sys
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from ._bedrock_wire import (
    Reply,
    ToolCall,
    Turn,
    anthropic_events,
    anthropic_message,
    chunk_event,
    converse_body,
    converse_events,
    dumps,
    encode_event,
    exception_event,
    titan_text,
)

__all__ = ["FakeBedrockServer", "RecordedRequest", "Reply", "ToolCall", "encode_event"]

EVENT_STREAM = "application/vnd.amazon.eventstream"
# x-amzn-errortype by HTTP status, where the Bedrock Runtime API reference names one.
_ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


@dataclass
class RecordedRequest:
    """A request as the server received it; header names are lower-cased, ``model_id`` URL-decoded."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None  # parsed JSON body, None when the body is not a JSON object
    model_id: str | None = None


# --- HTTP ---------------------------------------------------------------------------------------------

_OPERATIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream")


class _Handler(BaseHTTPRequestHandler):
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

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_GET

    def _dispatch(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else None
        parts = urlsplit(self.path).path.strip("/").split("/")
        model_id = unquote(parts[1]) if len(parts) == 3 and parts[0] == "model" else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        number = fake._record(RecordedRequest(self.command, self.path, headers, body, model_id))
        self._request_id = f"00000000-0000-4000-8000-{number:012d}"
        if self.command == "GET" and parts == ["async-invoke"]:
            self._send_json(200, {"asyncInvokeSummaries": []})
        elif self.command != "POST" or model_id is None or parts[2] not in _OPERATIONS:
            self._send_error(404, "UnknownOperationException", "Unknown operation")
        elif body is None:
            self._send_error(400, "ValidationException", "Malformed input request, please reformat your input.")
        else:
            self._answer(parts[2], body, fake._take_turn(model_id))

    def _answer(self, operation: str, body: dict[str, Any], turn: Turn) -> None:
        reply = turn.reply
        if reply.status != 200:
            error_type = reply.error_type or _ERROR_TYPES.get(reply.status, "InternalServerException")
            self._send_error(reply.status, error_type, reply.error_message, reply.headers)
            return
        anthropic = "anthropic_version" in body
        if operation == "converse":
            self._send_json(200, converse_body(turn), reply.headers)
        elif operation == "converse-stream":
            self._send_stream(converse_events(turn), reply, {})
        elif operation == "invoke":
            answer = anthropic_message(turn) if anthropic else titan_text(turn)
            self._send_json(200, answer, reply.headers, cut=reply.cut_body)
        else:
            events = [chunk_event(e) for e in anthropic_events(turn)] if anthropic else [chunk_event(titan_text(turn))]
            if reply.stream_error:
                events = [*events[:-1], exception_event(reply.stream_error, reply.error_message)]
            self._send_stream(events, reply, {"X-Amzn-Bedrock-Content-Type": "application/json"})

    def _send_stream(self, events: list[bytes], reply: Reply, extra: dict[str, str]) -> None:
        self.send_response(200)
        self._send_headers(EVENT_STREAM, {**extra, **reply.headers})
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        cut = reply.cut_stream_after
        try:
            for sent, event in enumerate(events):
                if cut is not None and sent >= cut:
                    self.close_connection = True  # no terminating chunk: the client sees a truncated body
                    return
                frame = f"{len(event):x}\r\n".encode() + event + b"\r\n"
                if sent == len(events) - 1:
                    frame += b"0\r\n\r\n"
                self.wfile.write(frame)
        except OSError:
            self.close_connection = True

    def _send_json(
        self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None, cut: bool = False
    ) -> None:
        data = dumps(payload)
        self.send_response(status)
        self._send_headers("application/json", extra or {})
        self.send_header("Content-Length", str(len(data) + (100 if cut else 0)))
        self.end_headers()
        self.wfile.write(data)
        if cut:
            self.close_connection = True

    def _send_error(self, status: int, error_type: str, message: str, extra: dict[str, str] | None = None) -> None:
        self._send_json(status, {"message": message}, {"x-amzn-errortype": f"{error_type}:", **(extra or {})})

    def _send_headers(self, content_type: str, extra: dict[str, str]) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("x-amzn-RequestId", self._request_id)
        for name, value in extra.items():
            self.send_header(name, value)


class _HTTPServer(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], fake: FakeBedrockServer) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are expected here (cut and closed streams)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeBedrockServer:
    """A fake Bedrock Runtime on a local port; use as a context manager or with ``start()``/``stop()``.

    Model requests each take the next :meth:`enqueue`-d reply, or ``default_reply``. Every request is
    kept in ``requests`` (recorded before it is answered).
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
        """``http://HOST:PORT``: the client's ``endpoint_url``."""
        if self._httpd is None:
            raise RuntimeError("FakeBedrockServer is not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> FakeBedrockServer:
        self._httpd = _HTTPServer((self.host, self.port), self)
        serve = functools.partial(self._httpd.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name="fake-bedrock", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
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

    def __enter__(self) -> FakeBedrockServer:
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
            self._calls = itertools.count(1)

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            return len(self.requests)

    def _take_turn(self, model_id: str) -> Turn:
        with self._lock:
            reply = self._queue.popleft() if self._queue else self.default_reply
            number = next(self._turns)
            calls = [(tc.id or f"tooluse_{next(self._calls)}", tc) for tc in reply.tool_calls]
        return Turn(reply, number, model_id, calls)
