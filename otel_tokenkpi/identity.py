"""What makes two tool calls, two context items or two requests "the same".

The duplicate-tool-call and repeated-request rules compare calls by identity, not by object: a tool
call is its name and its arguments as a JSON value; a context item is its role, text, tool calls and
ids; a request is what the model is asked minus transport options (DESIGN "Identical tool calls",
"Identical requests"). Kept apart from the rules (:mod:`.waste`) and the history fold
(:mod:`.history`), which both need it, so that neither imports the other.

Fingerprints are keyed hashes with a per-process random key and never leave memory.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from . import semconv as sc
from .invocation import CallRequest, ContextItem, ToolCall

if TYPE_CHECKING:
    from .history import HistoryFold

# Request parameters that do not change what the model is asked (docs/architecture.md "Identical requests").
_IGNORED_PARAMS = frozenset({sc.REQUEST_STREAM})

_FINGERPRINT_KEY = os.urandom(16)


def canonical_json(text: str) -> str:
    """Arguments as a JSON value: key order and whitespace do not matter."""
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        return text.strip()


def tool_call_key(call: ToolCall) -> tuple[str, str]:
    """Two tool calls are identical when name and arguments (as JSON values) are. Computed once per call."""
    if call.key is None:
        call.key = (call.name, canonical_json(call.arguments or ""))
    return call.key


def item_fingerprint(item: ContextItem) -> int:
    """One context item's identity, computed once (re-sent items are the same objects every turn)."""
    memo = item.memo
    if memo.fingerprint is None:
        calls = tuple(tool_call_key(call) for call in item.tool_calls)
        memo.fingerprint = hash((item.role, item.text, item.tool_call_id, item.is_instructions, calls))
    return memo.fingerprint


def request_fingerprint(request: CallRequest, history: HistoryFold | None) -> int:
    """The canonical request: what the model is asked, minus transport options.

    Its content part is the history fold's fingerprint chain (one hash per
    item, cached on re-sent items), so a long history is never serialised.
    Requests that are not folded (embeddings) hash their items' fingerprints.
    """
    if history is not None:
        content: tuple[int, int] = (history.items, history.fingerprint)
    else:
        content = (len(request.messages), hash(tuple([item_fingerprint(item) for item in request.messages])))
    params = tuple(
        sorted(
            (key, tuple(value) if isinstance(value, list) else value)
            for key, value in request.params.items()
            if key not in _IGNORED_PARAMS
        )
    )
    tools = tuple((tool.name, tool.description, tool.parameters_json) for tool in request.tools)
    return hash(
        (
            _FINGERPRINT_KEY,
            request.operation,
            request.provider,
            request.model,
            params,
            content,
            tools,
            request.server_history_ref,
        )
    )
