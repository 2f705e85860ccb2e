"""Read OpenAI Chat Completions shapes: request kwargs, responses, chunks.

Shapes only (API reference: Chat Completions object and chunk object); the
lifecycle does everything else. Also serves OpenAI-compatible APIs reached
through the openai SDK (Azure, Groq, DeepSeek, ...).
"""

from __future__ import annotations

from typing import Any

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.invocation import (
    CallRequest,
    CallResult,
    ContextItem,
    OutputMessage,
    ToolCall,
    ToolDefinition,
    Usage,
)

from ._shapes import (
    IdentityMemo,
    ParamNames,
    as_list,
    compact_json,
    get,
    get_rare,
    read_params,
    text_of,
    tool_choice_of,
)

_ROLES = {"developer": "system", "system": "system", "function": "tool", "tool": "tool"}


def read_tool_calls(message: Any) -> list[ToolCall]:
    calls = []
    for call in as_list(get(message, "tool_calls")):
        function = get(call, "function")
        if function is not None:
            calls.append(
                ToolCall(
                    name=get(function, "name", ""),
                    arguments=get(function, "arguments", ""),
                    id=get(call, "id", ""),
                )
            )
        else:  # custom tools carry {"custom": {"name", "input"}}
            custom = get(call, "custom")
            calls.append(
                ToolCall(name=get(custom, "name", ""), arguments=get(custom, "input", ""), id=get(call, "id", ""))
            )
    legacy = get(message, "function_call")
    if legacy is not None:
        calls.append(ToolCall(name=get(legacy, "name", ""), arguments=get(legacy, "arguments", "")))
    return calls


def read_message(message: Any) -> ContextItem:
    role = get(message, "role", "user")
    role = _ROLES.get(role, role) if isinstance(role, str) else "user"  # a dict role would raise here
    return ContextItem(
        role=role,
        text=text_of(get(message, "content"), ("text", "refusal")) or (get(message, "refusal") or ""),
        tool_calls=read_tool_calls(message) if role == "assistant" else [],
        tool_call_id=get(message, "tool_call_id") or get(message, "name") or "",
    )


def read_tool_definition(tool: Any) -> ToolDefinition:
    spec = get(tool, "function") or get(tool, "custom") or tool
    schema = get(spec, "parameters")
    if schema is None:
        schema = get(spec, "format")
    return ToolDefinition(
        name=get(spec, "name", "") or get(tool, "type", ""),
        description=get(spec, "description", "") or "",
        parameters_json=compact_json(schema),
        kind="custom" if get(tool, "custom") is not None else "function",
        strict=get(spec, "strict") is True,
    )


_message_memo = IdentityMemo(read_message)
_tool_memo = IdentityMemo(read_tool_definition)


def output_type(response_format: Any) -> str | None:
    kind = get(response_format, "type")
    if kind in ("json_schema", "json_object"):
        return "json"
    if kind == "text":
        return "text"
    if isinstance(response_format, type):  # parse(response_format=PydanticModel)
        return "json"
    return None


PARAM_NAMES = ParamNames(
    numbers=(
        (sc.REQUEST_MAX_TOKENS, ("max_completion_tokens", "max_tokens")),
        (sc.REQUEST_TEMPERATURE, "temperature"),
        (sc.REQUEST_TOP_P, "top_p"),
        (sc.REQUEST_FREQUENCY_PENALTY, "frequency_penalty"),
        (sc.REQUEST_PRESENCE_PENALTY, "presence_penalty"),
        (sc.REQUEST_SEED, "seed"),
    ),
    stop="stop",
    choices="n",
)


def request_params(kwargs: dict[str, Any]) -> dict[str, Any]:
    stream = kwargs.get("stream") is True
    return read_params(kwargs, PARAM_NAMES, stream=stream, output_type=output_type(kwargs.get("response_format")))


def read_request(base: CallRequest, kwargs: dict[str, Any]) -> CallRequest:
    base.params = request_params(kwargs)
    base.messages = [_message_memo(m) for m in as_list(kwargs.get("messages"))]
    base.tools = [_tool_memo(t) for t in as_list(kwargs.get("tools"))]
    base.tools += [_tool_memo(f) for f in as_list(kwargs.get("functions"))]
    base.stream = kwargs.get("stream") is True
    base.tool_choice = tool_choice_of(kwargs.get("tool_choice") or kwargs.get("function_call"))
    return base


def read_usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    return Usage(
        input_tokens=get(usage, "prompt_tokens"),
        output_tokens=get(usage, "completion_tokens"),
        cache_read_tokens=get(get(usage, "prompt_tokens_details"), "cached_tokens"),
        reasoning_tokens=get(get(usage, "completion_tokens_details"), "reasoning_tokens"),
    )


def read_response(response: Any) -> CallResult:
    result = CallResult(
        response_id=get(response, "id"),
        response_model=get(response, "model") or None,
        usage=read_usage(get(response, "usage")),
    )
    for choice in as_list(get(response, "choices")):
        message = get(choice, "message")
        content = get(message, "content")
        reason = get(choice, "finish_reason")
        result.outputs.append(
            OutputMessage(
                text=content if isinstance(content, str) else "",
                tool_calls=read_tool_calls(message),
                finish_reason=str(reason) if reason else None,
            )
        )
    return result


def _field(obj: Any, key: str, default: Any = None) -> Any:
    """``get`` for a stream chunk's parts: their fields are values or None, never a request's "not
    given" sentinels, so ``get``'s sentinel check is skipped (it runs a dozen times per chunk)."""
    if type(obj) is dict:
        value = obj.get(key)
    else:
        value = getattr(obj, key, None) if obj is not None else None
    return default if value is None else value


class ChunkReader:
    """Accumulates ``chat.completion.chunk`` objects (text, tool-call deltas
    keyed by choice and tool index, finish reasons, the usage chunk)."""

    def __init__(self, request: CallRequest) -> None:
        self._result = CallResult()
        self._texts: dict[int, list[str]] = {}
        self._finish: dict[int, str] = {}
        self._tools: dict[int, dict[int, list[Any]]] = {}  # choice -> tool index -> [id, name, [arg pieces]]

    def feed(self, chunk: Any) -> None:
        """Runs once per chunk. The chunk most of a stream is made of (an SDK object with one choice
        whose delta carries text only, once the model is known) is read here with plain attribute
        access, about half the cost of the general path, :meth:`_feed_any`, which takes everything else."""
        try:
            text_only = chunk.usage is None and bool(self._result.response_model)
            if text_only:
                (choice,) = chunk.choices
                delta = choice.delta
                text, index = delta.content, choice.index
                text_only = (
                    choice.finish_reason is None
                    and delta.tool_calls is None
                    and delta.function_call is None
                    and type(text) is str
                    and type(index) is int
                )
        except (AttributeError, TypeError, ValueError):
            text_only = False
        if not text_only:
            self._feed_any(chunk)
            return
        if text:
            texts = self._texts.get(index)
            if texts is None:
                texts = self._texts[index] = []
            texts.append(text)

    def _feed_any(self, chunk: Any) -> None:
        """Any chunk, SDK object or dict. It reads each field once and skips what a chunk cannot carry:
        the id and model until known, Groq's ``x_groq`` (an undeclared, costly lookup on the SDK's
        models) except on a last chunk (one that finishes a choice or has none)."""
        get = _field
        result = self._result
        if result.response_id is None or not result.response_model:
            self._feed_header(chunk)
        choices = get(chunk, "choices")
        if type(choices) is not list:
            choices = as_list(choices)
        last = not choices
        for choice in choices:
            index = get(choice, "index", 0)
            reason = get(choice, "finish_reason")
            if reason:
                self._finish[index] = str(reason)
                last = True
            delta = get(choice, "delta")
            if delta is None:
                continue
            text = get(delta, "content")
            if text:
                texts = self._texts.get(index)
                if texts is None:
                    texts = self._texts[index] = []
                texts.append(text)
            calls = get(delta, "tool_calls")
            if calls is not None:
                self._feed_tool_calls(index, calls)
            legacy = get(delta, "function_call")
            if legacy is not None:
                self._feed_legacy_call(index, legacy)
        usage = get(chunk, "usage")
        if usage is None and last:  # Groq sends a stream's usage in the final chunk's ``x_groq.usage``
            usage = get(get_rare(chunk, "x_groq"), "usage")
        if usage is not None:
            result.usage = read_usage(usage)

    def _feed_header(self, chunk: Any) -> None:
        """The response id and model, from the first chunk that has them (Azure's first has neither)."""
        result = self._result
        if result.response_id is None:
            result.response_id = _field(chunk, "id") or None
        if not result.response_model:
            result.response_model = _field(chunk, "model") or None

    def _feed_legacy_call(self, index: int, legacy: Any) -> None:
        """A legacy ``function_call`` delta: one call per choice, kept at slot -1."""
        slot = self._tools.setdefault(index, {}).setdefault(-1, ["", "", []])
        slot[1] = _field(legacy, "name") or slot[1]
        piece = _field(legacy, "arguments")
        if piece:
            slot[2].append(piece)

    def _feed_tool_calls(self, index: int, calls: Any) -> None:
        for call in as_list(calls):
            slot = self._tools.setdefault(index, {}).setdefault(_field(call, "index", 0), ["", "", []])
            slot[0] = _field(call, "id") or slot[0]
            function = _field(call, "function")
            slot[1] = _field(function, "name") or slot[1]
            piece = _field(function, "arguments")
            if piece:
                slot[2].append(piece)

    def result(self) -> CallResult:
        result = self._result
        choices = sorted(set(self._texts) | set(self._finish) | set(self._tools))
        result.outputs = [
            OutputMessage(
                text="".join(self._texts.get(i, ())),
                tool_calls=[
                    ToolCall(name=name, arguments="".join(pieces), id=call_id)
                    for _, (call_id, name, pieces) in sorted(self._tools.get(i, {}).items())
                ],
                finish_reason=self._finish.get(i),
            )
            for i in choices
        ]
        return result
