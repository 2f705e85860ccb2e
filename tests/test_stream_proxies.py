"""The stream proxies have exactly the wrapped stream's ``close``: present when it has one (and then it
also ends the call, once), absent when it has none, as on mistralai < 2.10's streams, so
``hasattr(stream, "close")`` and ``contextlib.closing`` behave as without instrumentation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from otel_tokenkpi.streams import AsyncStreamProxy, SyncStreamProxy


class Owner:
    """A call as the proxies see it: records the chunks and every end."""

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.ends: list[tuple[BaseException | None, bool]] = []

    def on_chunk(self, chunk: Any) -> None:
        self.chunks.append(chunk)

    def end_stream(self, error: BaseException | None = None, completed: bool = False) -> None:
        self.ends.append((error, completed))


class NoClose:
    """An iterator with no ``close`` (the shape of mistralai 2.0-2.9's EventStream)."""

    def __init__(self, items: list[int]) -> None:
        self._items = iter(items)

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        return next(self._items)


class AsyncNoClose:
    def __init__(self, items: list[int]) -> None:
        self._items = iter(items)

    def __aiter__(self) -> AsyncIterator[int]:
        return self

    async def __anext__(self) -> int:
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None


class AsyncAwaitableClose(AsyncNoClose):
    def __init__(self, items: list[int]) -> None:
        super().__init__(items)
        self.closed = False

    async def close(self) -> str:
        self.closed = True
        return "closed"


def test_sync_proxy_without_close_has_no_close() -> None:
    owner = Owner()
    stream = SyncStreamProxy(NoClose([1, 2]), owner, owner.on_chunk)
    assert not hasattr(stream, "close")
    with pytest.raises(AttributeError, match="close"):
        stream.close()
    assert list(stream) == [1, 2]
    assert owner.chunks == [1, 2] and owner.ends == [(None, True)]


def test_sync_proxy_close_closes_and_ends_once() -> None:
    def numbers() -> Iterator[int]:
        yield from range(5)

    owner, generator = Owner(), numbers()
    stream = SyncStreamProxy(generator, owner, owner.on_chunk)
    assert next(stream) == 0
    assert stream.close() is None
    stream.close()
    assert generator.gi_frame is None  # the generator itself was closed
    assert len(owner.ends) == 2 and owner.ends[0] == (None, False)  # the call ends once: the owner ignores repeats
    assert owner.chunks == [0]


def test_async_proxy_without_close_has_no_close() -> None:
    owner = Owner()
    stream = AsyncStreamProxy(AsyncNoClose([1, 2]), owner, owner.on_chunk)
    assert not hasattr(stream, "close") and not hasattr(stream, "aclose")

    async def read() -> list[int]:
        return [item async for item in stream]

    assert asyncio.run(read()) == [1, 2]
    assert owner.ends == [(None, True)]


def test_async_proxy_awaitable_close_ends_after_the_await() -> None:
    owner, wrapped = Owner(), AsyncAwaitableClose([1, 2])
    stream = AsyncStreamProxy(wrapped, owner, owner.on_chunk)
    pending = stream.close()
    assert owner.ends == [] and not wrapped.closed  # nothing happens until awaited, as on the stream

    async def finish() -> Any:
        return await pending

    assert asyncio.run(finish()) == "closed"
    assert wrapped.closed and owner.ends == [(None, False)]
