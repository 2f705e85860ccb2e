"""The call lifecycle, written once for every provider.

A wrapped client method runs through :func:`model_call_wrapper`: the adapter's
``read_request`` turns kwargs into a :class:`CallRequest`, a CLIENT span
starts, the real call runs with that span current, and the response (or each
stream chunk, via the proxies of :mod:`otel_tokenkpi.streams`) is read back
into a :class:`CallResult`. :meth:`ModelCall.finish` then hands the record to
the engine and sets every attribute BEFORE ``span.end()``, so the attributes
reach whatever exporter the user configured.

Guards (docs/architecture.md): the recorder's switch (wrappers bound before
``uninstrument()`` go quiet), :data:`IN_MODEL_CALL` (a nested wrapped call is
the same call; it holds the call in flight, so an SDK's retry hook can note a
failed attempt on it), and :func:`run_hook` around every piece of our own code.

A client library's request path (one method every API call of the client goes
through, e.g. the Stainless SDKs' ``SyncAPIClient.request``) is wrapped by
:func:`routed_call_wrapper`: the adapter's route picks the endpoint from the
request (its path) and hands over the request body to read. It catches calls
that bypass the public methods we patch (a client method bound before
``instrument()``); under a public method's span it stays quiet.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from . import _wellformed, surroundings
from ._safety import IN_MODEL_CALL, run_hook
from .bodies import UnreadBody, watch_body
from .invocation import CallRequest, CallResult, CallSurroundings, FinishedCall
from .recorder import Recorder, call_identity_attributes
from .streams import AsyncStreamProxy, SyncStreamProxy


class StreamReader(Protocol):
    """Accumulates stream chunks into a result. Supplied by an adapter."""

    def feed(self, chunk: Any) -> None: ...
    def result(self) -> CallResult | None: ...


def _no_unwrap(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    return result, None


@dataclass(frozen=True)
class Endpoint:
    """How to read one wrapped method: the whole of an adapter's contribution.

    ``unwrap`` sees the raw return value (e.g. a raw-response object) and
    returns ``(parsed, rewrap)``; for streams, ``rewrap(proxy)`` puts our proxy
    where the user will find the stream and returns what the user gets.
    ``materialize`` names kwargs that may be one-shot iterators: they are
    turned into lists (same items) before the adapter reads them, so reading
    never consumes the user's request.
    """

    name: str
    read_request: Callable[[Any, dict[str, Any]], CallRequest | None]  # None: not a call of its own, no span
    read_response: Callable[[Any], CallResult]
    stream_reader: Callable[[CallRequest], StreamReader] | None = None
    unwrap: Callable[[Any], tuple[Any, Callable[[Any], Any] | None]] = _no_unwrap
    materialize: tuple[str, ...] = ()
    # Opt-in request change (e.g. ask for stream usage); None = never touch kwargs.
    adjust: Callable[[dict[str, Any]], None] | None = None
    # Parameter names, in order, of arguments the method also takes positionally (after ``self``),
    # e.g. ``ollama.chat("llama3", messages)``: the adapter reads them as if passed by keyword.
    positional: tuple[str, ...] = ()


# Calls opened while a stream() helper's __enter__ runs; the helper's exit ends them.
_HELPER_CALLS: contextvars.ContextVar[list[ModelCall] | None] = contextvars.ContextVar(
    "tokenkpi_helper_calls", default=None
)


@contextlib.contextmanager
def collect_helper_calls() -> Iterator[list[ModelCall]]:
    """The calls opened inside this block (a ``stream()`` helper's ``__enter__``)."""
    calls: list[ModelCall] = []
    token = _HELPER_CALLS.set(calls)
    try:
        yield calls
    finally:
        _HELPER_CALLS.reset(token)


class ModelCall:
    """One model call in flight: its span, request and (for streams) reader."""

    __slots__ = (
        "recorder",
        "endpoint",
        "request",
        "surroundings",
        "span",
        "_start",
        "_reader",
        "_ended",
        "_lock",
        "_prepared",
        "_resends",
    )

    def __init__(self, recorder: Recorder, endpoint: Endpoint, request: CallRequest) -> None:
        self.recorder = recorder
        self.endpoint = endpoint
        self.request = request
        self._reader: StreamReader | None = None
        self._ended = False
        self._resends = 0
        self._lock = threading.Lock()
        self.surroundings: CallSurroundings = (
            run_hook("lifecycle.scope", surroundings.capture_start) or CallSurroundings()
        )
        self.span = recorder.tracer.start_span(
            f"{request.operation} {request.model}" if request.model else request.operation,
            kind=SpanKind.CLIENT,
            attributes={**surroundings.start_attributes(self.surroundings), **_start_attributes(request)},
        )
        # Hooked on its own: the span has started, so a failure here must not lose the call (the span
        # would never end); the scope just lacks span ids, as for a non-recording span.
        run_hook("lifecycle.span_ids", surroundings.set_span_ids, self.surroundings, self.span)
        self._prepared = run_hook("engine.prepare", recorder.prepare, request)
        self._start = time.perf_counter()

    # -- results ---------------------------------------------------------
    def on_result(self, result: Any, is_async: bool) -> Any:
        """Read a returned value; return what the user gets (maybe a proxy)."""
        parsed, rewrap = self.endpoint.unwrap(result)
        if isinstance(parsed, UnreadBody):  # read as the user reads it (with_streaming_response)
            if not self._watch_body(parsed):
                self.finish(None)
            return result
        if parsed is None:  # nothing we can read
            self.finish(None)
            return result
        if not self.request.stream:
            self.finish(run_hook(f"{self.endpoint.name}.read_response", self.endpoint.read_response, parsed))
            return result
        if self.endpoint.stream_reader is None or not _is_stream(parsed, is_async):
            self.finish(None)
            return result
        self._reader = reader = self.endpoint.stream_reader(self.request)
        # Chunks go straight to the reader; one that arrives after the call ended changes nothing recorded.
        proxy = (AsyncStreamProxy if is_async else SyncStreamProxy)(parsed, self, reader.feed)
        return rewrap(proxy) if rewrap is not None else proxy

    def _watch_body(self, body: UnreadBody) -> bool:
        """Read an unread response body as the user reads it: the JSON document through the endpoint's
        ``read_response``, an event stream's events through its stream reader; the call ends with the body
        (read to its end: complete; closed or dropped before: incomplete, with what was seen)."""
        endpoint = self.endpoint
        reader: StreamReader
        if self.request.stream:
            if endpoint.stream_reader is None:
                return False
            reader = endpoint.stream_reader(self.request)
        else:
            reader = _DocumentReader(endpoint)
        self._reader = reader
        return bool(watch_body(body.http_response, reader.feed, self._body_ended))

    def _body_ended(self, completed: bool, error: BaseException | None) -> None:
        self.end_stream(error, completed)

    def in_flight(self, fetch: Callable[[], Any]) -> Any:
        """``fetch()`` with this call's span current and this call in flight (a stream's first item: a
        lazily started stream sends its request there)."""
        token = otel_context.attach(trace.set_span_in_context(self.span))
        nested = IN_MODEL_CALL.set(self)
        try:
            return fetch()
        finally:
            IN_MODEL_CALL.reset(nested)
            otel_context.detach(token)

    async def in_flight_async(self, fetch: Callable[[], Any]) -> Any:
        """:meth:`in_flight` for an async stream: ``await fetch()``."""
        token = otel_context.attach(trace.set_span_in_context(self.span))
        nested = IN_MODEL_CALL.set(self)
        try:
            return await fetch()
        finally:
            IN_MODEL_CALL.reset(nested)
            otel_context.detach(token)

    def note_retry(self, status_code: int | None, error_type: str | None) -> None:
        """The client library gave up on one attempt of this call and will send it again."""
        attempt = self._resends
        self._resends += 1
        run_hook("recorder.retry", self.recorder.record_retry, self.span, attempt, status_code, error_type)

    def end_stream(self, error: BaseException | None = None, completed: bool = False) -> None:
        """End a streamed call; ``completed`` only when the stream ran to its end."""
        if self._ended:
            return
        reader = self._reader
        result = run_hook(f"{self.endpoint.name}.stream_result", reader.result) if reader else None
        self.finish(result, error, complete=completed and error is None)

    def finish(self, result: CallResult | None, error: BaseException | None = None, complete: bool = True) -> None:
        """End the call exactly once, whoever gets here first (exhaustion,
        close, exit, an error, garbage collection)."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        record = FinishedCall(
            request=self.request,
            # Adapters record what they read; the engine and the span need the declared types.
            result=run_hook("lifecycle.wellformed_result", _wellformed.result, result, default=result),
            error_type=type(error).__qualname__ if error is not None else None,
            duration_s=time.perf_counter() - self._start,
            complete=complete,
            surroundings=self.surroundings,
        )
        run_hook("lifecycle.record", self.recorder.write_call, self.span, record, error, self._prepared)
        self.span.end()


class _DocumentReader:
    """A whole JSON response body, read as the endpoint reads the SDK's response object."""

    __slots__ = ("_endpoint", "_result")

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._result: CallResult | None = None

    def feed(self, document: Any) -> None:
        self._result = self._endpoint.read_response(document)

    def result(self) -> CallResult | None:
        return self._result


def _is_stream(obj: Any, is_async: bool) -> bool:
    if is_async:
        return hasattr(obj, "__aiter__") or hasattr(obj, "__anext__")
    return hasattr(obj, "__iter__") or hasattr(obj, "__next__")


def _start_attributes(request: CallRequest) -> dict[str, Any]:
    """Attributes samplers may read: set at span start (semconv)."""
    attrs = call_identity_attributes(request)
    attrs.update(request.params)
    return attrs


def materialize(endpoint: Endpoint, kwargs: dict[str, Any]) -> None:
    """One-shot iterators among ``endpoint.materialize`` kwargs become lists (the same items)."""
    for name in endpoint.materialize:
        value = kwargs.get(name)
        if value is not None and not isinstance(value, (list, tuple, dict, str, bytes)) and _is_iterator(value):
            kwargs[name] = list(value)


def begin_call(
    recorder: Recorder, endpoint: Endpoint, instance: Any, kwargs: dict[str, Any], args: tuple = ()
) -> ModelCall | None:
    materialize(endpoint, kwargs)
    if endpoint.adjust is not None:
        run_hook(f"{endpoint.name}.adjust", endpoint.adjust, kwargs)
    seen = kwargs
    if args and endpoint.positional:  # a read-only view: the SDK still gets exactly what the user passed
        seen = {**dict(zip(endpoint.positional, args, strict=False)), **kwargs}
    request = run_hook(f"{endpoint.name}.read_request", endpoint.read_request, instance, seen)
    request = run_hook("lifecycle.wellformed_request", _wellformed.request, request, default=request)
    if request is None:
        return None
    call: ModelCall | None = run_hook("lifecycle.start_span", ModelCall, recorder, endpoint, request)
    helper_calls = _HELPER_CALLS.get()
    if call is not None and helper_calls is not None:
        helper_calls.append(call)
    return call


def _is_iterator(value: Any) -> bool:
    return hasattr(value, "__next__") and iter(value) is value


def fail(call: ModelCall, exc: BaseException) -> None:
    run_hook("lifecycle.record_error", call.finish, None, exc)


def model_call_wrapper(
    recorder: Recorder, endpoint: Endpoint, *, is_async: bool, async_iterator: bool = False
) -> Callable[..., Any]:
    """A wrapt wrapper for one client method; ``recorder`` records the calls.

    ``async_iterator`` (with ``is_async=False``) is for a method that is not awaited but returns an async
    iterator, i.e. an async generator function (cohere's ``AsyncV2Client.chat_stream``): the call is made as
    a plain one and what it returns is proxied as an async stream. A coroutine wrapper there would hand the
    user a coroutine where they ``async for``."""

    def begin(instance: Any, args: tuple, kwargs: dict) -> ModelCall | None:
        return begin_call(recorder, endpoint, instance, kwargs, args)

    return _call_wrapper(recorder, begin, is_async=is_async, async_iterator=async_iterator)


def _call_wrapper(
    recorder: Recorder,
    begin: Callable[[Any, tuple, dict], ModelCall | None],
    *,
    is_async: bool,
    async_iterator: bool = False,
) -> Callable[..., Any]:
    """The wrapt wrapper both kinds of patch share: quiet when switched off or inside a call of ours;
    ``begin`` reads the request and starts the call (None: not a model call, passed through)."""
    if is_async:

        async def async_wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
            if not recorder.switch.enabled or IN_MODEL_CALL.get():
                return await wrapped(*args, **kwargs)
            call = begin(instance, args, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            return await _run_async(call, wrapped, args, kwargs)

        return async_wrapper

    def sync_wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if not recorder.switch.enabled or IN_MODEL_CALL.get():
            return wrapped(*args, **kwargs)
        call = begin(instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        return _run_sync(call, wrapped, args, kwargs, async_iterator)

    return sync_wrapper


# What a route picks for one request: the endpoint, and the request's fields to read (its JSON body).
Route = Callable[[Any, tuple, dict], "tuple[Endpoint, dict[str, Any]] | None"]


def routed_call_wrapper(recorder: Recorder, route: Route, *, is_async: bool) -> Callable[..., Any]:
    """A wrapt wrapper for a client's request path, through which every API call of the client goes.

    ``route(client, args, kwargs)`` returns the endpoint of a model call and the request's fields (the
    body as the SDK will send it; an ``adjust`` changes it there), or None for any other request, which
    passes through untouched. Inside a wrapped public method the call already has its span: quiet."""

    def begin(instance: Any, args: tuple, kwargs: dict) -> ModelCall | None:
        return _begin_routed(recorder, route, instance, args, kwargs)

    return _call_wrapper(recorder, begin, is_async=is_async)


def _begin_routed(recorder: Recorder, route: Route, instance: Any, args: tuple, kwargs: dict) -> ModelCall | None:
    picked = run_hook("lifecycle.route", route, instance, args, kwargs)
    if picked is None:
        return None
    endpoint, fields = picked
    return begin_call(recorder, endpoint, instance, fields)


def _run_sync(call: ModelCall, wrapped: Any, args: tuple, kwargs: dict, async_iterator: bool) -> Any:
    """Run the real call with ``call``'s span current and ``call`` in flight (nested wrapped calls stay
    quiet; an SDK's retry hook finds it)."""
    token = otel_context.attach(trace.set_span_in_context(call.span))
    nested = IN_MODEL_CALL.set(call)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        fail(call, exc)
        raise
    finally:
        IN_MODEL_CALL.reset(nested)
        otel_context.detach(token)
    return deliver(call, result, async_iterator)


async def _run_async(call: ModelCall, wrapped: Any, args: tuple, kwargs: dict) -> Any:
    token = otel_context.attach(trace.set_span_in_context(call.span))
    nested = IN_MODEL_CALL.set(call)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        fail(call, exc)
        raise
    finally:
        IN_MODEL_CALL.reset(nested)
        otel_context.detach(token)
    return deliver(call, result, True)


def deliver(call: ModelCall, result: Any, is_async: bool) -> Any:
    """What the user gets back from ``call``'s method: ``result``, or our proxy of its stream."""
    try:
        return call.on_result(result, is_async)
    except Exception as exc:  # noqa: BLE001 - never break the user's call
        run_hook("lifecycle.on_result", _raise, exc)
        call.finish(None)
        return result


def _raise(exc: BaseException) -> None:
    raise exc
