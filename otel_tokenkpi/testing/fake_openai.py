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
import hashlib
import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._fake_server import FakeRequestHandler, FakeServer, RecordedRequest, dumps, split_text

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
    delay_s: float = 0.0  # seconds the server waits before answering (to make a client time out)

    @property
    def effective_finish_reason(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")


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
        for piece in split_text(reply.text or "", reply.text_chunks):
            chunks.append(chunk(index, {"content": piece}))
        for position, (_, call_id, tc) in enumerate(turn.calls):
            opening = {
                "index": position,
                "id": call_id,
                "type": "function",
                "function": {"name": tc.name, "arguments": ""},
            }
            chunks.append(chunk(index, {"tool_calls": [opening]}))
            for piece in split_text(tc.arguments, ARGUMENT_PIECES):
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
            for piece in split_text(text, turn.reply.text_chunks):
                emit("response.output_text.delta", **where, content_index=0, delta=piece, logprobs=[])
            emit("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
            emit("response.content_part.done", **where, content_index=0, part=part)
        else:
            opened = {**item, "status": "in_progress", "arguments": ""}
            emit("response.output_item.added", output_index=output_index, item=opened)
            for piece in split_text(item["arguments"], ARGUMENT_PIECES):
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


class _Handler(FakeRequestHandler):
    """Routes Chat Completions, Responses and Embeddings; SSE streams are chunked (see FakeRequestHandler)."""

    request_id_header = "x-request-id"
    stream_headers = {"Cache-Control": "no-cache"}
    fake: FakeOpenAIServer

    def _dispatch(self) -> None:
        body = self._read_json_body()
        request_number = self.fake._record(RecordedRequest(self.command, self.path, self._lowered_headers(), body))
        self._request_id = f"req_{request_number}"

        path = urlsplit(self.path).path.rstrip("/")
        if self.command != "POST" or path not in (CHAT_PATH, RESPONSES_PATH, EMBEDDINGS_PATH):
            self._send_error(404, f"Invalid URL ({self.command} {self.path})")
        elif body is None:
            self._send_error(400, "We could not parse the JSON body of your request.")
        elif path == EMBEDDINGS_PATH:
            self._send_json(200, _embeddings(body))
        else:
            self._answer_model_request(path, body, self.fake._take_turn(body))

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
            events = [b"data: " + dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
        else:
            items = _response_events(turn, body)
            events = [f"event: {e['type']}\ndata: ".encode() + dumps(e) + b"\n\n" for e in items]
        if reply.bad_json:
            events.insert(1, b"data: " + TRUNCATED_JSON + b"\n\n")
        self._send_stream(events, "text/event-stream; charset=utf-8", reply.headers, reply.cut_stream_after)

    def _send_error(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        fallback = ("server_error" if status >= 500 else "invalid_request_error", None)
        error_type, code = _ERROR_KINDS.get(status, fallback)
        error = {"message": message, "type": error_type, "param": None, "code": code}
        self._send_json(status, {"error": error}, extra)


class FakeOpenAIServer(FakeServer[Reply, RecordedRequest]):
    """A fake OpenAI API on a local port; use as a context manager or with ``start()``/``stop()``.

    Clients use ``base_url=server.url + "/v1"``. Model requests (chat completions and responses) each take
    the next :meth:`enqueue`-d reply, or ``default_reply`` when none is queued. Embeddings never take one.
    Every request is kept in ``requests`` (recorded before it is answered), so tests can assert on what the
    SDK sent.
    """

    handler = _Handler
    thread_name = "fake-openai"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Reply(), host, port)

    def _take_turn(self, request: dict[str, Any]) -> _Turn:
        with self._lock:
            reply, number = self._pop_reply()
            calls = []
            for tc in reply.tool_calls:
                seq = next(self._calls)
                calls.append((seq, tc.id or f"call_{seq}", tc))
        model = reply.model if reply.model is not None else str(request.get("model", ""))
        return _Turn(reply, number, model, int(time.time()), calls)
