"""Wrappers for client methods that are not one model call each, around the call lifecycle.

- a ``stream()`` helper whose ``__enter__`` calls a wrapped ``create`` (openai): its exit ends that call;
- a helper that builds its request now and sends it later, not through a wrapped method (anthropic's
  ``messages.stream()``): the pending request is sent through the lifecycle;
- a method that returns a context manager sending the request on enter (cohere's raw ``chat_stream``):
  the call starts at enter and ends at exit;
- a client library's per-retry hook: the failed attempt is noted on the call in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wrapt

from ._safety import IN_MODEL_CALL, log_once, run_hook
from .lifecycle import (
    Endpoint,
    ModelCall,
    begin_call,
    collect_helper_calls,
    deliver,
    fail,
    materialize,
    model_call_wrapper,
)
from .recorder import Recorder
from .streams import HelperManagerProxy


def stream_helper_wrapper(recorder: Recorder) -> Callable[..., Any]:
    """Wrap a ``stream()`` helper that returns a context manager and calls the
    (wrapped) ``create`` inside ``__enter__``: the span comes from ``create``;
    this only makes the helper's exit end it."""

    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        manager = wrapped(*args, **kwargs)
        if not recorder.switch.enabled:
            return manager
        return run_hook("lifecycle.helper_proxy", HelperManagerProxy, manager, collect_helper_calls) or manager

    return wrapper


def deferred_call_wrapper(
    recorder: Recorder, endpoint: Endpoint, defer: Callable[[Any, Callable[[Any], Any]], bool], *, is_async: bool
) -> Callable[..., Any]:
    """Wrap a helper that builds its request now and sends it later, not through a wrapped method.

    anthropic's ``messages.stream(**kwargs)`` returns a manager whose ``__enter__`` sends the request
    built from ``kwargs``. The adapter's ``defer(manager, wrap)`` swaps the manager's pending request
    (a zero-argument callable; for async, an awaitable) for ``wrap(pending)`` and returns False when
    it finds none (an unknown client version: no span, one warning). ``wrap`` sends the pending
    request through the same lifecycle as a wrapped method, as a stream described by ``kwargs``, so
    the span starts when the request is sent and the stream the manager builds on is our proxy.
    """
    send = model_call_wrapper(recorder, endpoint, is_async=is_async)

    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if not recorder.switch.enabled or IN_MODEL_CALL.get():
            return wrapped(*args, **kwargs)
        materialize(endpoint, kwargs)  # so the body the SDK builds now and what we read later are the same lists
        manager = wrapped(*args, **kwargs)
        call_kwargs = {**kwargs, "stream": True}

        def wrap(pending: Any) -> Any:
            if is_async:
                return send(lambda **_: pending, instance, (), call_kwargs)
            return lambda: send(lambda **_: pending(), instance, (), call_kwargs)

        if not run_hook(f"{endpoint.name}.defer", defer, manager, wrap, default=True):
            log_once(
                f"defer:{endpoint.name}",
                message=f"otel-tokenkpi: {type(manager).__qualname__} has no pending request in this client "
                "version; its calls are not instrumented",
            )
        return manager

    return wrapper


def entered_call_wrapper(endpoint: Endpoint) -> Callable[[Any], Callable[..., Any]]:
    """``make_wrapper`` for a method that returns a context manager (sync or async) whose enter sends the
    request and returns the response (cohere's raw ``chat_stream``, a ``contextlib.contextmanager``): the
    call starts at enter, read from the method's kwargs as ``endpoint`` says; what enter returns goes
    through ``endpoint.unwrap`` like any result (a stream inside it is proxied); the exit ends the call."""

    def make(recorder: Recorder) -> Callable[..., Any]:
        def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
            manager = wrapped(*args, **kwargs)
            if not recorder.switch.enabled:
                return manager
            return _CallOnEnter(manager, recorder, endpoint, instance, kwargs)

        return wrapper

    return make


class _CallOnEnter(wrapt.ObjectProxy):  # type: ignore[misc]
    """A context manager whose enter makes one model call (unless one of ours is already in flight)."""

    def __init__(self, manager: Any, recorder: Recorder, endpoint: Endpoint, instance: Any, kwargs: dict) -> None:
        super().__init__(manager)
        self._self_start = (recorder, endpoint, instance, kwargs)
        self._self_call: ModelCall | None = None

    def _begin(self) -> ModelCall | None:
        if IN_MODEL_CALL.get():
            return None
        self._self_call = begin_call(*self._self_start)
        return self._self_call

    def __enter__(self) -> Any:
        call = self._begin()
        if call is None:
            return self.__wrapped__.__enter__()
        try:
            entered = call.in_flight(self.__wrapped__.__enter__)
        except BaseException as exc:
            fail(call, exc)
            raise
        return deliver(call, entered, False)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            if self._self_call is not None:
                self._self_call.end_stream()

    async def __aenter__(self) -> Any:
        call = self._begin()
        if call is None:
            return await self.__wrapped__.__aenter__()
        try:
            entered = await call.in_flight_async(self.__wrapped__.__aenter__)
        except BaseException as exc:
            fail(call, exc)
            raise
        return deliver(call, entered, True)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            if self._self_call is not None:
                self._self_call.end_stream()


def retry_wrapper(read_failure: Callable[[Any, tuple, dict], tuple[int | None, str | None]]) -> Callable[..., Any]:
    """A wrapt wrapper for the method a client library calls once per failed attempt it will retry (before
    its back-off sleep; sync or async alike: the note is taken when the method is called). The attempt is
    noted on the model call in flight, if there is one of ours; ``read_failure(client, args, kwargs)``
    gives the attempt's HTTP status code (None when no response came) and its ``error.type``."""

    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        call = IN_MODEL_CALL.get()
        if isinstance(call, ModelCall):
            failure = run_hook("lifecycle.read_failure", read_failure, instance, args, kwargs)
            if failure is not None:
                call.note_retry(*failure)
        return wrapped(*args, **kwargs)

    return wrapper
