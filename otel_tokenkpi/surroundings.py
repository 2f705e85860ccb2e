"""The user's blocks, as context variables the lifecycle reads at call start.

``attributes()``, ``conversation()`` and ``task()`` (see :mod:`otel_tokenkpi.api`)
set these; every model call captures them into a :class:`CallSurroundings` when it
starts, because a stream may be consumed (and end) outside the block.
Context variables follow asyncio tasks and ``contextvars.copy_context()``, so
concurrent conversations never see each other's values.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from . import semconv as sc
from .invocation import AttributeValue, CallSurroundings

# The default is never mutated: blocks always set a new dict.
USER_ATTRIBUTES: contextvars.ContextVar[dict[str, AttributeValue]] = contextvars.ContextVar(
    "tokenkpi_user_attributes",
    default={},  # noqa: B039
)
CONVERSATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("tokenkpi_conversation_id", default=None)
TASK_ROLLUPS: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar("tokenkpi_task_rollups", default=())

_PRIMITIVE_TYPES = (str, bool, int, float)


def validate_attributes(attrs: Mapping[str, Any], where: str) -> dict[str, AttributeValue]:
    """OTel attribute values only: a primitive, or a homogeneous sequence of one.

    Checked at the user's call so that a bad value fails there, clearly,
    instead of being dropped by the SDK with a log line nobody reads.
    """
    clean: dict[str, AttributeValue] = {}
    for key, value in attrs.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{where}: attribute keys must be non-empty strings, got {key!r}")
        if isinstance(value, _PRIMITIVE_TYPES):
            clean[key] = value
            continue
        if isinstance(value, (list, tuple)):
            kinds = {type(item) for item in value}
            if len(kinds) <= 1 and kinds <= set(_PRIMITIVE_TYPES):
                clean[key] = list(value)  # type: ignore[assignment]
                continue
            raise TypeError(
                f"{where}: attribute {key!r} must be a sequence of one type (str, bool, int or float); "
                f"got a sequence of {sorted(k.__name__ for k in kinds)}"
            )
        raise TypeError(
            f"{where}: attribute {key!r} must be str, bool, int, float or a homogeneous sequence of them; "
            f"got {type(value).__name__}"
        )
    return clean


def current_conversation_id(user_attributes: Mapping[str, Any]) -> str | None:
    """gen_ai.conversation.id set as a user attribute wins; else ``conversation(id)``."""
    value = user_attributes.get(sc.CONVERSATION_ID)
    return str(value) if value else CONVERSATION_ID.get()


def capture_start() -> CallSurroundings:
    """The scope of a call about to start (before its span exists)."""
    user_attributes = USER_ATTRIBUTES.get()
    parent = trace.get_current_span().get_span_context()
    return CallSurroundings(
        user_attributes=user_attributes,
        conversation_id=current_conversation_id(user_attributes),
        has_parent=parent.is_valid,
        rollups=TASK_ROLLUPS.get(),
        started_at=time.time(),
    )


def set_span_ids(scope: CallSurroundings, span: Any) -> None:
    context = span.get_span_context()
    if context.is_valid:
        scope.trace_id, scope.span_id = context.trace_id, context.span_id


def start_attributes(scope: CallSurroundings) -> dict[str, AttributeValue]:
    """What a span started inside the user's blocks carries."""
    attrs = dict(scope.user_attributes)
    if scope.conversation_id:
        attrs[sc.CONVERSATION_ID] = scope.conversation_id
    return attrs
