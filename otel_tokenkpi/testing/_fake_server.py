"""The HTTP scaffolding every fake provider server shares: serving, request reading, response writing, replies.

Each ``fake_<provider>`` module keeps only what is its provider's own (wire format, ``Reply``/``ToolCall``,
routes, error bodies) and builds on the pieces here: :class:`FakeHTTPServer` (the socket server),
:class:`FakeRequestHandler` (one request: read a JSON body, write a JSON body or a chunked stream),
:class:`FakeServer` (the object tests hold: start/stop, ``url``, the scripted-reply queue, recorded requests)
and :class:`RecordedRequest` (what ``requests`` holds; a provider may subclass it to add fields from the path).

Standard library only, so the demo can import the fakes from the installed package with no extra dependency.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import itertools
import json
import re
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, TypeVar

ReplyT = TypeVar("ReplyT")
RequestT = TypeVar("RequestT")
_Server = TypeVar("_Server", bound="FakeServer[Any, Any]")


def dumps(payload: Any) -> bytes:
    """Compact JSON, as the real APIs send it."""
    return json.dumps(payload, separators=(",", ":")).encode()


def split_text(text: str, pieces: int | None) -> list[str]:
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


@dataclass
class RecordedRequest:
    """A request as the server received it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None  # parsed JSON body, None when the body is not a JSON object


class FakeHTTPServer(ThreadingHTTPServer):
    """Serves each connection in a daemon thread (ThreadingHTTPServer's default) and knows the fake.

    It tracks open client connections so :meth:`FakeServer.stop` can close kept-alive ones: otherwise a
    handler thread could still answer after the test that owned the server has finished.
    """

    request_queue_size = 1024  # hundreds of concurrent clients connect at once in tests (default: 5)

    def __init__(self, address: tuple[str, int], handler: type[FakeRequestHandler], fake: FakeServer[Any, Any]) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()  # open client connections, closed by stop()
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are expected here (cut streams, closed SDK streams)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; streams use chunked encoding so a cut stream is visibly incomplete.

    Every method goes to :meth:`_dispatch`, which a provider's handler implements: it records the request
    (``self.fake``), routes it and answers with :meth:`_send_json`, :meth:`_send_bytes` or :meth:`_send_stream`.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # without it each small response waits ~40 ms for delayed ACKs
    json_content_type: ClassVar[str] = "application/json"
    request_id_header: ClassVar[str | None] = None  # the header that carries ``_request_id``, if the API has one
    stream_headers: ClassVar[dict[str, str]] = {}  # sent on every stream response, after the framing header
    server: FakeHTTPServer
    fake: FakeServer[Any, Any]
    _request_id = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: tests would otherwise print a line per request."""

    def setup(self) -> None:
        super().setup()
        self.fake = self.server.fake
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def _dispatch(self) -> None:
        raise NotImplementedError

    def _read_json_body(self) -> dict[str, Any] | None:
        """The request body parsed as JSON, or None when it is empty, not JSON or not a JSON object."""
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _lowered_headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _send_json(
        self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None, *, truncated: bool = False
    ) -> None:
        self._send_bytes(status, dumps(payload), self.json_content_type, extra or {}, truncated=truncated)

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, extra: dict[str, str], *, truncated: bool = False
    ) -> None:
        """A whole body; ``truncated`` announces more bytes than are sent and drops the connection, so the
        client sees a body cut short. JSON goes gzip-compressed (``Content-Encoding: gzip``) when the fake's
        ``gzip_json`` is set and the client accepts it, as the real APIs compress their answers."""
        accepted = "gzip" in (self.headers.get("accept-encoding") or "")
        if self.fake.gzip_json and accepted and content_type.startswith("application/json") and not truncated:
            data = gzip.compress(data)
            extra = {**extra, "Content-Encoding": "gzip"}
        self.send_response(status)
        self._send_headers(content_type, extra)
        self.send_header("Content-Length", str(len(data) + (100 if truncated else 0)))
        self.end_headers()
        self.wfile.write(data)
        if truncated:
            self.close_connection = True

    def _send_stream(
        self, events: list[bytes], content_type: str, extra: dict[str, str], cut_after: int | None = None
    ) -> None:
        """A 200 whose body is ``events``, one chunk each; with ``cut_after``, only that many, then a hang-up
        (a negative ``cut_after`` counts from the end, as in a slice: -1 sends all but the last event)."""
        if cut_after is not None and cut_after < 0:
            cut_after = max(0, len(events) + cut_after)
        self.send_response(200)
        self._send_headers(content_type, extra)
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in self.stream_headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for sent, event in enumerate(events):
                if cut_after is not None and sent >= cut_after:
                    # Closing without the terminating zero-size chunk: the client sees a truncated body.
                    self.close_connection = True
                    return
                frame = f"{len(event):x}\r\n".encode() + event + b"\r\n"
                if sent == len(events) - 1:
                    frame += b"0\r\n\r\n"  # same write as the last event, so the client never waits for it
                self.wfile.write(frame)
        except OSError:
            self.close_connection = True

    def _send_headers(self, content_type: str, extra: dict[str, str]) -> None:
        self.fake._wait_before_answering()  # a reply's ``delay_s``: nothing has reached the wire yet
        self.send_header("Content-Type", content_type)
        if self.request_id_header is not None:
            self.send_header(self.request_id_header, self._request_id)
        for name, value in extra.items():
            self.send_header(name, value)


class FakeServer(Generic[ReplyT, RequestT]):
    """A fake API on a local port; use as a context manager or with ``start()``/``stop()``.

    Model requests each take the next :meth:`enqueue`-d reply, or ``default_reply`` when none is queued.
    Every request is kept in ``requests`` (recorded before it is answered), so tests can assert on what the
    SDK sent. A subclass names its ``handler`` class and ``thread_name``, and turns replies into answers.
    """

    handler: ClassVar[type[FakeRequestHandler]]
    thread_name: ClassVar[str]
    gzip_json = False  # True: JSON answers are gzip-compressed for clients that accept it

    def __init__(self, default_reply: ReplyT, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.default_reply = default_reply
        self.requests: list[RequestT] = []
        self._queue: deque[ReplyT] = deque()
        self._lock = threading.Lock()
        self._turns = itertools.count(1)  # numbers in response ids, so ids are deterministic
        self._calls = itertools.count(1)  # numbers in tool-call ids
        self._httpd: FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._delay = threading.local()  # per handler thread: the delay of the reply it is answering with

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self: _Server) -> _Server:
        self._httpd = FakeHTTPServer((self.host, self.port), self.handler, self)
        # A short poll interval keeps stop() quick: shutdown() waits for the serve loop's next poll.
        serve = functools.partial(self._httpd.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name=self.thread_name, daemon=True)
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

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enqueue(self, *replies: ReplyT) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        """Forget queued replies and recorded requests, and restart id numbering (ids stay deterministic)."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self._turns = itertools.count(1)
            self._calls = itertools.count(1)

    def _record(self, request: RequestT) -> int:
        """Keep ``request``; returns how many have been kept, which numbers request ids."""
        with self._lock:
            self.requests.append(request)
            return len(self.requests)

    def _pop_reply(self) -> tuple[ReplyT, int]:
        """The next queued reply (or the default) and its turn number.

        The caller holds ``_lock``, so the tool-call numbers it then draws follow this turn's number.
        """
        reply = self._queue.popleft() if self._queue else self.default_reply
        self._delay.seconds = float(getattr(reply, "delay_s", 0.0) or 0.0)
        return reply, next(self._turns)

    def _wait_before_answering(self) -> None:
        """Sleep for the ``delay_s`` of the reply this thread took (once), so clients can time out."""
        seconds = getattr(self._delay, "seconds", 0.0)
        self._delay.seconds = 0.0
        if seconds > 0:
            time.sleep(seconds)
