"""The user API: ``attributes``, ``conversation``, ``task`` and ``record_outcome``.

These let a team say *whose* tokens they were and *what they bought*: the
user's own attributes (team, feature, tenant) go on every span our
instrumentors create inside the block and on roll-ups; ``task()`` opens a
workflow span that carries the roll-ups of the calls inside it; outcomes turn
token counts into tokens per success. Bad input raises at the call, clearly;
nothing here ever raises from inside an instrumented model call.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from . import semconv as sc
from ._safety import run_hook
from .engine import ENGINE
from .kpi_metrics import metric_user_attributes
from .rollup import Rollup
from .surroundings import CONVERSATION_ID, TASK_ROLLUPS, USER_ATTRIBUTES, current_conversation_id, validate_attributes
from .version import __version__

F = TypeVar("F", bound=Callable[..., Any])

# Set by instrument(tracer_provider=...); None means the global provider.
_tracer_provider: Any = None


def use_tracer_provider(tracer_provider: Any) -> None:
    """Called by each instrumentor with the provider it was given (None: the global one)."""
    global _tracer_provider
    _tracer_provider = tracer_provider


def _tracer() -> trace.Tracer:
    return trace.get_tracer("otel_tokenkpi", __version__, _tracer_provider)


class _Block:
    """A context manager that is also a decorator (sync and async functions).

    As a decorator each call gets a fresh block, so one decorated function can
    run concurrently in many threads and tasks.
    """

    def _enter(self) -> Any:
        raise NotImplementedError

    def _exit(self, state: Any, exc: BaseException | None) -> None:
        raise NotImplementedError

    def _fresh(self) -> _Block:
        fresh = copy.copy(self)
        fresh._states = []
        return fresh

    def __enter__(self) -> _Block:
        self._states = [*getattr(self, "_states", []), self._enter()]
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._exit(self._states.pop(), exc)

    async def __aenter__(self) -> _Block:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh():
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class _ContextVarBlock(_Block):
    def __init__(self, var: contextvars.ContextVar[Any], value: Any) -> None:
        self._var, self._value = var, value

    def _enter(self) -> Any:
        return self._var.set(self._value)

    def _exit(self, state: Any, exc: BaseException | None) -> None:
        self._var.reset(state)


class _AttributesBlock(_ContextVarBlock):
    def __init__(self, attrs: dict[str, Any]) -> None:
        super().__init__(USER_ATTRIBUTES, attrs)

    def _enter(self) -> Any:
        # Nested blocks merge; the inner value wins.
        return self._var.set({**USER_ATTRIBUTES.get(), **self._value})


def attributes(mapping: Mapping[str, Any] | None = None, /, **attrs: Any) -> _Block:
    """Put your own attributes (team, feature, ...) on every span our
    instrumentors create inside the block, and on roll-ups.

    ``with otel_tokenkpi.attributes(team="search"):`` or as a decorator.
    Values must be OTel attribute values (str, bool, int, float, or a
    homogeneous sequence of one of them); anything else raises ``TypeError``
    naming the key.
    """
    if mapping is not None and not isinstance(mapping, Mapping):
        raise TypeError(f"otel_tokenkpi.attributes() takes a mapping or keywords, got {type(mapping).__name__}")
    merged = {**(mapping or {}), **attrs}
    return _AttributesBlock(validate_attributes(merged, "otel_tokenkpi.attributes()"))


def conversation(conversation_id: str) -> _Block:
    """Scope the engine's conversation state to ``conversation_id`` across traces,
    and set ``gen_ai.conversation.id`` on our spans inside the block."""
    if not isinstance(conversation_id, str) or not conversation_id:
        raise TypeError(f"otel_tokenkpi.conversation() needs a non-empty str id, got {conversation_id!r}")
    return _ContextVarBlock(CONVERSATION_ID, conversation_id)


class _Task(_Block):
    """An INTERNAL ``invoke_workflow {name}`` span whose roll-ups are set before it ends."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _enter(self) -> Any:
        user_attributes = USER_ATTRIBUTES.get()
        attrs: dict[str, Any] = {
            **user_attributes,
            sc.OPERATION_NAME: sc.INVOKE_WORKFLOW,
            sc.AGENT_NAME: self.name,
            sc.WORKFLOW_NAME: self.name,
        }
        conversation_id = current_conversation_id(user_attributes)
        if conversation_id:
            attrs[sc.CONVERSATION_ID] = conversation_id
        is_root = not trace.get_current_span().get_span_context().is_valid
        span = _tracer().start_span(f"{sc.INVOKE_WORKFLOW} {self.name}", kind=SpanKind.INTERNAL, attributes=attrs)
        rollup = Rollup(user_attributes)
        context_token = otel_context.attach(trace.set_span_in_context(span))
        rollups_token = TASK_ROLLUPS.set((*TASK_ROLLUPS.get(), rollup))
        return span, rollup, context_token, rollups_token, is_root

    def _exit(self, state: Any, exc: BaseException | None) -> None:
        span, rollup, context_token, rollups_token, _ = state
        TASK_ROLLUPS.reset(rollups_token)
        otel_context.detach(context_token)
        if span.is_recording():
            run_hook("task.rollup", span.set_attributes, rollup.attributes())
            if exc is not None:
                span.set_attribute(sc.ERROR_TYPE, type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
        span.end()
        context = span.get_span_context()
        if context.is_valid and state[4]:  # a local root: its trace's rule state is done with
            run_hook("task.end_trace", ENGINE.end_trace, context.trace_id)


def task(name: str) -> _Block:
    """A unit of work whose model calls are rolled up on its own span.

    Decorator or context manager, sync or async::

        @otel_tokenkpi.task("triage")
        def triage(ticket): ...

    Needs no span processor: the roll-ups are set before the span ends.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"otel_tokenkpi.task() needs a non-empty str name, got {name!r}")
    return _Task(name)


def record_outcome(
    success: bool, *, conversation_id: str | None = None, trace_id: int | str | None = None, **attrs: Any
) -> None:
    """Mark whether the work succeeded, so roll-ups can report tokens per success.

    Without ``conversation_id`` / ``trace_id`` it marks the innermost ``task()``
    (or, with the span processor, the trace's local root). Outcomes that arrive
    later (user feedback) pass the conversation or trace id: an ended span cannot
    change, so a ``record_outcome`` span linked to that trace is emitted instead.
    """
    if not isinstance(success, bool):
        raise TypeError(f"record_outcome(success) must be a bool, got {type(success).__name__}")
    extra = validate_attributes(attrs, "otel_tokenkpi.record_outcome()")
    late_trace_id = _parse_trace_id(trace_id) if trace_id is not None else None
    if conversation_id is not None and (not isinstance(conversation_id, str) or not conversation_id):
        raise TypeError(f"record_outcome(conversation_id=...) must be a non-empty str, got {conversation_id!r}")
    user_attributes = {**USER_ATTRIBUTES.get(), **extra}
    if conversation_id is not None or late_trace_id is not None:
        run_hook("api.late_outcome", _late_outcome, success, conversation_id, late_trace_id, user_attributes)
    else:
        run_hook("api.outcome", _current_outcome, success, extra)
    metric_attrs = metric_user_attributes(user_attributes, ENGINE.metric_user_attributes)
    run_hook("api.outcome_metric", ENGINE.default_metrics().record_outcome, success, metric_attrs)


def _parse_trace_id(trace_id: int | str) -> int:
    if isinstance(trace_id, int) and not isinstance(trace_id, bool) and 0 < trace_id < 2**128:
        return trace_id
    if isinstance(trace_id, str):
        try:
            value = int(trace_id, 16)
        except ValueError:
            value = 0
        if 0 < value < 2**128:
            return value
    raise TypeError(
        f"record_outcome(trace_id=...) must be a non-zero 128-bit int or 32-digit hex str, got {trace_id!r}"
    )


def _current_outcome(success: bool, extra: dict[str, Any]) -> None:
    rollups = TASK_ROLLUPS.get()
    for index, rollup in enumerate(rollups):
        rollup.add_outcome(success, own=index == len(rollups) - 1)
    if rollups and extra:
        rollups[-1].user_attributes.update(extra)
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        trace_rollup = ENGINE.trace_rollup(context.trace_id, create=True)
        if trace_rollup is not None:
            trace_rollup.add_outcome(success, own=not rollups)
            if not rollups and extra:
                trace_rollup.user_attributes.update(extra)
    conversation_id = current_conversation_id(USER_ATTRIBUTES.get())
    state = ENGINE.outcome_target(conversation_id, None) if conversation_id else None
    if state is not None and success:
        with state.lock:
            state.successes += 1


def _late_outcome(success: bool, conversation_id: str | None, trace_id: int | None, user_attributes: dict) -> None:
    state = ENGINE.outcome_target(conversation_id, trace_id)
    attrs: dict[str, Any] = {**user_attributes, sc.OUTCOME: "success" if success else "failure"}
    links = []
    if conversation_id is not None:
        attrs[sc.CONVERSATION_ID] = conversation_id
    if state is not None:
        with state.lock:
            if success:  # a failure buys nothing: its span carries no tokens-per-success figure
                state.successes += 1
                attrs[sc.TRACE_TOKENS_PER_SUCCESS] = state.tokens / state.successes
            last_span = state.last_span
        if last_span is not None:
            links.append(Link(SpanContext(*last_span, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))
    span = _tracer().start_span("record_outcome", kind=SpanKind.INTERNAL, attributes=attrs, links=links)
    span.end()
