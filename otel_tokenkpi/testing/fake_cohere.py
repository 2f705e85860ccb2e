"""A local fake of the Cohere API v2 (Chat and Embed), for driving the real ``cohere`` SDK without a key.

Tests point ``cohere.ClientV2`` / ``AsyncClientV2`` at ``base_url=server.url`` and script what the "model"
answers with :class:`Reply` objects, as with :mod:`otel_tokenkpi.testing.fake_openai`. The server speaks the
documented wire format:

* ``POST /v2/chat``: a chat response ``{id, finish_reason, message: {role, content: [{type: "text"}],
  tool_plan, tool_calls: [{id, type: "function", function: {name, arguments}}], citations}, usage:
  {billed_units, tokens, cached_tokens}}``; with ``"stream": true`` a ``text/event-stream`` whose events
  (``event: <type>`` and a ``data:`` JSON line with the same ``type``) are ``message-start``,
  ``content-start`` / ``content-delta`` / ``content-end`` (thinking, then text), ``tool-plan-delta``,
  ``tool-call-start`` / ``tool-call-delta`` / ``tool-call-end``, ``citation-start`` / ``citation-end`` and
  ``message-end`` with ``delta.finish_reason``, ``delta.usage`` (and ``delta.error`` for ``ERROR``).
* ``POST /v2/embed``: ``{id, embeddings: {float: [...]}, texts, meta: {api_version, billed_units, tokens},
  response_type: "embeddings_by_type"}``.
* Errors: the status with a ``{"id", "message"}`` body, which the SDK maps to its exception classes.

Every chat or embed request takes the next queued reply (an embed reads only the token and status fields).

Token fields of :class:`Reply` are the billed units; ``processed_*`` are ``usage.tokens`` (what the model
processed, prompt template included): by default billed input + ``TEMPLATE_TOKENS`` and the billed output.

Standard library only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._fake_server import FakeRequestHandler, FakeServer, RecordedRequest, split_text

__all__ = ["FakeCohereServer", "RecordedRequest", "Reply", "ToolCall"]

CHAT_PATH, EMBED_PATH = "/v2/chat", "/v2/embed"
TRUNCATED_JSON = b'{"id": "'  # what ``bad_json`` replies send: a body cut off mid-string
TEMPLATE_TOKENS = 64  # default processed-minus-billed input: the prompt template Cohere does not bill
ARGUMENT_PIECES = 3  # streamed tool-call arguments arrive in about this many tool-call-delta fragments
EMBEDDING_DIMENSIONS = 8


@dataclass
class ToolCall:
    """A tool call the fake model emits."""

    name: str
    arguments: str  # JSON object text, sent as ``function.arguments`` (or its tool-call-delta pieces)
    id: str = ""  # "<name>_<n>" is assigned when empty, like the API's ids


@dataclass
class Reply:
    """One scripted model response; the fields below ``headers`` script failures rather than content."""

    text: str | None = "ok"
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # default: "TOOL_CALL" if tool_calls else "COMPLETE"
    input_tokens: int = 10  # usage.billed_units.input_tokens
    output_tokens: int = 5  # usage.billed_units.output_tokens
    processed_input_tokens: int | None = None  # usage.tokens.input_tokens; default input + TEMPLATE_TOKENS
    processed_output_tokens: int | None = None  # usage.tokens.output_tokens; default output_tokens
    cache_read_tokens: int | None = None  # usage.cached_tokens; omitted when None
    tool_plan: str | None = None  # message.tool_plan; sent before tool calls
    thinking: str | None = None  # a thinking content block before the text
    citation: bool = False  # one citation of the text's first word (a document source)
    text_chunks: int | None = None  # stream: this many text deltas (default: one per word)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    status: int = 200  # anything else: a Cohere error body with this status
    error_message: str = "fake error"  # the error body's message; with finish_reason "ERROR", delta.error
    bad_json: bool = False  # 200 whose body is not JSON; streamed: the 2nd SSE event's data is not JSON
    cut_stream_after: int | None = None  # stream: send this many SSE events, then drop the connection
    delay_s: float = 0.0  # seconds the server waits before answering (to make a client time out)

    @property
    def effective_finish_reason(self) -> str:
        return self.finish_reason or ("TOOL_CALL" if self.tool_calls else "COMPLETE")

    def usage(self) -> dict[str, Any]:
        processed_in = self.processed_input_tokens
        processed_out = self.processed_output_tokens
        usage: dict[str, Any] = {
            "billed_units": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            "tokens": {
                "input_tokens": self.input_tokens + TEMPLATE_TOKENS if processed_in is None else processed_in,
                "output_tokens": self.output_tokens if processed_out is None else processed_out,
            },
        }
        if self.cache_read_tokens is not None:
            usage["cached_tokens"] = self.cache_read_tokens
        return usage


@dataclass
class _Turn:
    """A reply bound to one request: the id and tool-call ids every shape of the answer agrees on."""

    reply: Reply
    number: int
    calls: list[tuple[str, ToolCall]]  # (call id, tool call)

    @property
    def id(self) -> str:
        return f"00000000-0000-4000-8000-{self.number:012d}"

    def content(self) -> list[dict[str, Any]]:
        r = self.reply
        blocks: list[dict[str, Any]] = []
        if r.thinking is not None:
            blocks.append({"type": "thinking", "thinking": r.thinking})
        if r.text:
            blocks.append({"type": "text", "text": r.text})
        return blocks

    def tool_calls(self) -> list[dict[str, Any]]:
        return [
            {"id": call_id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}
            for call_id, tc in self.calls
        ]

    def citations(self) -> list[dict[str, Any]]:
        text = self.reply.text or ""
        if not self.reply.citation or not text.split():
            return []
        word = text.split()[0]
        start = text.index(word)
        source = {"type": "document", "id": "doc_0", "document": {"id": "doc_0", "snippet": word}}
        return [{"start": start, "end": start + len(word), "text": word, "sources": [source], "type": "TEXT_CONTENT"}]

    def response(self) -> dict[str, Any]:
        r = self.reply
        message: dict[str, Any] = {"role": "assistant"}
        if r.tool_plan is not None:
            message["tool_plan"] = r.tool_plan
        if self.calls:
            message["tool_calls"] = self.tool_calls()
        content = self.content()
        if content:
            message["content"] = content
        citations = self.citations()
        if citations:
            message["citations"] = citations
        return {"id": self.id, "message": message, "finish_reason": r.effective_finish_reason, "usage": r.usage()}


def stream_events(turn: _Turn) -> list[dict[str, Any]]:
    """The SSE events of a streamed answer, in order; each ``type`` is also its SSE event name."""
    reply = turn.reply
    start_message = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    events: list[dict[str, Any]] = [{"id": turn.id, "type": "message-start", "delta": {"message": start_message}}]
    for index, block in enumerate(turn.content()):
        kind = block["type"]
        opened = {"type": kind, kind: ""}
        events.append({"type": "content-start", "index": index, "delta": {"message": {"content": opened}}})
        pieces = split_text(block[kind], reply.text_chunks if kind == "text" else None)
        for piece in pieces:
            delta = {"message": {"content": {kind: piece}}}
            events.append({"type": "content-delta", "index": index, "delta": delta, "logprobs": None})
        events.append({"type": "content-end", "index": index})
    if reply.tool_plan:
        for piece in split_text(reply.tool_plan, None):
            events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
    for index, call in enumerate(turn.tool_calls()):
        started = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        events.append({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": started}}})
        for piece in split_text(call["function"]["arguments"], ARGUMENT_PIECES):
            arguments = {"message": {"tool_calls": {"function": {"arguments": piece}}}}
            events.append({"type": "tool-call-delta", "index": index, "delta": arguments})
        events.append({"type": "tool-call-end", "index": index})
    for index, citation in enumerate(turn.citations()):
        events.append({"type": "citation-start", "index": index, "delta": {"message": {"citations": citation}}})
        events.append({"type": "citation-end", "index": index})
    end: dict[str, Any] = {"finish_reason": reply.effective_finish_reason, "usage": reply.usage()}
    if reply.effective_finish_reason == "ERROR":
        end["error"] = reply.error_message
    events.append({"type": "message-end", "delta": end})
    return events


def _vector(text: Any) -> list[float]:
    """A deterministic embedding: multiples of 1/128 from a hash of the input."""
    digest = hashlib.shake_256(json.dumps(text).encode()).digest(EMBEDDING_DIMENSIONS)
    return [(b - 128) / 128 for b in digest]


def embed_response(body: dict[str, Any], turn: _Turn) -> dict[str, Any]:
    texts = [t for t in body.get("texts") or [] if isinstance(t, str)]
    inputs = texts or body.get("inputs") or []
    kinds = body.get("embedding_types") or ["float"]
    vectors = [_vector(item) for item in inputs]
    embeddings: dict[str, Any] = {}
    for kind in kinds:
        if kind == "float":
            embeddings["float"] = vectors
        elif kind in ("int8", "uint8", "binary", "ubinary"):
            offset = 128 if kind in ("uint8", "ubinary") else 0
            embeddings[kind] = [[int(x * 127) + offset for x in v] for v in vectors]
    usage = turn.reply.usage()
    meta = {
        "api_version": {"version": "2"},
        "billed_units": {"input_tokens": turn.reply.input_tokens},
        "tokens": {"input_tokens": usage["tokens"]["input_tokens"]},
    }
    return {
        "id": turn.id,
        "embeddings": embeddings,
        "texts": texts,
        "meta": meta,
        "response_type": "embeddings_by_type",
    }


def _frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


class _Handler(FakeRequestHandler):
    """Routes ``/v2/chat`` and ``/v2/embed``; SSE streams are chunked (see FakeRequestHandler)."""

    request_id_header = "x-trace-id"
    stream_headers = {"Cache-Control": "no-cache"}
    fake: FakeCohereServer

    def _dispatch(self) -> None:
        fake = self.fake
        body = self._read_json_body()
        number = fake._record(RecordedRequest(self.command, self.path, self._lowered_headers(), body))
        self._request_id = f"trace-{number:04d}"
        path = urlsplit(self.path).path.rstrip("/")
        if self.command != "POST" or path not in (CHAT_PATH, EMBED_PATH):
            self._send_error(404, f"Not Found: {self.command} {self.path}", {})
        elif body is None:
            self._send_error(400, "invalid request: could not parse the JSON body", {})
        else:
            turn = fake._take_turn()
            if turn.reply.status != 200:
                self._send_error(turn.reply.status, turn.reply.error_message, turn.reply.headers)
            elif path == EMBED_PATH:
                self._send_json(200, embed_response(body, turn), turn.reply.headers)
            else:
                self._answer_chat(body, turn)

    def _answer_chat(self, body: dict[str, Any], turn: _Turn) -> None:
        reply = turn.reply
        if not body.get("stream"):
            if reply.bad_json:
                self._send_bytes(200, TRUNCATED_JSON, "application/json", reply.headers)
            else:
                self._send_json(200, turn.response(), reply.headers)
            return
        frames = [_frame(e) for e in stream_events(turn)]
        if reply.bad_json:
            frames.insert(1, b"event: content-start\ndata: " + TRUNCATED_JSON + b"\n\n")
        self._send_stream(frames, "text/event-stream", reply.headers, reply.cut_stream_after)

    def _send_error(self, status: int, message: str, extra: dict[str, str]) -> None:
        self._send_json(status, {"id": self._request_id, "message": message}, extra)


class FakeCohereServer(FakeServer[Reply, RecordedRequest]):
    """A fake Cohere API v2 on a local port; use as a context manager or with ``start()``/``stop()``.

    Clients use ``base_url=server.url``. Each chat or embed request takes the next :meth:`enqueue`-d reply,
    or ``default_reply`` when none is queued. Every request is kept in ``requests`` (recorded before it is
    answered).
    """

    handler = _Handler
    thread_name = "fake-cohere"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Reply(), host, port)

    def _take_turn(self) -> _Turn:
        with self._lock:
            reply, number = self._pop_reply()
            calls = [(tc.id or f"{tc.name}_{next(self._calls):04d}", tc) for tc in reply.tool_calls]
        return _Turn(reply, number, calls)
