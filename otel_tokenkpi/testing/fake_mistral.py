"""A local fake of the Mistral AI API, for driving the real ``mistralai`` SDK without a key or a network.

Point a client at it with ``Mistral(api_key="test", server_url=server.url)`` and script what the "model"
answers with :class:`Reply` objects, as with :mod:`otel_tokenkpi.testing.fake_openai`. The server speaks the
documented wire format of ``POST /v1/chat/completions`` (a ``chat.completion`` JSON body, or with
``"stream": true`` SSE ``data:`` events, each a ``chat.completion.chunk``, usage on the last one, then
``data: [DONE]``) and ``POST /v1/embeddings``, with Mistral's error bodies (``{"object": "error", "message",
"type", "param", "code"}``; 422 validation errors as ``{"detail": [...]}``). So the SDK's own parsing,
``EventStream`` and error mapping run exactly as against the real service.

Token fields of :class:`Reply` are as on the wire: ``input_tokens`` is ``prompt_tokens`` and already includes
``cache_read_tokens`` (``prompt_tokens_details.cached_tokens``). Mistral usually streams a tool call whole,
in one delta; ``tool_call_pieces`` splits the arguments into fragments instead, and ``arguments_as_object``
sends ``function.arguments`` as a JSON object (the API and the SDK accept both).

Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._fake_server import FakeRequestHandler, FakeServer, RecordedRequest, dumps, split_text

__all__ = ["FakeMistralServer", "RecordedRequest", "Reply", "ToolCall"]

CHAT_PATH, EMBEDDINGS_PATH = "/v1/chat/completions", "/v1/embeddings"
TRUNCATED_JSON = b'{"id": "cmpl-'  # what ``bad_json`` replies send: a completion cut off mid-string
EMBEDDING_TOKENS_PER_INPUT = 8
EMBEDDING_DIMENSIONS = 8
_ERROR_TYPES = {400: "invalid_request_error", 401: "unauthorized", 404: "not_found", 429: "rate_limited"}


@dataclass
class ToolCall:
    """A tool call the fake model makes."""

    name: str
    arguments: str  # JSON object text
    id: str = ""  # a 9-character id like Mistral's is assigned when empty


@dataclass
class Reply:
    """One scripted model response; the fields below ``model`` script failures rather than content."""

    text: str | None = "ok"
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # default: "tool_calls" if tool_calls else "stop"
    input_tokens: int = 10  # prompt_tokens, cached ones included
    output_tokens: int = 5  # completion_tokens
    cache_read_tokens: int = 0  # prompt_tokens_details.cached_tokens (sent only when not 0)
    arguments_as_object: bool = False  # function.arguments as a JSON object instead of a string
    tool_call_pieces: int | None = None  # stream: split each call's arguments into this many deltas
    model: str | None = None  # default: the request's model string unchanged
    status: int = 200  # anything else: a Mistral error body with this status
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
    """A reply bound to one request: the ids and numbers every shape of the answer must agree on."""

    reply: Reply
    number: int
    model: str
    created: int
    call_ids: list[str]
    choices: int

    @property
    def response_id(self) -> str:
        return f"cmpl-{self.number:032x}"

    def usage(self) -> dict[str, Any]:
        r = self.reply
        usage: dict[str, Any] = {
            "prompt_tokens": r.input_tokens,
            "completion_tokens": r.output_tokens,
            "total_tokens": r.input_tokens + r.output_tokens,
        }
        if r.cache_read_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": r.cache_read_tokens}
        return usage

    def arguments(self, call: ToolCall) -> Any:
        return json.loads(call.arguments) if self.reply.arguments_as_object else call.arguments

    def tool_calls(self) -> list[dict[str, Any]]:
        return [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": tc.name, "arguments": self.arguments(tc)},
                "index": i,
            }
            for i, (call_id, tc) in enumerate(zip(self.call_ids, self.reply.tool_calls, strict=True))
        ]


def _completion(turn: _Turn) -> dict[str, Any]:
    reply = turn.reply
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or "", "prefix": False}
    message["tool_calls"] = turn.tool_calls() or None
    return {
        "id": turn.response_id,
        "object": "chat.completion",
        "model": turn.model,
        "created": turn.created,
        "usage": turn.usage(),
        "choices": [
            {"index": i, "message": message, "finish_reason": reply.effective_finish_reason}
            for i in range(turn.choices)
        ],
    }


def _chunks(turn: _Turn) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a stream, in order (without ``[DONE]``): a role delta, text
    deltas, the tool calls (whole in one delta, or as fragments), and a last delta carrying the finish
    reason and the usage."""
    reply = turn.reply

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": turn.response_id,
            "object": "chat.completion.chunk",
            "created": turn.created,
            "model": turn.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }

    chunks = []
    for index in range(turn.choices):
        chunks.append(chunk(index, {"role": "assistant", "content": ""}))
        chunks.extend(chunk(index, {"content": piece}) for piece in split_text(reply.text or "", reply.text_chunks))
        calls, pieces = turn.tool_calls(), reply.tool_call_pieces
        if calls and pieces is None:
            chunks.append(chunk(index, {"tool_calls": calls}))
        elif pieces is not None:
            for call in calls:
                chunks.extend(chunk(index, {"tool_calls": [fragment]}) for fragment in _fragments(call, pieces))
        chunks.append(chunk(index, {"content": ""}, reply.effective_finish_reason))
    chunks[-1]["usage"] = turn.usage()
    return chunks


def _fragments(call: dict[str, Any], pieces: int) -> list[dict[str, Any]]:
    """A tool call cut into deltas: the first names the call (id, name), the rest carry only arguments (the
    SDK's ``FunctionCall`` requires a name, so theirs is empty)."""
    arguments = call["function"]["arguments"]
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    fragments = []
    for n, piece in enumerate(split_text(text, pieces) or [""]):
        fragment: dict[str, Any] = {"function": {"name": "", "arguments": piece}, "index": call["index"]}
        if n == 0:
            fragment.update(id=call["id"], type="function")
            fragment["function"]["name"] = call["function"]["name"]
        fragments.append(fragment)
    return fragments


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """One deterministic vector per input (a hash of the text)."""
    raw = body.get("input")
    inputs = raw if isinstance(raw, list) else [raw]
    dims = body.get("output_dimension") or EMBEDDING_DIMENSIONS
    data = []
    for index, item in enumerate(inputs):
        digest = hashlib.shake_256(json.dumps(item).encode()).digest(dims)
        data.append({"object": "embedding", "embedding": [(b - 128) / 128 for b in digest], "index": index})
    tokens = EMBEDDING_TOKENS_PER_INPUT * len(inputs)
    return {
        "id": f"embd-{hashlib.sha1(dumps(inputs)).hexdigest()[:16]}",
        "object": "list",
        "data": data,
        "model": body.get("model", ""),
        "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
    }


def _error_body(status: int, message: str) -> dict[str, Any]:
    if status == 422:  # FastAPI-style validation error: the SDK raises HTTPValidationError
        return {"detail": [{"loc": ["body"], "msg": message, "type": "value_error"}]}
    error_type = _ERROR_TYPES.get(status, "internal_server_error" if status >= 500 else "invalid_request_error")
    return {"object": "error", "message": message, "type": error_type, "param": None, "code": str(status)}


class _Handler(FakeRequestHandler):
    """Routes chat completions and embeddings; SSE streams are chunked (see FakeRequestHandler)."""

    fake: FakeMistralServer

    def _dispatch(self) -> None:
        body = self._read_json_body()
        self.fake._record(RecordedRequest(self.command, self.path, self._lowered_headers(), body))
        path = urlsplit(self.path).path.rstrip("/")
        if self.command != "POST" or path not in (CHAT_PATH, EMBEDDINGS_PATH):
            self._send_json(404, _error_body(404, f"Invalid URL ({self.command} {self.path})"))
        elif body is None:
            self._send_json(400, _error_body(400, "Invalid JSON body"))
        elif path == EMBEDDINGS_PATH:  # embeddings never take a scripted reply
            self._send_json(200, _embeddings(body))
        else:
            self._answer(self.fake._take_turn(body), bool(body.get("stream")))

    def _answer(self, turn: _Turn, streamed: bool) -> None:
        reply = turn.reply
        if reply.status != 200:
            self._send_json(reply.status, _error_body(reply.status, reply.error_message), reply.headers)
        elif not streamed:
            if reply.bad_json:
                self._send_bytes(200, TRUNCATED_JSON, self.json_content_type, reply.headers)
            else:
                self._send_json(200, _completion(turn), reply.headers)
        else:
            events = [b"data: " + dumps(c) + b"\n\n" for c in _chunks(turn)] + [b"data: [DONE]\n\n"]
            if reply.bad_json:
                events.insert(1, b"data: " + TRUNCATED_JSON + b"\n\n")
            self._send_stream(events, "text/event-stream", reply.headers, reply.cut_stream_after)


class FakeMistralServer(FakeServer[Reply, RecordedRequest]):
    """A fake Mistral API on a local port; use as a context manager or with ``start()``/``stop()``.

    ``server.url`` is the client's ``server_url``. Each chat request (plain or streamed) takes the next
    :meth:`enqueue`-d reply, or ``default_reply`` when none is queued; embeddings never take one. Every
    request is kept in ``requests`` (recorded before it is answered).
    """

    handler = _Handler
    thread_name = "fake-mistral"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Reply(), host, port)

    def _take_turn(self, body: dict[str, Any]) -> _Turn:
        with self._lock:
            reply, number = self._pop_reply()
            call_ids = [tc.id or f"call{next(self._calls):05d}" for tc in reply.tool_calls]
        model = reply.model if reply.model is not None else str(body.get("model", ""))
        return _Turn(reply, number, model, int(time.time()), call_ids, int(body.get("n") or 1))
