"""Read Bedrock Converse shapes: request parameters, responses, ConverseStream events.

Shapes only (Bedrock Runtime API reference: Converse, ConverseStream, Message, ContentBlock,
ToolConfiguration, TokenUsage). boto3 hands us and the user plain dicts.

Usage: ``inputTokens`` EXCLUDES the cache reads and writes Bedrock reports beside it. The AWS prompt
caching guide (docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html) says that with caching on,
``inputTokens`` is only the non-cached input and the total input is ``inputTokens + cacheReadInputTokens +
cacheWriteInputTokens`` (the same fix landed in LiteLLM #15292 and ruby_llm #832). Our input therefore adds
both, so it INCLUDES cached tokens as semconv requires.
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

from ._shapes import IdentityMemo, ParamNames, as_list, compact_json, get, input_with_cache, read_params, tool_choice_of


def tool_result_text(content: Any) -> str:
    """A toolResult's content blocks: text as is, json as compact JSON; images and documents not counted."""
    pieces = []
    for block in as_list(content):
        text = get(block, "text")
        if isinstance(text, str):
            pieces.append(text)
        elif get(block, "json") is not None:
            pieces.append(compact_json(get(block, "json")))
    return "".join(pieces)


def _tool_call(tool_use: Any) -> ToolCall:
    return ToolCall(
        name=get(tool_use, "name", "") or "",
        arguments=compact_json(get(tool_use, "input")),
        id=get(tool_use, "toolUseId", "") or "",
    )


class MessageItems(list):  # type: ignore[type-arg]
    """The items of one message; ``text`` lets :class:`IdentityMemo` bound the characters it keeps."""

    @property
    def text(self) -> str:
        return "".join(item.text for item in self)


def read_message(message: Any) -> MessageItems:
    """One Converse message as context items: tool results become ``tool`` items of their own (in block
    order); text and toolUse blocks make the message's own item. image, document, video, cachePoint and
    other blocks carry no countable text."""
    role = get(message, "role", "user") or "user"
    items = MessageItems()
    texts: list[str] = []
    calls: list[ToolCall] = []

    def flush() -> None:
        if texts or calls:
            items.append(ContextItem(role=role, text="".join(texts), tool_calls=list(calls)))
            texts.clear()
            calls.clear()

    for block in as_list(get(message, "content")):
        text = get(block, "text")
        if isinstance(text, str):
            texts.append(text)
            continue
        tool_use = get(block, "toolUse")
        if tool_use is not None:
            calls.append(_tool_call(tool_use))
            continue
        result = get(block, "toolResult")
        if result is not None:
            flush()
            items.append(
                ContextItem(
                    role="tool",
                    text=tool_result_text(get(result, "content")),
                    tool_call_id=get(result, "toolUseId", "") or "",
                )
            )
    flush()
    return items


def read_tool_definition(tool: Any) -> ToolDefinition | None:
    spec = get(tool, "toolSpec")
    if spec is None:  # e.g. a cachePoint or systemTool entry: no schema to count
        return None
    return ToolDefinition(
        name=get(spec, "name", "") or "",
        description=get(spec, "description", "") or "",
        parameters_json=compact_json(get(get(spec, "inputSchema"), "json")),
    )


_message_memo = IdentityMemo(read_message)
_tool_memo = IdentityMemo(read_tool_definition)


PARAM_NAMES = ParamNames(
    numbers=(
        (sc.REQUEST_MAX_TOKENS, "maxTokens"),
        (sc.REQUEST_TEMPERATURE, "temperature"),
        (sc.REQUEST_TOP_P, "topP"),
    ),
    stop="stopSequences",
)


def request_params(params: dict[str, Any]) -> dict[str, Any]:
    return read_params(get(params, "inferenceConfig"), PARAM_NAMES)


def read_request(base: CallRequest, params: dict[str, Any], stream: bool) -> CallRequest:
    base.params = request_params(params)
    if stream:
        base.params[sc.REQUEST_STREAM] = True
    base.stream = stream
    system = [get(block, "text") for block in as_list(params.get("system"))]
    base.messages = [ContextItem(role="system", text=t, is_instructions=True) for t in system if isinstance(t, str)]
    for message in as_list(params.get("messages")):
        base.messages.extend(_message_memo(message))
    tools = (_tool_memo(t) for t in as_list(get(params.get("toolConfig"), "tools")))
    base.tools = [t for t in tools if t is not None]
    base.tool_choice = tool_choice_of(get(params.get("toolConfig"), "toolChoice"))
    return base


def read_usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    read = get(usage, "cacheReadInputTokens")
    write = get(usage, "cacheWriteInputTokens")
    return Usage(
        input_tokens=input_with_cache(get(usage, "inputTokens"), read, write),
        output_tokens=get(usage, "outputTokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def read_response(response: Any) -> CallResult:
    message = get(get(response, "output"), "message")
    texts, calls = [], []
    for block in as_list(get(message, "content")):
        text = get(block, "text")
        if isinstance(text, str):
            texts.append(text)
        elif get(block, "toolUse") is not None:
            calls.append(_tool_call(get(block, "toolUse")))
    reason = get(response, "stopReason")
    output = OutputMessage(text="".join(texts), tool_calls=calls, finish_reason=str(reason) if reason else None)
    return CallResult(outputs=[output], usage=read_usage(get(response, "usage")))


class EventReader:
    """Accumulates ConverseStream events: text deltas, toolUse starts and input pieces (keyed by
    ``contentBlockIndex``), the stop reason of ``messageStop`` and the usage of ``metadata``."""

    def __init__(self, request: CallRequest) -> None:
        self._texts: list[str] = []
        self._tools: dict[int, list[Any]] = {}  # block index -> [id, name, [input pieces]]
        self._reason: str | None = None
        self._usage: Usage | None = None
        self._started = False

    def feed(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        if "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            delta = get(body, "delta")
            text = get(delta, "text")
            if isinstance(text, str):
                self._texts.append(text)
            piece = get(get(delta, "toolUse"), "input")
            if isinstance(piece, str):
                self._slot(body)[2].append(piece)
        elif "contentBlockStart" in event:
            body = event["contentBlockStart"]
            tool_use = get(get(body, "start"), "toolUse")
            if tool_use is not None:
                slot = self._slot(body)
                slot[0] = get(tool_use, "toolUseId", "") or slot[0]
                slot[1] = get(tool_use, "name", "") or slot[1]
        elif "messageStart" in event:
            self._started = True
        elif "messageStop" in event:
            reason = get(event["messageStop"], "stopReason")
            self._reason = str(reason) if reason else None
        elif "metadata" in event:
            self._usage = read_usage(get(event["metadata"], "usage"))

    def _slot(self, body: Any) -> list[Any]:
        return self._tools.setdefault(get(body, "contentBlockIndex", 0), ["", "", []])

    def result(self) -> CallResult:
        result = CallResult(usage=self._usage)
        if self._started or self._texts or self._tools or self._reason:
            calls = [
                ToolCall(name=name, arguments="".join(pieces), id=call_id)
                for _, (call_id, name, pieces) in sorted(self._tools.items())
            ]
            result.outputs = [OutputMessage(text="".join(self._texts), tool_calls=calls, finish_reason=self._reason)]
        return result
