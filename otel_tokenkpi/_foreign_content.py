"""Content readers for foreign GenAI spans: messages, tool definitions, outputs.

Three shapes carry the same things: semconv JSON attributes
(``gen_ai.input.messages`` etc., as the official instrumentations and
Anthropic's SDK write them), OpenLLMetry's flattened ``gen_ai.prompt.{i}.*``
and OpenInference's flattened ``llm.input_messages.{i}.message.*``. Everything
is read into semconv-style parts first, so one function turns parts into
context items. Values come from other people's code (and may be cut by
attribute length limits): whatever is malformed is skipped, never raised.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from . import semconv as sc
from .invocation import ContextItem, OutputMessage, ToolCall, ToolDefinition

TOOL_DEFINITIONS = "gen_ai.tool.definitions"

# Flattened list prefixes, grouped in one pass over the attributes.
PROMPT, COMPLETION, FUNCTIONS = "gen_ai.prompt.", "gen_ai.completion.", "llm.request.functions."
OI_INPUT, OI_OUTPUT, OI_TOOLS = "llm.input_messages.", "llm.output_messages.", "llm.tools."
_INDEXED_PREFIXES = (PROMPT, COMPLETION, FUNCTIONS, OI_INPUT, OI_OUTPUT, OI_TOOLS)
_INDEXED_STARTS = ("gen_ai.prompt.", "gen_ai.completion.", "llm.")

Indexed = dict[str, dict[int, dict[str, Any]]]

_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
}

Part = dict[str, Any]


# --- small readers ------------------------------------------------------------


def string(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def decode_json(value: Any) -> Any:
    """The decoded JSON of a string attribute; None when it is not a string or not valid JSON."""
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return None


def structured(value: Any) -> Any:
    """A content attribute's value: the decoded JSON of a string (None when invalid), or the value
    itself when the SDK kept it structured (SDK >= 1.4x keeps maps, and sequences as tuples)."""
    if isinstance(value, str):
        return decode_json(value)
    return value if isinstance(value, (list, tuple, Mapping)) else None


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _plain(value: Any) -> Any:
    """json.dumps fallback: a non-dict Mapping as a dict, anything else as its text."""
    return dict(value) if isinstance(value, Mapping) else str(value)


def compact(value: Any) -> str:
    """Compact JSON text, as adapters record schemas (instrumentors/_shapes.compact_json);
    a string holding JSON is re-compacted, any other string is kept as it is."""
    if value is None:
        return ""
    if isinstance(value, str):
        decoded = decode_json(value)
        if decoded is None:
            return value
        value = decoded
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_plain)
    except (TypeError, ValueError, RecursionError):
        return str(value)


def role(value: Any) -> str:
    """Roles normalised to system / user / assistant / tool; anything else counts as user input."""
    return _ROLES.get(value.lower(), "user") if isinstance(value, str) else "user"


def group_indexed(attributes: Mapping[str, Any]) -> Indexed:
    """``{prefix: {i: {rest: value}}}`` for keys ``prefix{i}.rest``, in one pass; keys whose
    index is not a number are skipped, and holes in the indices are simply absent."""
    grouped: Indexed = {}
    for key, value in attributes.items():
        if not (isinstance(key, str) and key.startswith(_INDEXED_STARTS)):
            continue
        for prefix in _INDEXED_PREFIXES:
            if key.startswith(prefix):
                split = _index_and_rest(key[len(prefix) :])
                if split is not None:
                    grouped.setdefault(prefix, {}).setdefault(split[0], {})[split[1]] = value
                break
    return {prefix: dict(sorted(items.items())) for prefix, items in grouped.items()}


def _index_and_rest(key: str) -> tuple[int, str] | None:
    index, dot, rest = key.partition(".")
    if not dot or not rest or not (index.isascii() and index.isdigit()):
        return None
    return int(index), rest


def _sub_indexed(fields: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """The ``prefix{j}.rest`` entries of one flattened item, in index order."""
    grouped: dict[int, dict[str, Any]] = {}
    for key, value in fields.items():
        if key.startswith(prefix):
            split = _index_and_rest(key[len(prefix) :])
            if split is not None:
                grouped.setdefault(split[0], {})[split[1]] = value
    return [grouped[i] for i in sorted(grouped)]


# --- parts -> context items ------------------------------------------------------


# Part types whose text the model does not read as context, or that carry no text: reasoning
# (the APIs drop earlier turns' thinking; the adapters never count it), media (blob, file, uri and
# pydantic-ai's binary / *-url parts: base64 or references, not text) and server-side tool calls (run
# by the provider, never sent back by the client). Any other unknown type is skipped as well: a
# GenericPart may hold anything, and a guess would make counts wrong rather than absent.
_TEXT_PART_TYPES = frozenset({"text"})
_RESULT_KEYS = ("response", "result")  # semconv; pydantic-ai


def _items_from_parts(item_role: str, parts: Any, tool_call_id: str = "") -> list[ContextItem]:
    """One message as context items. Each ``tool_call_response`` part becomes a tool item of its
    own (Anthropic and pydantic-ai send tool results inside user messages); text and tool calls stay
    together.

    Every part type of the semconv message schema is read: ``text`` (its ``content``), ``tool_call``
    and ``tool_call_response`` are counted; ``reasoning``, ``blob``, ``file``, ``uri``,
    ``server_tool_call(_response)`` and generic parts are not (see ``_TEXT_PART_TYPES``). Variants
    real emitters write: pydantic-ai's ``result`` for the response, its ``thinking`` / ``binary`` /
    ``*-url`` parts, ``builtin: true`` on its server-side tool parts and ``visible: false`` on a system
    prompt the request did not send.
    """
    current = ContextItem(role=item_role, tool_call_id=tool_call_id if item_role == "tool" else "")
    items: list[ContextItem] = []
    for part in parts if _is_list(parts) else []:
        if not isinstance(part, Mapping) or part.get("builtin") is True or part.get("visible") is False:
            continue
        kind = part.get("type")
        if kind in _TEXT_PART_TYPES:
            text = part.get("content")
            if not isinstance(text, str):
                text = part.get("text")
            if isinstance(text, str):
                current.text += text
        elif kind == "tool_call":
            call = _tool_call(part.get("name"), part.get("arguments"), part.get("id"))
            if call is not None:
                current.tool_calls.append(call)
        elif kind == "tool_call_response":
            if current.text or current.tool_calls:
                items.append(current)
                current = ContextItem(role=item_role)
            call_id = part.get("id")
            items.append(
                ContextItem(
                    role="tool",
                    text=_response_text(next((part[key] for key in _RESULT_KEYS if key in part), None)),
                    tool_call_id=call_id if isinstance(call_id, str) else "",
                )
            )
    if current.text or current.tool_calls or not items:
        items.append(current)
    return items


def _tool_call(name: Any, arguments: Any, call_id: Any) -> ToolCall | None:
    if not isinstance(name, str) or not name:
        return None
    text = arguments if isinstance(arguments, str) else compact(arguments)
    return ToolCall(name=name, arguments=text, id=call_id if isinstance(call_id, str) else "")


def _response_text(response: Any) -> str:
    """A tool result as text: a string as it is; a list of text blocks (Anthropic's shape)
    joined, so it reads the same as from our own adapters; anything else as compact JSON
    (a missing result, as when content capture is off, is empty)."""
    if response is None:
        return ""
    if isinstance(response, str):
        return response
    if _is_list(response) and response:
        texts = [_block_text(block) for block in response]
        if all(text is not None for text in texts):
            return "".join(text for text in texts if text is not None)
    return compact(response)


def _block_text(block: Any) -> str | None:
    if not isinstance(block, Mapping) or block.get("type") != "text":
        return None
    for key in ("text", "content"):
        value = block.get(key)
        if isinstance(value, str):
            return value
    return None


def _parts_from_blocks(blocks: list[Mapping[str, Any]]) -> list[Part]:
    """Provider content blocks (OpenAI content parts, Anthropic blocks) as semconv parts;
    images and other media carry no text and are dropped."""
    parts: list[Part] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "content": block.get("text")})
        elif kind == "tool_use":
            parts.append(
                {"type": "tool_call", "id": block.get("id"), "name": block.get("name"), "arguments": block.get("input")}
            )
        elif kind == "tool_result":
            parts.append(
                {"type": "tool_call_response", "id": block.get("tool_use_id"), "response": block.get("content")}
            )
    return parts


def _openllmetry_parts(fields: Mapping[str, Any]) -> list[Part]:
    """``gen_ai.prompt.{i}.*`` / ``gen_ai.completion.{i}.*``: content is a string, or the JSON of
    content blocks (OpenLLMetry dumps lists that way); tool calls are flattened beside it."""
    content = fields.get("content")
    blocks = decode_json(content) if isinstance(content, str) and content.startswith("[") else None
    if isinstance(blocks, list) and blocks and all(isinstance(b, Mapping) and "type" in b for b in blocks):
        parts = _parts_from_blocks(blocks)
    elif isinstance(content, str):
        parts = [{"type": "text", "content": content}]
    else:
        parts = []
    for call in _sub_indexed(fields, "tool_calls."):
        parts.append(
            {"type": "tool_call", "id": call.get("id"), "name": call.get("name"), "arguments": call.get("arguments")}
        )
    return parts


def _openinference_parts(fields: Mapping[str, Any]) -> list[Part]:
    """``llm.*_messages.{i}.message.*``: content or contents, and tool calls."""
    content = fields.get("message.content")
    parts: list[Part] = []
    if isinstance(content, str):
        parts.append({"type": "text", "content": content})
    else:
        for entry in _sub_indexed(fields, "message.contents."):
            if entry.get("message_content.type", "text") == "text":
                parts.append({"type": "text", "content": entry.get("message_content.text")})
    for call in _sub_indexed(fields, "message.tool_calls."):
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("tool_call.id"),
                "name": call.get("tool_call.function.name"),
                "arguments": call.get("tool_call.function.arguments"),
            }
        )
    return parts


# --- request content -------------------------------------------------------------


def system_instructions(attributes: Mapping[str, Any]) -> list[ContextItem]:
    """``gen_ai.system_instructions`` (a JSON list of parts) as one instructions item."""
    decoded = structured(attributes.get(sc.SYSTEM_INSTRUCTIONS))
    if isinstance(decoded, str):
        text = decoded
    elif _is_list(decoded):
        text = "".join(p["content"] for p in decoded if isinstance(p, Mapping) and isinstance(p.get("content"), str))
    else:
        return []
    return [ContextItem(role="system", text=text, is_instructions=True)] if text else []


def input_messages(attributes: Mapping[str, Any], indexed: Indexed) -> list[ContextItem] | None:
    """The request's chat messages from whichever convention carries them; None when none does
    (or when the semconv JSON is unreadable, e.g. cut by a length limit)."""
    decoded = structured(attributes.get(sc.INPUT_MESSAGES))
    if _is_list(decoded):
        items: list[ContextItem] = []
        for message in decoded:
            if isinstance(message, Mapping):
                items += _items_from_parts(role(message.get("role")), message.get("parts"))
        return items
    if PROMPT in indexed:
        return [
            item
            for fields in indexed[PROMPT].values()
            for item in _items_from_parts(
                role(fields.get("role")), _openllmetry_parts(fields), string(fields.get("tool_call_id")) or ""
            )
        ]
    if OI_INPUT in indexed:
        return [
            item
            for fields in indexed[OI_INPUT].values()
            for item in _items_from_parts(
                role(fields.get("message.role")),
                _openinference_parts(fields),
                string(fields.get("message.tool_call_id")) or "",
            )
        ]
    return None


def tool_definitions(attributes: Mapping[str, Any], indexed: Indexed) -> list[ToolDefinition]:
    """``gen_ai.tool.definitions`` JSON, OpenLLMetry ``llm.request.functions.{i}.*`` or
    OpenInference ``llm.tools.{i}.tool.*``; tools without a name are skipped."""
    decoded = structured(attributes.get(TOOL_DEFINITIONS))
    specs: list[Any]
    if _is_list(decoded):
        specs = list(decoded)
    elif FUNCTIONS in indexed:
        specs = list(indexed[FUNCTIONS].values())
    elif OI_TOOLS in indexed:
        specs = []
        for fields in indexed[OI_TOOLS].values():
            whole = decode_json(fields.get("tool.json_schema"))
            if isinstance(whole, Mapping):
                specs.append(whole)
            else:
                specs.append({key[len("tool.") :]: value for key, value in fields.items() if key.startswith("tool.")})
    else:
        return []
    tools = [_tool_definition(spec) for spec in specs]
    return [tool for tool in tools if tool is not None]


def _tool_definition(spec: Any) -> ToolDefinition | None:
    if not isinstance(spec, Mapping):
        return None
    inner = spec.get("function")
    if isinstance(inner, Mapping):  # OpenAI's {"type": "function", "function": {...}}
        spec = inner
    name = string(spec.get("name"))
    if name is None:
        return None
    schema = spec.get("parameters")
    if schema is None:
        schema = spec.get("input_schema")
    description = spec.get("description")
    return ToolDefinition(
        name=name,
        description=description if isinstance(description, str) else "",
        parameters_json=compact(schema),
    )


# --- outputs ---------------------------------------------------------------------


def outputs(attributes: Mapping[str, Any], indexed: Indexed, finish_reasons: list[str]) -> list[OutputMessage]:
    """Output messages from whichever convention carries them; the span-level finish reasons
    fill in what the messages lack (and stand alone when there is no output content)."""
    result: list[OutputMessage] = []
    decoded = structured(attributes.get(sc.OUTPUT_MESSAGES))
    if _is_list(decoded):
        for message in decoded:
            if isinstance(message, Mapping):
                result.append(_output(message.get("parts"), string(message.get("finish_reason"))))
    elif COMPLETION in indexed:
        pending: str | None = None  # OpenLLMetry puts Anthropic thinking in a completion of its own
        for fields in indexed[COMPLETION].values():
            reason = string(fields.get("finish_reason"))
            if fields.get("role") == "thinking":
                pending = reason or pending
                continue
            result.append(_output(_openllmetry_parts(fields), reason or pending))
            pending = None
    elif OI_OUTPUT in indexed:
        result = [_output(_openinference_parts(fields), None) for fields in indexed[OI_OUTPUT].values()]
    for index, reason in enumerate(finish_reasons):
        if index >= len(result):
            result.append(OutputMessage(finish_reason=reason))
        elif result[index].finish_reason is None:
            result[index].finish_reason = reason
    return result


def _output(parts: Any, finish_reason: str | None) -> OutputMessage:
    output = OutputMessage(finish_reason=finish_reason)
    for item in _items_from_parts("assistant", parts):
        if item.role == "assistant":
            output.text += item.text
            output.tool_calls += item.tool_calls
    return output
