"""Read Ollama response shapes: ``ChatResponse`` / ``GenerateResponse`` / ``EmbedResponse`` and stream objects.

Shapes only. Responses are the SDK's pydantic models (ollama >= 0.4) or plain dicts (0.3); ``get`` reads both.
A stream is a series of objects of the same type, one per NDJSON line: text pieces (``message.content`` for
chat, ``response`` for generate), tool calls (each one whole, in one object), and a last object with
``done: true``, ``done_reason`` and the counts.

* Usage: ``prompt_eval_count`` is the input (cached prompt tokens included), ``eval_count`` the output
  (thinking included). Older servers leave ``prompt_eval_count`` out when the prompt came from the KV cache:
  the input count is then absent, never 0. ``prompt_eval_cached_count`` (newer servers) is read as cache reads
  where the client keeps it (the 0.6 SDK's models drop fields they do not declare).
* Ollama has no response id and no tool-call ids.
"""

from __future__ import annotations

from typing import Any

from otel_tokenkpi.invocation import CallRequest, CallResult, OutputMessage, ToolCall, Usage

from ._ollama_request import read_output_calls
from ._shapes import get


def _count(obj: Any, key: str) -> int | None:
    value = get(obj, key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_usage(response: Any) -> Usage | None:
    input_tokens, output_tokens = _count(response, "prompt_eval_count"), _count(response, "eval_count")
    cache_read = _count(response, "prompt_eval_cached_count")
    if input_tokens is None and output_tokens is None:
        return None
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read)


def _finish(response: Any) -> str | None:
    reason = get(response, "done_reason")
    return str(reason) if reason else None


def _result(response: Any, text: str, calls: list[ToolCall]) -> CallResult:
    return CallResult(
        response_model=get(response, "model") or None,
        outputs=[OutputMessage(text=text, tool_calls=calls, finish_reason=_finish(response))],
        usage=read_usage(response),
    )


def read_chat_response(response: Any) -> CallResult:
    message = get(response, "message")
    content = get(message, "content")
    return _result(response, content if isinstance(content, str) else "", read_output_calls(message))


def read_generate_response(response: Any) -> CallResult:
    text = get(response, "response")
    return _result(response, text if isinstance(text, str) else "", [])


def read_embed_response(response: Any) -> CallResult:
    tokens = _count(response, "prompt_eval_count")
    return CallResult(
        response_model=get(response, "model") or None,
        usage=Usage(input_tokens=tokens) if tokens is not None else None,
    )


class ChatChunkReader:
    """Accumulates a chat stream: text pieces and whole tool calls, then the last object's reason and counts."""

    def __init__(self, request: CallRequest) -> None:
        self._texts: list[str] = []
        self._calls: list[ToolCall] = []
        self._last: Any = None  # the object with done: true
        self._model: str | None = None
        self._seen = False

    def _text_and_calls(self, chunk: Any) -> tuple[Any, list[ToolCall]]:
        message = get(chunk, "message")
        return get(message, "content"), read_output_calls(message)

    def feed(self, chunk: Any) -> None:
        self._seen = True
        text, calls = self._text_and_calls(chunk)
        if isinstance(text, str) and text:
            self._texts.append(text)
        self._calls.extend(calls)
        self._model = get(chunk, "model") or self._model
        if get(chunk, "done") is True:
            self._last = chunk

    def result(self) -> CallResult:
        if not self._seen:
            return CallResult()
        last = self._last
        return CallResult(
            response_model=self._model,
            outputs=[
                OutputMessage(
                    text="".join(self._texts),
                    tool_calls=self._calls,
                    finish_reason=_finish(last) if last is not None else None,
                )
            ],
            usage=read_usage(last) if last is not None else None,
        )


class GenerateChunkReader(ChatChunkReader):
    """The same for generate: text pieces are in ``response``; there are no tool calls."""

    def _text_and_calls(self, chunk: Any) -> tuple[Any, list[ToolCall]]:
        return get(chunk, "response"), []
