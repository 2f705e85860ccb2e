"""A bug of ours must never become the user's problem: an exception injected into each of our internal
hooks, in every instrumentor, for plain calls, sync and async streams and failed calls.

For every (instrumentor, call kind, hook): the user's call returns (or raises) exactly what it does
uninstrumented, the problem is logged once for that hook (two calls, one warning), and every span that
started ended (no span at all when the request could not be read or the span could not start).

Faults are injected into OUR code only: the endpoint objects of the instrumentor under test (found as live
``Endpoint`` instances whose name has the instrumentor's prefix, copies included) get a raising hook; core
hooks are monkeypatched in the core modules. The SDKs and the OpenTelemetry SDK are never mocked.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _faults_drivers import DRIVERS
from _faults_support import Driver, Rig

import otel_tokenkpi.lifecycle as lifecycle
import otel_tokenkpi.surroundings as surroundings
from otel_tokenkpi import _safety
from otel_tokenkpi.engine import ENGINE
from otel_tokenkpi.lifecycle import Endpoint
from otel_tokenkpi.processor import TokenKPISpanProcessor
from otel_tokenkpi.recorder import Recorder

MODES = ("plain", "stream", "astream", "error")
STREAMS = frozenset({"stream", "astream"})
ALL = frozenset(MODES)


class InjectedFault(Exception):
    """What our broken hook raises; never what the user may see."""


def _boom(*_: Any, **__: Any) -> Any:
    raise InjectedFault("injected")


class _BrokenReader:
    """The endpoint's real stream reader, with ``feed`` or ``result`` broken."""

    def __init__(self, inner: Any, broken: str) -> None:
        self.inner, self.broken = inner, broken

    def feed(self, chunk: Any) -> None:
        if self.broken == "feed":
            raise InjectedFault("feed")
        self.inner.feed(chunk)

    def result(self) -> Any:
        if self.broken == "result":
            raise InjectedFault("result")
        return self.inner.result()


def _broken_reader(broken: str) -> Callable[[Any], Any]:
    def replace(reader_factory: Any) -> Any:
        return lambda request: _BrokenReader(reader_factory(request), broken)

    return replace


@dataclass(frozen=True)
class Fault:
    """Where to inject, in which call kinds that hook runs, which hook name is logged, spans per call."""

    modes: frozenset[str]
    hook: str  # "{endpoint}" is the endpoint the call goes through
    endpoint_field: str | None = None  # break this field of the instrumentor's endpoints ...
    replace: Callable[[Any], Any] | None = None  # ... with replace(original) (default: a raising function)
    target: tuple[Any, str] | None = None  # ... or monkeypatch this attribute of our core
    spans: int = 1


FAULTS: dict[str, Fault] = {
    # Adapter hooks: each instrumentor's own code.
    "adjust": Fault(ALL, "{endpoint}.adjust", endpoint_field="adjust"),
    "read_request": Fault(ALL, "{endpoint}.read_request", endpoint_field="read_request", spans=0),
    "unwrap": Fault(ALL - {"error"}, "lifecycle.on_result", endpoint_field="unwrap"),
    "read_response": Fault(frozenset({"plain"}), "{endpoint}.read_response", endpoint_field="read_response"),
    "stream_reader": Fault(STREAMS, "lifecycle.on_result", endpoint_field="stream_reader"),
    "feed": Fault(STREAMS, "stream.on_chunk", endpoint_field="stream_reader", replace=_broken_reader("feed")),
    "stream_result": Fault(
        STREAMS, "{endpoint}.stream_result", endpoint_field="stream_reader", replace=_broken_reader("result")
    ),
    # The lifecycle, recorder, engine and processor: shared by all, reached through each instrumentor.
    "scope": Fault(ALL, "lifecycle.scope", target=(surroundings, "capture_start")),
    "start_span": Fault(ALL, "lifecycle.start_span", target=(lifecycle, "_start_attributes"), spans=0),
    "span_ids": Fault(ALL, "lifecycle.span_ids", target=(surroundings, "set_span_ids")),
    "prepare": Fault(ALL, "engine.prepare", target=(Recorder, "prepare")),
    "write_call": Fault(ALL, "lifecycle.record", target=(Recorder, "write_call")),
    "assess": Fault(ALL, "engine.assess", target=(ENGINE, "assess")),
    "write_span": Fault(ALL, "recorder.span_attributes", target=(Recorder, "_write_span")),
    "write_metrics": Fault(ALL, "recorder.metrics", target=(Recorder, "_write_metrics")),
    "processor_start": Fault(ALL, "processor.on_start", target=(TokenKPISpanProcessor, "_on_start")),
    "processor_end": Fault(ALL, "processor.on_end", target=(TokenKPISpanProcessor, "_on_end")),
}
# Core hooks under async streams: the same core code as under sync streams, dearer to run (slow, CI runs it).
CASES = [
    pytest.param(mode, fault, marks=[pytest.mark.slow] if mode == "astream" and spec.target else [])
    for fault, spec in FAULTS.items()
    for mode in MODES
    if mode in spec.modes
]


@dataclass
class Bench:
    """One instrumentor, instrumented once per module: its rig, the uninstrumented outcome of each call
    kind, and the endpoint objects of ours it calls through."""

    rig: Rig
    baselines: dict[str, Any]
    endpoints: list[Endpoint]


def _reply(driver: Driver, mode: str) -> Any:
    if mode == "error":
        return driver.reply(status=400, error_message="the request was refused")
    return driver.reply(text="Paris is old and bright.")


def _modes(driver: Driver) -> list[str]:
    return [m for m in MODES if m != "astream" or driver.astream is not None]


@pytest.fixture(scope="module", params=list(DRIVERS))
def bench(request: pytest.FixtureRequest, loaded_data: None) -> Iterator[Bench]:
    driver = DRIVERS[request.param]
    rig = Rig(driver)
    try:
        baselines = {mode: rig.run(mode, _reply(driver, mode)) for mode in _modes(driver)}
        rig.instrument()
        # Every live endpoint of this instrumentor, copies made by patches() included ("type is": fast).
        endpoints = [o for o in gc.get_objects() if type(o) is Endpoint and o.name.startswith(driver.prefix)]
        yield Bench(rig, baselines, endpoints)
    finally:
        rig.close()


@pytest.fixture
def broken(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Fault], None]]:
    """Installs a fault for one test; endpoint fields are put back afterwards (endpoints are frozen, so
    they are set with ``object.__setattr__``, as their own ``__init__`` does)."""
    undo: list[tuple[Endpoint, str, Any]] = []

    def install(fault: Fault) -> None:
        if fault.target is not None:
            monkeypatch.setattr(*fault.target, _boom)
            return
        assert fault.endpoint_field is not None
        for endpoint in bench.endpoints:
            original = getattr(endpoint, fault.endpoint_field)
            if fault.replace is not None and original is None:
                continue  # no stream reader to break on a non-stream endpoint
            undo.append((endpoint, fault.endpoint_field, original))
            object.__setattr__(endpoint, fault.endpoint_field, fault.replace(original) if fault.replace else _boom)

    yield install
    for endpoint, name, original in reversed(undo):
        object.__setattr__(endpoint, name, original)


def _logged_hooks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The hook of each otel_tokenkpi warning (any other warning of ours is kept whole, to fail loudly)."""
    hooks = []
    for record in caplog.records:
        if record.name == "otel_tokenkpi" and record.levelno >= logging.WARNING:
            internal = record.msg.startswith("otel-tokenkpi: internal error in")
            hooks.append(str(record.args[0]) if internal and record.args else record.getMessage())
    return hooks


def _calls(bench: Bench, mode: str, caplog: pytest.LogCaptureFixture) -> list[Any]:
    bench.rig.clear()
    _safety._reset_logged_for_tests()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="otel_tokenkpi"):
        return [bench.rig.run(mode, _reply(bench.rig.driver, mode)) for _ in range(2)]


@pytest.mark.parametrize("mode", MODES)
def test_without_a_fault_nothing_is_logged_and_each_call_has_its_span(bench, mode, caplog):
    """The control: what the fault tests compare against holds when nothing is broken."""
    if mode not in bench.baselines:
        pytest.skip("no async stream in this SDK")
    outcomes = _calls(bench, mode, caplog)
    assert outcomes == [bench.baselines[mode]] * 2
    assert outcomes[0][0] == ("raised" if mode == "error" else "ok")
    assert _logged_hooks(caplog) == []
    assert len(bench.rig.our_spans()) == 2
    assert bench.rig.counter.started == bench.rig.counter.ended


@pytest.mark.parametrize("mode, fault", CASES)
def test_a_broken_hook_never_reaches_the_user(bench, broken, mode, fault, caplog):
    if mode not in bench.baselines:
        pytest.skip("no async stream in this SDK")
    spec = FAULTS[fault]
    broken(spec)
    outcomes = _calls(bench, mode, caplog)
    assert outcomes == [bench.baselines[mode]] * 2  # what the user got, or caught, is untouched
    assert _logged_hooks(caplog) == [spec.hook.format(endpoint=bench.rig.driver.endpoint(mode))]  # once
    assert len(bench.rig.our_spans()) == 2 * spec.spans
    assert bench.rig.counter.started == bench.rig.counter.ended  # every span that started ended
