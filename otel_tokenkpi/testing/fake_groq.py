"""A local fake of Groq's Chat Completions API, for driving the real ``groq`` SDK without a key or a network.

Groq's API is OpenAI-compatible on the wire (``POST /openai/v1/chat/completions``), so this builds on
:mod:`fake_openai`: the same :class:`Reply` / :class:`ToolCall` script, the same completion and chunk
shapes, plus what Groq adds (API reference, "Chat" and "Streaming"):

- every answer carries an ``x_groq`` object with Groq's request id (``req_<n>``);
- usage carries Groq's timings (``queue_time``, ``prompt_time``, ``completion_time``, ``total_time``);
  ``prompt_tokens_details.cached_tokens`` (Groq's prompt caching) and
  ``completion_tokens_details.reasoning_tokens`` are sent when non-zero;
- a stream's usage arrives in the final chunk's ``x_groq.usage`` (chunks have no ``usage`` unless the
  request asks with ``stream_options.include_usage``, then also the OpenAI-style usage chunk);
- errors are ``{"error": {"message", "type", "code"}}``; a rate limit is type ``tokens``, code
  ``rate_limit_exceeded``.

Clients use ``Groq(base_url=server.url)`` (the SDK adds ``/openai/v1``); an ``OpenAI`` client uses
``base_url=server.url + "/openai/v1"``. Standard library only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from . import fake_openai
from ._fake_server import RecordedRequest, dumps
from .fake_openai import Reply, ToolCall

__all__ = ["CHAT_PATH", "FakeGroqServer", "RecordedRequest", "Reply", "ToolCall"]

CHAT_PATH = "/openai/v1/chat/completions"
SERVICE_TIER = "on_demand"
# Fixed timings (seconds), so answers are deterministic.
TIMINGS = {"queue_time": 0.01, "prompt_time": 0.002, "completion_time": 0.03, "total_time": 0.032}
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("tokens", "rate_limit_exceeded"),
}


def groq_usage(reply: Reply) -> dict[str, Any]:
    """A Groq ``usage`` object: counts, timings, and the detail objects only when they say something."""
    usage: dict[str, Any] = {
        "queue_time": TIMINGS["queue_time"],
        "prompt_tokens": reply.prompt_tokens,
        "prompt_time": TIMINGS["prompt_time"],
        "completion_tokens": reply.completion_tokens,
        "completion_time": TIMINGS["completion_time"],
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        "total_time": TIMINGS["total_time"],
    }
    if reply.cached_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    if reply.reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens}
    return usage


def _groq_completion(turn: Any, choices: int, request_id: str) -> dict[str, Any]:
    completion = fake_openai._chat_completion(turn, choices)
    for choice in completion["choices"]:
        choice["message"].pop("refusal", None)  # not part of Groq's message object
    completion.update(usage=groq_usage(turn.reply), service_tier=SERVICE_TIER, x_groq={"id": request_id})
    return completion


def _groq_chunks(turn: Any, choices: int, include_usage: bool, request_id: str) -> list[dict[str, Any]]:
    chunks = fake_openai._chat_chunks(turn, choices, include_usage)
    for chunk in chunks:
        chunk["service_tier"] = SERVICE_TIER
        if not include_usage:
            chunk.pop("usage", None)
        elif chunk["usage"] is not None:
            chunk["usage"] = groq_usage(turn.reply)
    chunks[0]["x_groq"] = {"id": request_id}
    chunks[-1]["x_groq"] = {"id": request_id, "usage": groq_usage(turn.reply)}
    return chunks


class _Handler(fake_openai._Handler):
    """Routes Groq's chat completions; everything else is a Groq-style 404."""

    fake: FakeGroqServer

    def _dispatch(self) -> None:
        body = self._read_json_body()
        number = self.fake._record(RecordedRequest(self.command, self.path, self._lowered_headers(), body))
        self._request_id = f"req_{number}"
        if self.command != "POST" or urlsplit(self.path).path.rstrip("/") != CHAT_PATH:
            self._send_error(404, f"Unknown request URL: {self.command} {self.path}")
        elif body is None:
            self._send_error(400, "We could not parse the JSON body of your request.")
        else:
            self._answer_chat(body, self.fake._take_turn(body))

    def _answer_chat(self, body: dict[str, Any], turn: Any) -> None:
        reply, choices = turn.reply, int(body.get("n") or 1)
        if reply.status != 200:
            self._send_error(reply.status, reply.error_message, reply.headers)
        elif not body.get("stream"):
            if reply.bad_json:
                self._send_bytes(200, fake_openai.TRUNCATED_JSON, "application/json", reply.headers)
            else:
                self._send_json(200, _groq_completion(turn, choices, self._request_id), reply.headers)
        else:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = _groq_chunks(turn, choices, include_usage, self._request_id)
            events = [b"data: " + dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
            if reply.bad_json:
                events.insert(1, b"data: " + fake_openai.TRUNCATED_JSON + b"\n\n")
            self._send_stream(events, "text/event-stream", reply.headers, reply.cut_stream_after)

    def _send_error(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        fallback = ("internal_server_error" if status >= 500 else "invalid_request_error", None)
        error_type, code = _ERROR_KINDS.get(status, fallback)
        error: dict[str, Any] = {"message": message, "type": error_type}
        if code is not None:
            error["code"] = code
        self._send_json(status, {"error": error}, extra)


class FakeGroqServer(fake_openai.FakeOpenAIServer):
    """A fake Groq API on a local port; the scripted-reply API of :class:`FakeOpenAIServer`.

    Model requests each take the next :meth:`enqueue`-d :class:`Reply` (``prompt_tokens``,
    ``completion_tokens``, ``cached_tokens``, ``reasoning_tokens``, ``finish_reason``, ``status``,
    ``cut_stream_after``, ...), or ``default_reply``. ``requests`` keeps what the SDK sent.
    """

    handler = _Handler
    thread_name = "fake-groq"
