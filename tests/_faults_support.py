"""One call of each kind through every instrumentor's real SDK, for the fault tests.

A :class:`Driver` knows, for one client library, how to make a plain call, a sync stream and an async
stream against its fake server, which endpoints of ours those go through, and how to script an error reply.
Every call returns an :func:`outcome`: what the user got (a JSON-able dump of the response or of each
stream chunk) or what the user caught (exception class and message), so a run with our instrumentation can
be compared with a run without it, byte for byte, minus what differs per call (times, request ids, dates).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _telemetry import Telemetry
from opentelemetry.sdk.trace import SpanProcessor

# Keys whose values differ from one call to the next whatever we do: clocks, dates, per-request ids.
VOLATILE = frozenset(
    {"created", "created_at", "ResponseMetadata", "sdk_http_response", "date", "headers", "_response_ms"}
)


_DATE = re.compile(r"'date': '[^']*'")  # cohere's error messages quote the response headers


def dump(value: Any) -> Any:
    """A JSON-like copy of what the SDK handed the user, without :data:`VOLATILE` keys."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return type(value).__qualname__  # an opaque object: its class is what the user would notice


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", dump)`` or ``("raised", (class, message))``: everything a user can tell about a call."""
    try:
        return "ok", dump(call())
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome
        return "raised", (f"{type(exc).__module__}:{type(exc).__qualname__}", _DATE.sub("<date>", str(exc)))


def drain(stream: Any) -> list[Any]:
    """Every chunk of a sync stream; a failure mid-way raises after the chunks seen so far were kept."""
    return [chunk for chunk in stream]


async def adrain(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


class LoopThread:
    """An event loop running in a daemon thread, for the async calls of one rig: async clients bound to it
    are kept, so calls reuse them (pytest-asyncio may own the test thread's loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="faults-loop", daemon=True)
        self._thread.start()

    def run(self, factory: Callable[[], Any]) -> Any:
        """``factory()`` is a coroutine (made in the loop's thread); its result, or its exception."""

        async def call() -> Any:
            return await factory()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@dataclass(frozen=True)
class Driver:
    """How to drive one client library against its fake server."""

    make_server: Callable[[], Any]
    instrumentors: tuple[type, ...]
    prefix: str  # our endpoint names for this library start with it
    plain_endpoint: str
    stream_endpoint: str
    client: Callable[..., Any]  # (server, **options) -> a sync client; options such as max_retries, timeout
    plain: Callable[[Any], Any]  # (client) -> the response
    stream: Callable[[Any], Any]  # (client) -> the drained chunks
    astream: Callable[[Any], Any] | None  # (async client) -> coroutine of the drained chunks; None: no async stream
    aclient: Callable[..., Any] | None  # (server, **options) -> an async client
    reply: Callable[..., Any]  # the fake's Reply class

    @property
    def scope(self) -> str:
        return str(self.instrumentors[0].instrumentation_scope)

    def endpoint(self, mode: str) -> str:
        return self.plain_endpoint if mode in ("plain", "error") else self.stream_endpoint


class SpanCounter(SpanProcessor):
    """Counts spans started and ended: a span that starts must end, whatever broke in between."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started += 1

    def on_end(self, span: Any) -> None:
        self.ended += 1


class Rig:
    """A driver's fake server and its instrumentors recording into one :class:`Telemetry` (with a
    :class:`SpanCounter`). ``instrument()``/``uninstrument()`` are explicit, so baselines can run bare.

    Sync clients are kept per instrumentation state (cohere binds its methods when a client is made), so
    calls reuse kept-alive connections; async clients are made per call, in the call's own event loop."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.server = driver.make_server().start()
        self.telemetry = Telemetry()
        self.counter = SpanCounter()
        self.telemetry.tracer_provider.add_span_processor(self.counter)
        self.instrumented = False
        self._instrumentors = [cls() for cls in driver.instrumentors]
        self._clients: dict[bool, Any] = {}
        self._aclients: dict[bool, Any] = {}
        self.loop = LoopThread()

    def instrument(self) -> None:
        for instrumentor in self._instrumentors:
            instrumentor.instrument(
                tracer_provider=self.telemetry.tracer_provider, meter_provider=self.telemetry.meter_provider
            )
        self.instrumented = True
        self._clients.pop(True, None)  # a client made under an earlier instrument() holds its wrappers
        self._aclients.pop(True, None)

    def uninstrument(self) -> None:
        if self.instrumented:
            for instrumentor in self._instrumentors:
                instrumentor.uninstrument()
        self.instrumented = False

    def close(self) -> None:
        self.uninstrument()
        self.server.stop()
        self.loop.close()

    def clear(self) -> None:
        """Forget spans; restart the fake's id numbering."""
        self.telemetry.exporter.clear()
        self.counter.started = self.counter.ended = 0
        self.server.reset()

    def our_spans(self) -> list[Any]:
        return [s for s in self.telemetry.spans() if s.instrumentation_scope.name == self.driver.scope]

    def client(self) -> Any:
        if self.instrumented not in self._clients:
            self._clients[self.instrumented] = self.driver.client(self.server)
        return self._clients[self.instrumented]

    def aclient(self) -> Any:
        """Made in the rig's loop, once per instrumentation state."""
        if self.instrumented not in self._aclients:
            assert self.driver.aclient is not None
            make = self.driver.aclient

            async def made() -> Any:
                return make(self.server)

            self._aclients[self.instrumented] = self.loop.run(made)
        return self._aclients[self.instrumented]

    def call(self, mode: str, **options: Any) -> Any:
        """Make one call: mode ``plain`` (or ``error``: the same call), ``stream`` or ``astream``; with
        ``options`` (client options such as retries or a timeout), on a client made for this call."""
        if mode == "astream":
            astream, make = self.driver.astream, self.driver.aclient
            assert astream is not None and make is not None

            async def made() -> Any:
                return make(self.server, **options)

            client = self.loop.run(made) if options else self.aclient()
            return self.loop.run(lambda: astream(client))
        client = self.driver.client(self.server, **options) if options else self.client()
        return (self.driver.stream if mode == "stream" else self.driver.plain)(client)

    def run(self, mode: str, *replies: Any, **options: Any) -> tuple[str, Any]:
        """One call of ``mode`` after a fresh start of the fake's numbering, answered with ``replies``."""
        self.server.reset()
        self.server.enqueue(*replies)
        return outcome(lambda: self.call(mode, **options))
