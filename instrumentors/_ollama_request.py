"""Read Ollama request shapes: ``chat``, ``generate`` and ``embed`` arguments into a :class:`CallRequest`.

Shapes only (API reference: docs/api.md of ollama/ollama). Messages and tools may be plain dicts or the SDK's
pydantic models (``ollama.Message``, ``ollama.Tool``), and a tool may be a Python function, which the SDK
turns into a schema itself; ``options`` may be a dict or ``ollama.Options``.

Choices made here:

* Ollama sends no tool-call ids, and a tool result names its tool (``tool_name``) at best. The waste rules
  pair a result with the call it answers by id, so ids are made up here, from the call's place in the
  request: the k-th call of the assistant message at index i is ``ollama_<i>_<k>``, and each tool message
  after it answers the first unanswered call with its ``tool_name`` (or, without a name, the next one), the
  way the model itself reads them. A history that grows keeps its indexes, so the ids are stable from call
  to call. Calls in a response have no id (they have no place in a request yet).
* ``options.num_ctx`` is the context window the request runs with: it is ``CallRequest.context_window``.
* ``generate``: ``system`` is the instructions, ``prompt`` (and ``suffix``) the user's text. A ``context``
  (the token state a previous ``generate`` returned) is history the model already saw that carries no text:
  it is recorded like server-held history, so the input it adds counts as re-sent.
* A message's ``thinking`` and images are not counted (earlier turns' thinking is not re-read as text).
"""

from __future__ import annotations

import inspect
from typing import Any

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.invocation import CallRequest, ContextItem, ToolCall, ToolDefinition

from ._shapes import IdentityMemo, ParamNames, as_list, compact_json, get, read_params

_ROLES = frozenset({"system", "user", "assistant", "tool"})
# options field -> semconv request attribute (numbers only)
PARAM_NAMES = ParamNames(
    numbers=(
        (sc.REQUEST_MAX_TOKENS, "num_predict"),
        (sc.REQUEST_TEMPERATURE, "temperature"),
        (sc.REQUEST_TOP_P, "top_p"),
        (sc.REQUEST_TOP_K, "top_k"),
        (sc.REQUEST_PRESENCE_PENALTY, "presence_penalty"),
        (sc.REQUEST_FREQUENCY_PENALTY, "frequency_penalty"),
        (sc.REQUEST_SEED, "seed"),
    ),
    stop="stop",
)


def call_id(message_index: int, position: int) -> str:
    """The made-up id of a history tool call (see the module docstring)."""
    return f"ollama_{message_index}_{position}"


def _role(message: Any) -> str:
    role = get(message, "role", "user")
    return role if isinstance(role, str) and role in _ROLES else "user"  # an unhashable role would raise


def _text(message: Any) -> str:
    content = get(message, "content")
    return content if isinstance(content, str) else ""


def _tool_call(call: Any, call_id: str = "") -> ToolCall:
    function = get(call, "function")
    arguments = get(function, "arguments")
    if isinstance(arguments, str):  # a JSON string where the API wants an object: kept as sent
        text = arguments
    else:
        text = compact_json(dict(arguments) if arguments is not None else {})
    return ToolCall(name=get(function, "name", "") or "", arguments=text, id=call_id)


def read_output_calls(message: Any) -> list[ToolCall]:
    """Tool calls of a response message (no ids: Ollama sends none)."""
    return [_tool_call(call) for call in as_list(get(message, "tool_calls"))]


def _read_plain(message: Any) -> ContextItem:
    return ContextItem(role=_role(message), text=_text(message))


def _read_assistant(message: Any, index: int) -> ContextItem:
    calls = [_tool_call(call, call_id(index, k)) for k, call in enumerate(as_list(get(message, "tool_calls")))]
    return ContextItem(role="assistant", text=_text(message), tool_calls=calls)


def _read_tool_result(message: Any, answered: str) -> ContextItem:
    return ContextItem(role="tool", text=_text(message), tool_call_id=answered)


_plain_memo = IdentityMemo(_read_plain)
_assistant_memo = IdentityMemo(_read_assistant)
_tool_result_memo = IdentityMemo(_read_tool_result)


def _answer(unanswered: list[ToolCall], tool_name: Any) -> str:
    """The id of the call a tool message answers, taken off ``unanswered``."""
    for position, call in enumerate(unanswered):
        if not tool_name or call.name == tool_name:
            return unanswered.pop(position).id
    return ""


def read_messages(messages: Any) -> list[ContextItem]:
    items: list[ContextItem] = []
    unanswered: list[ToolCall] = []
    for index, message in enumerate(as_list(messages)):
        role = _role(message)
        if role == "assistant":
            item = _assistant_memo(message, index)
            unanswered = list(item.tool_calls)
        elif role == "tool":
            item = _tool_result_memo(message, _answer(unanswered, get(message, "tool_name")))
        else:
            item = _plain_memo(message)
        items.append(item)
    return items


def _schema(parameters: Any) -> Any:
    if hasattr(parameters, "model_dump"):  # ollama.Tool.Function.Parameters; "$defs" by its alias
        return parameters.model_dump(exclude_none=True, by_alias=True)
    return parameters


def _callable_tool(function: Any) -> ToolDefinition:
    """A Python function given as a tool: described the way the SDK describes it (``convert_function_to_tool``,
    ollama >= 0.4), or by name and docstring when that is not possible."""
    try:
        from ollama._utils import convert_function_to_tool

        return read_tool(convert_function_to_tool(function))
    except Exception:  # noqa: BLE001 - an unusual signature must not lose the tool
        return ToolDefinition(name=getattr(function, "__name__", ""), description=inspect.getdoc(function) or "")


def read_tool(tool: Any) -> ToolDefinition:
    if callable(tool) and not isinstance(tool, dict) and not hasattr(type(tool), "model_fields"):
        return _callable_tool(tool)
    function = get(tool, "function")
    parameters = get(function, "parameters")
    return ToolDefinition(
        name=get(function, "name", "") or "",
        description=get(function, "description", "") or "",
        parameters_json=compact_json(_schema(parameters)) if parameters is not None else "",
    )


_tool_memo = IdentityMemo(read_tool)


def read_options(request: CallRequest, options: Any) -> None:
    """Sampling parameters and the context window (``num_ctx``) from ``options`` into ``request``."""
    request.params.update(read_params(options, PARAM_NAMES))
    window = get(options, "num_ctx")
    if isinstance(window, int) and not isinstance(window, bool) and window > 0:
        request.context_window = window


def _read_common(request: CallRequest, kwargs: dict[str, Any]) -> None:
    read_options(request, kwargs.get("options"))
    output_format = kwargs.get("format")
    if output_format == "json" or isinstance(output_format, dict):
        request.params[sc.OUTPUT_TYPE] = "json"
    request.stream = kwargs.get("stream") is True
    if request.stream:
        request.params[sc.REQUEST_STREAM] = True


def read_chat(request: CallRequest, kwargs: dict[str, Any]) -> CallRequest:
    _read_common(request, kwargs)
    request.messages = read_messages(kwargs.get("messages"))
    request.tools = [_tool_memo(tool) for tool in as_list(kwargs.get("tools"))]
    return request


def read_generate(request: CallRequest, kwargs: dict[str, Any]) -> CallRequest:
    _read_common(request, kwargs)
    system = kwargs.get("system")
    if isinstance(system, str) and system:
        request.messages.append(ContextItem(role="system", text=system, is_instructions=True))
    for key in ("prompt", "suffix"):
        text = kwargs.get(key)
        if isinstance(text, str) and text:
            request.messages.append(ContextItem(role="user", text=text))
    if as_list(kwargs.get("context")):
        request.server_history_ref = "context"
    return request


def read_embed(request: CallRequest, kwargs: dict[str, Any]) -> CallRequest:
    read_options(request, kwargs.get("options"))
    # The inputs, for the repeated-request rule (embeddings are never counted or captured).
    inputs = kwargs.get("input")
    if isinstance(inputs, str):
        request.messages = [ContextItem("user", inputs)]
    elif isinstance(inputs, (list, tuple)) and all(isinstance(text, str) for text in inputs):
        request.messages = [ContextItem("user", text) for text in inputs]
    else:
        request.content_known = False
    return request
