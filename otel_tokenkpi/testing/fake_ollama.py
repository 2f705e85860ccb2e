"""A local fake of the Ollama HTTP API, for driving the real ``ollama`` SDK without a model or a GPU.

Point a client at it with ``ollama.Client(host=server.url)`` (or ``AsyncClient``) and script what the "model"
answers with :class:`Reply` objects. The server speaks the documented wire format of ``/api/chat``,
``/api/generate`` and ``/api/embed`` (docs/api.md of ollama/ollama): one JSON object for ``"stream": false``;
otherwise (the API's default) newline-delimited JSON (``application/x-ndjson``), one object per line, the
last with ``"done": true``, ``done_reason``, ``prompt_eval_count``, ``eval_count`` and the durations. Errors
are ``{"error": "..."}`` with an HTTP status, or, mid-stream, a line ``{"error": "..."}``, as the server
sends them, so the SDK's own parsing and error mapping run exactly as against a real server.

The scripted-reply API mirrors :mod:`otel_tokenkpi.testing.fake_openai` (``Reply(text=..., tool_calls=[...],
finish_reason=..., input_tokens=..., output_tokens=...)``), so one test can script several providers alike.
Ollama has no tool-call ids and reports no cache counts: ``ToolCall.id`` and ``Reply.cache_read_tokens`` are
accepted for that parity and never sent. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._fake_server import FakeRequestHandler, FakeServer, RecordedRequest, dumps, split_text

__all__ = ["FakeOllamaServer", "RecordedRequest", "Reply", "ToolCall"]

CHAT_PATH, GENERATE_PATH, EMBED_PATH = "/api/chat", "/api/generate", "/api/embed"
# What non-stream ``bad_json`` replies send: the start of a response, cut off mid-string.
TRUNCATED_JSON = b'{"model": "'
EMBEDDING_DIMENSIONS = 8
CREATED_AT = "2025-01-01T00:00:00.000000Z"
# Durations (nanoseconds) every final object reports; fixed so answers are deterministic.
DURATIONS = {"total_duration": 5_000_000, "load_duration": 1_000_000, "prompt_eval_duration": 2_000_000}
EVAL_DURATION = 2_000_000


@dataclass
class ToolCall:
    """A tool call the fake model makes: ``arguments`` is JSON object text, sent as a JSON object."""

    name: str
    arguments: str = "{}"
    id: str = ""  # accepted for parity with the other fakes; Ollama sends no tool-call id


@dataclass
class Reply:
    """One scripted model response; the fields below ``model`` script failures rather than content.

    ``input_tokens`` is ``prompt_eval_count`` and ``output_tokens`` is ``eval_count``; ``None`` leaves the
    field out, as Ollama does when the whole prompt came from its KV cache.
    """

    text: str | None = "ok"
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # done_reason; default "stop" (Ollama says stop after tool calls too)
    input_tokens: int | None = 10
    output_tokens: int | None = 5
    cache_read_tokens: int = 0  # not on Ollama's wire: parity with the other fakes only
    thinking: str | None = None  # the message's (or generate's) ``thinking`` text
    model: str | None = None  # default: the request's model
    status: int = 200  # anything else: an Ollama error body with this status
    error_message: str = "fake error"
    bad_json: bool = False  # 200 whose body is not JSON (non-stream only)
    cut_stream_after: int | None = None  # stream: send this many lines, then drop the connection
    stream_error_after: int | None = None  # stream: after this many lines, send an in-stream {"error": ...}
    text_chunks: int | None = None  # stream: this many text pieces (default: one per word)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    delay_s: float = 0.0  # seconds the server waits before answering (to make a client time out)

    @property
    def effective_finish_reason(self) -> str:
        return self.finish_reason or "stop"


def _final_fields(reply: Reply) -> dict[str, Any]:
    """``done``, ``done_reason``, the counts and durations of a final object."""
    fields: dict[str, Any] = {"done": True, "done_reason": reply.effective_finish_reason, **DURATIONS}
    if reply.input_tokens is not None:
        fields["prompt_eval_count"] = reply.input_tokens
    if reply.output_tokens is not None:
        fields["eval_count"] = reply.output_tokens
        fields["eval_duration"] = EVAL_DURATION
    return fields


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [{"function": {"name": tc.name, "arguments": json.loads(tc.arguments or "{}")}} for tc in reply.tool_calls]


def _message(reply: Reply, text: str, *, calls: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls and reply.tool_calls:
        message["tool_calls"] = _tool_calls(reply)
    return message


def _chat_lines(reply: Reply, model: str) -> list[dict[str, Any]]:
    """A chat stream: thinking, then text pieces, then one object per tool call, then the final object."""
    head = {"model": model, "created_at": CREATED_AT}
    lines: list[dict[str, Any]] = []
    for piece in split_text(reply.thinking or "", None):
        lines.append({**head, "message": {"role": "assistant", "content": "", "thinking": piece}, "done": False})
    for piece in split_text(reply.text or "", reply.text_chunks):
        lines.append({**head, "message": {"role": "assistant", "content": piece}, "done": False})
    for call in _tool_calls(reply):
        lines.append({**head, "message": {"role": "assistant", "content": "", "tool_calls": [call]}, "done": False})
    lines.append({**head, "message": {"role": "assistant", "content": ""}, **_final_fields(reply)})
    return lines


def _chat_object(reply: Reply, model: str) -> dict[str, Any]:
    message = _message(reply, reply.text or "", calls=True)
    if reply.thinking:
        message["thinking"] = reply.thinking
    return {"model": model, "created_at": CREATED_AT, "message": message, **_final_fields(reply)}


def _generate_lines(reply: Reply, model: str) -> list[dict[str, Any]]:
    head = {"model": model, "created_at": CREATED_AT}
    lines = [{**head, "response": "", "thinking": p, "done": False} for p in split_text(reply.thinking or "", None)]
    lines += [{**head, "response": p, "done": False} for p in split_text(reply.text or "", reply.text_chunks)]
    lines.append({**head, "response": "", **_final_fields(reply), "context": [1, 2, 3]})
    return lines


def _generate_object(reply: Reply, model: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"model": model, "created_at": CREATED_AT, "response": reply.text or ""}
    if reply.thinking:
        answer["thinking"] = reply.thinking
    return {**answer, **_final_fields(reply), "context": [1, 2, 3]}


def _embed_object(reply: Reply, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """One deterministic vector per input, derived from a hash of the input."""
    raw = body.get("input")
    inputs = raw if isinstance(raw, list) else [raw]
    dims = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
    vectors = [[(b - 128) / 128 for b in hashlib.shake_256(json.dumps(i).encode()).digest(dims)] for i in inputs]
    answer: dict[str, Any] = {"model": model, "embeddings": vectors, "total_duration": 3_000_000}
    answer["load_duration"] = 1_000_000
    if reply.input_tokens is not None:
        answer["prompt_eval_count"] = reply.input_tokens
    return answer


class _Handler(FakeRequestHandler):
    """Routes ``/api/chat``, ``/api/generate`` and ``/api/embed``; streams are chunked NDJSON."""

    request_id_header = None
    fake: FakeOllamaServer

    def _dispatch(self) -> None:
        body = self._read_json_body()
        self.fake._record(RecordedRequest(self.command, self.path, self._lowered_headers(), body))
        path = urlsplit(self.path).path.rstrip("/")
        if self.command != "POST" or path not in (CHAT_PATH, GENERATE_PATH, EMBED_PATH):
            self._send_error(404, "404 page not found")
            return
        if body is None:
            self._send_error(400, "invalid request body")
            return
        reply = self.fake._take_reply()
        model = reply.model if reply.model is not None else str(body.get("model", ""))
        if reply.status != 200:
            self._send_error(reply.status, reply.error_message, reply.headers)
        elif path == EMBED_PATH:
            self._send_json(200, _embed_object(reply, model, body), reply.headers)
        elif body.get("stream", True) is False:  # the API streams unless told not to
            if reply.bad_json:
                self._send_bytes(200, TRUNCATED_JSON, self.json_content_type, reply.headers)
            else:
                answer = _chat_object(reply, model) if path == CHAT_PATH else _generate_object(reply, model)
                self._send_json(200, answer, reply.headers)
        else:
            lines = _chat_lines(reply, model) if path == CHAT_PATH else _generate_lines(reply, model)
            events = [dumps(line) + b"\n" for line in lines]
            if reply.stream_error_after is not None:
                events = events[: reply.stream_error_after] + [dumps({"error": reply.error_message}) + b"\n"]
            self._send_stream(events, "application/x-ndjson", reply.headers, reply.cut_stream_after)

    def _send_error(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        self._send_json(status, {"error": message}, extra)


class FakeOllamaServer(FakeServer[Reply, RecordedRequest]):
    """A fake Ollama server on a local port; use as a context manager or with ``start()``/``stop()``.

    Clients use ``host=server.url``. Chat, generate and embed requests each take the next :meth:`enqueue`-d
    reply, or ``default_reply`` when none is queued (an embed request reads only ``input_tokens``, ``model``
    and ``status``). Every request is kept in ``requests`` (recorded before it is answered).
    """

    handler = _Handler
    thread_name = "fake-ollama"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Reply(), host, port)

    def _take_reply(self) -> Reply:
        with self._lock:
            return self._pop_reply()[0]
