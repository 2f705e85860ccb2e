"""A local fake of the Gemini API, for driving the real ``google-genai`` SDK without a key or a network.

Point a client at it with ``genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.url))``
(Vertex AI express mode works the same with ``vertexai=True``) and script what the "model" answers with
:class:`Reply` objects. The server speaks the documented wire format of ``models.generateContent`` (JSON) and
``models.streamGenerateContent?alt=sse`` (SSE ``data:`` events, each a ``GenerateContentResponse``), with
camelCase fields and Google's error body ``{"error": {"code", "message", "status"}}``, so the SDK's own
parsing, streaming and error mapping run exactly as against the real service. It also answers the
Interactions API (``client.interactions.create``, ``POST /{api_version}/interactions``, JSON or SSE; the wire
format is in :mod:`otel_tokenkpi.testing._gemini_interactions`) from the same replies.

The scripted-reply API mirrors :mod:`otel_tokenkpi.testing.fake_openai` (``Reply(text=..., tool_calls=[...],
finish_reason=..., input_tokens=..., output_tokens=..., cache_read_tokens=...)``), so one test can script
several providers alike. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import _fake_server
from . import _gemini_interactions as interactions
from ._fake_server import FakeRequestHandler, FakeServer, dumps, split_text

__all__ = ["FakeGeminiServer", "RecordedRequest", "Reply", "ToolCall"]

# What non-stream ``bad_json`` replies send: the start of a response, cut off mid-string.
TRUNCATED_JSON = b'{"candidates": [{"content": {"parts": [{"text": "'
# /{api_version}/[projects/P/locations/L/][publishers/google/]models/{model}:{method}
_MODEL_PATH = re.compile(r"^/(?P<version>[^/]+)/(?:.+/)?models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")
# /{api_version}/interactions (Vertex AI: /{api_version}/projects/P/locations/L/interactions)
_INTERACTIONS_PATH = re.compile(r"^/(?P<version>[^/]+)/(?:.+/)?interactions$")
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
    interaction_status: str | None = None  # Interactions API status; default completed (requires_action if tools)
    text_chunks: int | None = None  # stream: this many text deltas (default: one per word)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    delay_s: float = 0.0  # seconds the server waits before answering (to make a client time out)

    @property
    def effective_finish_reason(self) -> str:
        return self.finish_reason or "STOP"


@dataclass
class RecordedRequest(_fake_server.RecordedRequest):
    """A request as the server received it, with the model and API version named in its path."""

    model: str | None = None  # from the path
    api_version: str | None = None


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
        pieces.extend((index, {"text": piece}) for piece in split_text(reply.text or "", reply.text_chunks))
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


class _Handler(FakeRequestHandler):
    """Routes ``models/{model}:{method}`` requests; SSE streams are chunked (see FakeRequestHandler)."""

    json_content_type = "application/json; charset=UTF-8"
    fake: FakeGeminiServer

    def _dispatch(self) -> None:
        body = self._read_json_body()
        path = urlsplit(self.path).path
        interactions_match = _INTERACTIONS_PATH.match(path)
        if interactions_match is not None and self.command == "POST":
            self._answer_interaction(body, interactions_match["version"])
            return
        match = _MODEL_PATH.match(path)
        model = match["model"] if match else None
        version = match and match["version"]
        self.fake._record(RecordedRequest(self.command, self.path, self._lowered_headers(), body, model, version))
        if self.command != "POST" or match is None or match["method"] not in (_GENERATE, _STREAM, _EMBED):
            self._send_json(404, _error_body(404, f"Invalid URL ({self.command} {self.path})"), {})
        elif body is None:
            self._send_json(400, _error_body(400, "Invalid JSON payload received."), {})
        elif match["method"] == _EMBED:  # embeddings never take a scripted reply
            self._send_json(200, _embeddings(body), {})
        else:
            turn = self.fake._take_turn(str(model), body)
            self._answer(turn, streamed=match["method"] == _STREAM)

    def _answer_interaction(self, body: dict[str, Any] | None, version: str) -> None:
        model = (body or {}).get("model") or (body or {}).get("agent")
        self.fake._record(RecordedRequest(self.command, self.path, self._lowered_headers(), body, model, version))
        if body is None:
            self._send_json(400, interactions.error_body(400, "Invalid JSON payload received."), {})
            return
        turn = self.fake._take_turn(str(model), {})
        reply = turn.reply
        if reply.status != 200:
            self._send_json(reply.status, interactions.error_body(reply.status, reply.error_message), reply.headers)
        elif body.get("stream") is True:
            events = interactions.stream_events(reply, turn.number, turn.model)
            self._send_stream(events, "text/event-stream", reply.headers, reply.cut_stream_after)
        else:
            self._send_json(200, interactions.interaction(reply, turn.number, turn.model), reply.headers)

    def _answer(self, turn: _Turn, streamed: bool) -> None:
        reply = turn.reply
        if reply.status != 200:
            self._send_json(reply.status, _error_body(reply.status, reply.error_message), reply.headers)
        elif not streamed:
            if reply.bad_json:
                self._send_bytes(200, TRUNCATED_JSON, self.json_content_type, reply.headers)
            else:
                self._send_json(200, _response(turn), reply.headers)
        else:
            events = [b"data: " + dumps(chunk) + b"\r\n\r\n" for chunk in _stream_chunks(turn)]
            if reply.stream_error_after is not None:
                error = b"data: " + dumps(_error_body(500, reply.error_message)) + b"\r\n\r\n"
                events = [*events[: reply.stream_error_after], error]
            self._send_stream(events, "text/event-stream", reply.headers, reply.cut_stream_after)


class FakeGeminiServer(FakeServer[Reply, RecordedRequest]):
    """A fake Gemini API on a local port; use as a context manager or with ``start()``/``stop()``.

    ``server.url`` is the client's ``base_url``. Each generateContent / streamGenerateContent request takes
    the next :meth:`enqueue`-d reply, or ``default_reply`` when none is queued; batchEmbedContents
    (``embed_content``) never takes one. Every request is kept in ``requests`` (recorded before it is
    answered), so tests can assert on what the SDK sent.
    """

    handler = _Handler
    thread_name = "fake-gemini"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Reply(), host, port)

    def _take_turn(self, model: str, body: dict[str, Any]) -> _Turn:
        with self._lock:
            reply, number = self._pop_reply()
        config = body.get("generationConfig") or {}
        candidates = config.get("candidateCount") or 1
        return _Turn(reply, number, reply.model if reply.model is not None else model, int(candidates))
