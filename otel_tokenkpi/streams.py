"""Stream proxies: behave exactly like the client's stream, see every chunk.

wrapt's ``ObjectProxy`` forwards attributes, but its special methods have
traps (docs/architecture.md): ``__enter__`` returns the wrapped object's
``__enter__()``, so the proxy drops out of ``with create(stream=True) as s:``;
``__iter__`` returns ``iter(wrapped)``, which bypasses the proxy; there is no
``__next__``/``__aiter__``/``__anext__``. So every special method the user can
reach is overridden here, and each exit path ends the call exactly once:
exhaustion, an error, ``close()``, the context manager's exit, and garbage
collection of an abandoned stream.

The proxies know nothing about providers: ``on_chunk`` is the adapter's
reader's ``feed`` and ``owner`` is the lifecycle's :class:`~otel_tokenkpi.lifecycle.ModelCall`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

import wrapt

from ._safety import log_once


class StreamOwner(Protocol):
    """What a proxy needs from the call it belongs to."""

    def end_stream(self, error: BaseException | None = None, completed: bool = False) -> None: ...


def _in_flight(owner: Any, fetch: Callable[[], Any]) -> Any:
    """``fetch()`` (the stream's first item) as part of the call: a lazily started stream (a generator
    function such as cohere's ``chat_stream``) sends its request there, so the call's span is current
    and nested wrapped calls stay quiet. Once per stream; an owner without ``in_flight`` just fetches."""
    in_flight = getattr(owner, "in_flight", None)
    return in_flight(fetch) if in_flight is not None else fetch()


class _StreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """What both proxies share: the call they belong to, and its end when an abandoned stream is collected."""

    def __init__(self, stream: Any, owner: StreamOwner, on_chunk: Callable[[Any], None]) -> None:
        """``on_chunk`` sees every chunk (the adapter's reader's ``feed``); ``owner`` hears of the end."""
        super().__init__(stream)
        self._self_owner = owner
        self._self_on_chunk = on_chunk
        self._self_iterator: Any = None

    def __del__(self) -> None:
        # An abandoned stream (never exhausted nor closed) still ends its span.
        owner = getattr(self, "_self_owner", None)
        if owner is not None:
            owner.end_stream()


class SyncStreamProxy(_StreamProxy):
    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        if self._self_iterator is None:
            wrapped = self.__wrapped__
            self._self_iterator = wrapped if hasattr(wrapped, "__next__") else iter(wrapped)
            return _in_flight(self._self_owner, self.__next__)
        try:
            chunk = next(self._self_iterator)
        except StopIteration:
            self._self_owner.end_stream(completed=True)
            raise
        except BaseException as exc:
            self._self_owner.end_stream(exc)
            raise
        try:  # run_hook, inlined: per chunk, the call and bound-method lookups add up
            self._self_on_chunk(chunk)
        except Exception as exc:  # noqa: BLE001 - never break the user's stream
            log_once("stream.on_chunk", exc)
        return chunk

    def __enter__(self) -> SyncStreamProxy:
        enter = getattr(self.__wrapped__, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__exit__", None)
            return exit_(exc_type, exc, tb) if exit_ is not None else None
        finally:
            self._self_owner.end_stream()

    @property
    def close(self) -> Any:
        """The stream's ``close``, ending the call too; absent, as on the stream itself, when the stream
        has none (mistralai < 2.10): the AttributeError falls through to the proxy's own lookup, so
        ``hasattr(stream, "close")`` answers as it does without us."""
        close = self.__wrapped__.close
        owner = self._self_owner

        def close_and_end(*args: Any, **kwargs: Any) -> Any:
            try:
                return close(*args, **kwargs)
            finally:
                owner.end_stream()

        return close_and_end


class AsyncStreamProxy(_StreamProxy):
    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        if self._self_iterator is None:
            wrapped = self.__wrapped__
            self._self_iterator = wrapped if hasattr(wrapped, "__anext__") else wrapped.__aiter__()
            in_flight = getattr(self._self_owner, "in_flight_async", None)
            return await (in_flight(self.__anext__) if in_flight is not None else self.__anext__())
        try:
            chunk = await self._self_iterator.__anext__()
        except StopAsyncIteration:
            self._self_owner.end_stream(completed=True)
            raise
        except BaseException as exc:
            self._self_owner.end_stream(exc)
            raise
        try:  # run_hook, inlined: per chunk, the call and bound-method lookups add up
            self._self_on_chunk(chunk)
        except Exception as exc:  # noqa: BLE001 - never break the user's stream
            log_once("stream.on_chunk", exc)
        return chunk

    async def __aenter__(self) -> AsyncStreamProxy:
        enter = getattr(self.__wrapped__, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__aexit__", None)
            return (await exit_(exc_type, exc, tb)) if exit_ is not None else None
        finally:
            self._self_owner.end_stream()

    @property
    def close(self) -> Any:
        """Mirror the wrapped ``close``: a coroutine if it returns one, else plain; absent when the
        stream has none (see :attr:`SyncStreamProxy.close`)."""
        close = self.__wrapped__.close

        def close_and_end(*args: Any, **kwargs: Any) -> Any:
            try:
                result = close(*args, **kwargs)
            except BaseException:
                self._self_owner.end_stream()
                raise
            if inspect.isawaitable(result):
                return self._await_then_end(result)
            self._self_owner.end_stream()
            return result

        return close_and_end

    async def _await_then_end(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        finally:
            self._self_owner.end_stream()

    @property
    def aclose(self) -> Any:
        """An async generator's close (ollama's streams are async generators); absent, as on the stream
        itself, when the stream has none (the AttributeError falls through to the proxy's lookup)."""
        close = self.__wrapped__.aclose
        return lambda: self._await_then_end(close())


class HelperManagerProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """Proxy for a ``stream()`` helper's context manager.

    Helpers such as openai's ``chat.completions.stream()`` call ``create`` on
    ``__enter__`` (that call makes the one span) and, when left early, close
    the HTTP response directly, so the raw stream never reports its end. The
    manager's exit is the one reliable signal: it ends the calls opened inside
    its ``__enter__``, not garbage collection.
    """

    def __init__(self, manager: Any, collect: Any) -> None:
        super().__init__(manager)
        self._self_collect = collect  # context manager yielding a list of calls opened inside
        self._self_calls: list[StreamOwner] = []

    def __enter__(self) -> Any:
        with self._self_collect() as calls:
            try:
                return self.__wrapped__.__enter__()
            finally:
                self._self_calls = calls

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            for call in self._self_calls:
                call.end_stream()

    async def __aenter__(self) -> Any:
        with self._self_collect() as calls:
            try:
                return await self.__wrapped__.__aenter__()
            finally:
                self._self_calls = calls

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            for call in self._self_calls:
                call.end_stream()
