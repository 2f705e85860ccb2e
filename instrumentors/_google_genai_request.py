"""Read a google-genai ``generate_content`` request: contents, system instruction, tools, parameters.

Shapes only. ``contents`` takes many forms (the SDK's ``t_contents`` rules, mirrored here without
building the SDK's pydantic objects): a string, a Part, a Content (object or dict), or a list of any
of these, where consecutive loose parts are grouped into one user turn, or one model turn when they
are function calls. Roles: ``user`` -> user, ``model`` -> assistant. Parts: ``text`` (thought parts
excluded: they are the model's reasoning summaries, not the conversation), ``function_call`` -> a tool
call of the assistant message, ``function_response`` -> its own ``tool`` item; images, files and other
media carry no countable text.
"""

from __future__ import annotations

import inspect
from typing import Any

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.invocation import ContextItem, ToolCall, ToolDefinition

from ._shapes import IdentityMemo, ParamNames, as_list, compact_json, get, read_params

_ROLES = {"model": "assistant", "user": "user", "function": "tool", "tool": "tool", "system": "system"}
# Fields of a Tool that are not built-in tools of their own.
_NOT_BUILTIN_TOOLS = frozenset({"function_declarations", "mcp_servers"})


# --- contents ------------------------------------------------------------------------------------------
def _is_content(value: Any) -> bool:
    """A Content (``role`` + ``parts``) rather than a Part; an empty dict is a Content, as in the SDK."""
    if isinstance(value, dict):
        return "parts" in value or "role" in value or not value
    return hasattr(value, "parts") and hasattr(value, "role")


def _is_model_part(part: Any) -> bool:
    return not isinstance(part, str) and get(part, "function_call") is not None


def _turns(contents: Any) -> list[tuple[str | None, list[Any]]]:
    """``(role, parts)`` per turn, grouped the way the SDK groups them before sending."""
    if contents is None:
        return []
    if not isinstance(contents, list):
        if _is_content(contents):
            return [(get(contents, "role"), as_list(get(contents, "parts")))]
        return [("model" if _is_model_part(contents) else "user", as_list(contents))]
    turns: list[tuple[str | None, list[Any]]] = []
    loose: list[Any] = []

    def flush() -> None:
        if loose:
            role = "user" if not any(_is_model_part(p) for p in loose) else "model"
            turns.append((role, list(loose)))
            loose.clear()

    for item in contents:
        if isinstance(item, list):
            flush()
            turns.append(("user", item))
        elif _is_content(item):
            flush()
            turns.append((get(item, "role"), as_list(get(item, "parts"))))
        else:
            if loose and _is_model_part(item) != _is_model_part(loose[-1]):
                flush()
            loose.append(item)
    flush()
    return turns


def part_text(part: Any) -> str:
    """The countable text of one part (thought summaries excluded)."""
    if isinstance(part, str):
        return part
    text = get(part, "text")
    return text if isinstance(text, str) and not get(part, "thought") else ""


def read_function_call(part: Any) -> ToolCall | None:
    call = get(part, "function_call")
    if call is None:
        return None
    args = get(call, "args")
    return ToolCall(
        name=get(call, "name") or "", arguments=compact_json(args if args is not None else {}), id=get(call, "id") or ""
    )


def _items_of_turn(role: str | None, parts: list[Any]) -> list[ContextItem]:
    """One message per run of text / function-call parts; each function response is a ``tool`` item."""
    role = _ROLES.get(role, "user") if isinstance(role, str) else "user"  # an unhashable role would raise
    items: list[ContextItem] = []
    texts: list[str] = []
    calls: list[ToolCall] = []
    pending = False  # the current message has parts (maybe without text, e.g. an image)

    def flush() -> None:
        nonlocal pending
        if pending:
            items.append(ContextItem(role=role, text="".join(texts), tool_calls=list(calls)))
        texts.clear()
        calls.clear()
        pending = False

    for part in parts:
        response = None if isinstance(part, str) else get(part, "function_response")
        if response is not None:
            flush()
            items.append(
                ContextItem(
                    role="tool",
                    text=compact_json(get(response, "response") or {}),
                    tool_call_id=get(response, "id") or get(response, "name") or "",
                )
            )
            continue
        pending = True
        call = read_function_call(part)
        if call is not None:
            calls.append(call)
        else:
            texts.append(part_text(part))
    if pending or (not items and role == "assistant"):
        pending = True
        flush()
    return items


def _read_content(content: Any) -> list[ContextItem]:
    return [item for role, parts in _turns(content) for item in _items_of_turn(role, parts)]


_content_memo = IdentityMemo(_read_content)


def read_contents(contents: Any) -> list[ContextItem]:
    """Context items of ``contents``; Content objects re-sent unchanged are read once (IdentityMemo)."""
    if not isinstance(contents, list):
        return _content_memo(contents) if _is_content(contents) else _read_content(contents)
    if all(_is_content(c) for c in contents):
        return [item for c in contents for item in _content_memo(c)]
    return _read_content(contents)


def instructions_text(instruction: Any) -> str:
    """Text of ``system_instruction`` (a string, Part, Content, or a list of these)."""
    if instruction is None:
        return ""
    if isinstance(instruction, list):
        return "".join(instructions_text(i) for i in instruction)
    if _is_content(instruction):
        return "".join(part_text(p) for p in as_list(get(instruction, "parts")))
    return part_text(instruction)


# --- tools ---------------------------------------------------------------------------------------------
def _schema_json(schema: Any) -> str:
    """Compact JSON of a schema: a dict as given, an SDK Schema as it goes on the wire (camelCase)."""
    if schema is None:
        return ""
    if hasattr(schema, "model_dump"):
        schema = schema.model_dump(mode="json", exclude_none=True, by_alias=True)
    return compact_json(schema)


def _declaration(declaration: Any) -> ToolDefinition:
    schema = get(declaration, "parameters_json_schema")
    if schema is None:
        schema = get(declaration, "parameters")
    return ToolDefinition(
        name=get(declaration, "name") or "",
        description=get(declaration, "description") or "",
        parameters_json=_schema_json(schema),
    )


def _callable_tool(function: Any) -> ToolDefinition:
    """A Python function given as a tool (automatic function calling): declared the way the SDK declares
    it (``FunctionDeclaration.from_callable``), or by name and docstring when that is not possible."""
    try:
        from google.genai import types

        try:
            declaration = types.FunctionDeclaration.from_callable_with_api_option(
                callable=function, use_json_schema=True
            )
        except TypeError:
            declaration = types.FunctionDeclaration.from_callable_with_api_option(callable=function)
        return _declaration(declaration)
    except Exception:  # noqa: BLE001 - an unusual signature must not lose the tool
        return ToolDefinition(name=getattr(function, "__name__", ""), description=inspect.getdoc(function) or "")


def _read_tool(tool: Any) -> list[ToolDefinition]:
    if inspect.isfunction(tool) or inspect.ismethod(tool):
        return [_callable_tool(tool)]
    if not isinstance(tool, dict) and not hasattr(type(tool), "model_fields"):
        return []  # e.g. an MCP session: its tools are listed by the SDK at call time
    definitions = [_declaration(d) for d in as_list(get(tool, "function_declarations"))]
    names = tool.keys() if isinstance(tool, dict) else type(tool).model_fields
    for name in names:
        if name not in _NOT_BUILTIN_TOOLS and get(tool, name) is not None:
            definitions.append(ToolDefinition(name=name))  # a built-in tool (google_search, code_execution, ...)
    return definitions


_tool_memo = IdentityMemo(_read_tool)


def read_tools(tools: Any) -> list[ToolDefinition]:
    return [definition for tool in as_list(tools) for definition in _tool_memo(tool)]


# --- parameters ----------------------------------------------------------------------------------------
def output_type(config: Any) -> str | None:
    if get(config, "response_schema") is not None or get(config, "response_json_schema") is not None:
        return "json"
    mime = get(config, "response_mime_type")
    if mime == "application/json":
        return "json"
    if mime == "text/plain":
        return "text"
    return None


PARAM_NAMES = ParamNames(
    numbers=(
        (sc.REQUEST_MAX_TOKENS, "max_output_tokens"),
        (sc.REQUEST_TEMPERATURE, "temperature"),
        (sc.REQUEST_TOP_P, "top_p"),
        (sc.REQUEST_TOP_K, "top_k"),
        (sc.REQUEST_FREQUENCY_PENALTY, "frequency_penalty"),
        (sc.REQUEST_PRESENCE_PENALTY, "presence_penalty"),
        (sc.REQUEST_SEED, "seed"),
    ),
    stop="stop_sequences",
    choices="candidate_count",
)


def request_params(config: Any, stream: bool) -> dict[str, Any]:
    return read_params(config, PARAM_NAMES, stream=stream, output_type=output_type(config))


def read_messages(contents: Any, config: Any) -> list[ContextItem]:
    """The system instruction (as top-level instructions) followed by the contents."""
    messages = []
    system = instructions_text(get(config, "system_instruction"))
    if system:
        messages.append(ContextItem(role="system", text=system, is_instructions=True))
    messages.extend(read_contents(contents))
    return messages
