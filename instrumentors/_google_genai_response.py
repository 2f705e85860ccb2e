"""Read google-genai ``GenerateContentResponse`` objects: whole responses and stream chunks.

Shapes only. Usage per docs/architecture.md: input = ``prompt_token_count`` (which already includes
``cached_content_token_count``) + ``tool_use_prompt_token_count``; output = ``candidates_token_count``
+ ``thoughts_token_count``. In a stream every chunk may carry ``usage_metadata``; intermediate ones
hold the prompt count only and the last one the totals, so the latest one wins. Text accumulates per
candidate; a function call arrives whole in one chunk.
"""

from __future__ import annotations

from typing import Any

from otel_tokenkpi.invocation import CallRequest, CallResult, OutputMessage, ToolCall, Usage

from ._google_genai_request import part_text, read_function_call
from ._shapes import as_list, get


def _sum(*values: Any) -> int | None:
    present = [v for v in values if isinstance(v, int)]
    return sum(present) if present else None


def read_usage(metadata: Any) -> Usage | None:
    if metadata is None:
        return None
    thoughts = get(metadata, "thoughts_token_count")
    usage = Usage(
        input_tokens=_sum(get(metadata, "prompt_token_count"), get(metadata, "tool_use_prompt_token_count")),
        output_tokens=_sum(get(metadata, "candidates_token_count"), thoughts),
        cache_read_tokens=get(metadata, "cached_content_token_count"),
        reasoning_tokens=thoughts,
    )
    return usage if usage.input_tokens is not None or usage.output_tokens is not None else None


def finish_reason(candidate: Any) -> str | None:
    """As the API spells it (``STOP``, ``MAX_TOKENS``, ...): the SDK's enum value, or its string."""
    reason = get(candidate, "finish_reason")
    if reason is None:
        return None
    value = getattr(reason, "value", reason)
    return str(value) if value else None


def _read_parts(parts: Any) -> tuple[str, list[ToolCall]]:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in as_list(parts):
        call = read_function_call(part)
        if call is not None:
            calls.append(call)
        else:
            texts.append(part_text(part))
    return "".join(texts), calls


def read_response(response: Any) -> CallResult:
    result = CallResult(
        response_id=get(response, "response_id") or None,
        response_model=get(response, "model_version") or None,
        usage=read_usage(get(response, "usage_metadata")),
    )
    for candidate in as_list(get(response, "candidates")):
        text, calls = _read_parts(get(get(candidate, "content"), "parts"))
        result.outputs.append(OutputMessage(text=text, tool_calls=calls, finish_reason=finish_reason(candidate)))
    return result


class ChunkReader:
    """Accumulates the ``GenerateContentResponse`` chunks of one streamed request, per candidate index."""

    def __init__(self, request: CallRequest) -> None:
        self._result = CallResult()
        self._texts: dict[int, list[str]] = {}
        self._calls: dict[int, list[ToolCall]] = {}
        self._finish: dict[int, str] = {}

    def feed(self, chunk: Any) -> None:
        result = self._result
        result.response_id = result.response_id or get(chunk, "response_id") or None
        result.response_model = result.response_model or get(chunk, "model_version") or None
        usage = read_usage(get(chunk, "usage_metadata"))
        if usage is not None:
            result.usage = usage
        for position, candidate in enumerate(as_list(get(chunk, "candidates"))):
            index = get(candidate, "index")
            index = index if isinstance(index, int) else position
            text, calls = _read_parts(get(get(candidate, "content"), "parts"))
            self._texts.setdefault(index, []).append(text)
            self._calls.setdefault(index, []).extend(calls)
            reason = finish_reason(candidate)
            if reason:
                self._finish[index] = reason

    def result(self) -> CallResult:
        result = self._result
        result.outputs = [
            OutputMessage(
                text="".join(self._texts.get(i, ())),
                tool_calls=list(self._calls.get(i, ())),
                finish_reason=self._finish.get(i),
            )
            for i in sorted(set(self._texts) | set(self._finish))
        ]
        return result
