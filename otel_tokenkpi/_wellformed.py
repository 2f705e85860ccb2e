"""Make an adapter's call record well-typed before anything else reads it.

Adapters read whatever the user passed (dicts, model objects, anything): a message whose ``role`` is a
dict or a tool call whose ``arguments`` is a list ends up in the record as it was read. The engine hashes
those fields (fingerprints, tool-call identity) and content capture serialises them, so one odd value would
cost the whole span its ``tokenkpi.*`` attributes. This is the one place that guarantees the types
``record.py`` declares, for every adapter: a value of the wrong type becomes the field's empty value
(``""``, None), usage numbers that are not non-negative ints become None. Found by the property-based
tests (``tests/test_fuzz_readers.py``).

Items the engine already fingerprinted or counted (re-sent history reused from an earlier call) were
checked then, so a long history costs one attribute test per item.
"""

from __future__ import annotations

from typing import Any

from .invocation import CallRequest, CallResult, ContextItem, ToolCall, ToolDefinition

_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def _text(value: Any) -> str:
    return value if type(value) is str else (str(value) if isinstance(value, str) else "")


def _tool_call(call: ToolCall) -> None:
    if type(call.name) is not str or type(call.arguments) is not str or type(call.id) is not str:
        call.name, call.arguments, call.id = _text(call.name), _text(call.arguments), _text(call.id)


def _item(item: ContextItem) -> None:
    if item.memo.fingerprint is not None or item.memo.count is not None:
        return
    if type(item.role) is not str or type(item.text) is not str or type(item.tool_call_id) is not str:
        item.role, item.text, item.tool_call_id = _text(item.role) or "user", _text(item.text), _text(item.tool_call_id)
    if not isinstance(item.tool_calls, list):
        item.tool_calls = []
    for call in item.tool_calls:
        _tool_call(call)


def _tool(tool: ToolDefinition) -> None:
    if tool.memo.count is None:
        tool.name, tool.description = _text(tool.name), _text(tool.description)
        tool.parameters_json = _text(tool.parameters_json)


def request(record: CallRequest | None) -> CallRequest | None:
    if record is not None:
        if record.model is not None and type(record.model) is not str:
            record.model = _text(record.model) or None
        for item in record.messages:
            _item(item)
        for tool in record.tools:
            _tool(tool)
    return record


def result(record: CallResult | None) -> CallResult | None:
    if record is None:
        return None
    for output in record.outputs:
        if type(output.text) is not str:
            output.text = _text(output.text)
        if output.finish_reason is not None and type(output.finish_reason) is not str:
            output.finish_reason = _text(output.finish_reason) or None
        for call in output.tool_calls:
            _tool_call(call)
    for name in ("response_id", "response_model", "output_type"):
        value = getattr(record, name)
        if value is not None and type(value) is not str:
            setattr(record, name, _text(value) or None)
    usage = record.usage
    if usage is not None:
        for name in _USAGE_FIELDS:
            value = getattr(usage, name)
            if value is not None and (type(value) is not int or value < 0):
                setattr(usage, name, int(value) if isinstance(value, int) and value >= 0 else None)
    return record
