"""Base class for our instrumentors: patch a table of methods, safely.

``opentelemetry-instrument`` loads instrumentors with ``skip_dep_check=True``
and an exception other than ImportError in ``_instrument`` stops the user's
app, so ``_instrument`` here never raises: a method missing from the
installed client version is skipped with one warning and the rest is still
instrumented.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import wrapt
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from . import api, options
from ._safety import log_once, logger
from .engine import load_local_data
from .lifecycle import Endpoint, Route, model_call_wrapper, routed_call_wrapper
from .recorder import Recorder
from .version import __version__


@dataclass(frozen=True)
class Patch:
    """Where a model call lives, and how to read it.

    ``module.cls.method`` (with ``cls=""``, the module-level function ``module.method``, e.g. a reference
    a library captured at import time) is wrapped by the call lifecycle for ``endpoint``; the core picks
    the wrapper's flavour (sync, coroutine, async generator) by inspecting the method, so an adapter
    never does. ``route`` instead of ``endpoint`` is for a client's request path, which serves many APIs:
    the route picks the endpoint per request (:func:`~otel_tokenkpi.lifecycle.routed_call_wrapper`).
    ``make_wrapper`` is for the few methods that are not one model call each (a ``stream()`` helper,
    botocore's generic ``_make_api_call``, an SDK's retry hook). ``optional``: a method that only some
    releases have (another method stands in elsewhere) is skipped quietly when missing.
    """

    module: str
    cls: str
    method: str
    endpoint: Endpoint | None = None
    make_wrapper: Callable[[Recorder], Callable[..., Any]] | None = None
    route: Route | None = None
    optional: bool = False

    def __post_init__(self) -> None:
        if sum(way is not None for way in (self.endpoint, self.make_wrapper, self.route)) != 1:
            raise TypeError("Patch takes exactly one of endpoint=, route= or make_wrapper=")

    def wrapper(self, recorder: Recorder, target: Callable[..., Any]) -> Callable[..., Any]:
        if self.make_wrapper is not None:
            return self.make_wrapper(recorder)
        flavour = call_flavour(target)
        if self.route is not None:
            return routed_call_wrapper(recorder, self.route, is_async=flavour == "coroutine")
        assert self.endpoint is not None  # __post_init__
        return model_call_wrapper(
            recorder, self.endpoint, is_async=flavour == "coroutine", async_iterator=flavour == "async_generator"
        )


def call_flavour(target: Callable[..., Any]) -> str:
    """``"coroutine"``, ``"async_generator"`` or ``"sync"``: what calling ``target`` gives back.

    Decorators hide it (openai's ``required_args`` wraps an ``async def`` in a plain function that
    returns its coroutine), so the ``__wrapped__`` chain that ``functools.wraps`` and wrapt leave is
    followed down to the function that was written."""
    seen: Any = target
    for _ in range(32):  # a chain that long is a cycle, not decorators
        function = getattr(seen, "__func__", seen)  # a bound or class method: its function
        if inspect.isasyncgenfunction(function):
            return "async_generator"
        if inspect.iscoroutinefunction(function):
            return "coroutine"
        seen = getattr(function, "__wrapped__", None)
        if seen is None:
            break
    return "sync"


class TokenKPIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Subclasses set ``instrumentation_scope``, ``instruments`` and implement ``patches()``."""

    instrumentation_scope = "otel_tokenkpi"
    instruments: tuple[str, ...] = ()
    # A library slow to import (litellm: seconds, and a network fetch) is patched when the user imports
    # it, or at once if it already is: instrument() never imports it.
    patch_when_imported: str | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.instruments

    def patches(self) -> list[Patch]:
        raise NotImplementedError

    def _instrument(self, **kwargs: Any) -> None:
        try:
            if self._library_missing():
                return
            self._recorder = Recorder(
                self.instrumentation_scope,
                __version__,
                tracer_provider=kwargs.get("tracer_provider"),
                meter_provider=kwargs.get("meter_provider"),
            )
            self._applied: list[tuple[Any, str]] = []
            # Loaded alone (opentelemetry-instrument): OTEL_INSTRUMENTATION_TOKENKPI_* apply; an argument wins.
            settings = options.for_instrumentor()
            self.options = {"inject_stream_usage": bool(settings.inject_stream_usage), **kwargs}
            if self.patch_when_imported:
                self._apply_when_imported(self.patch_when_imported)
            else:
                self._apply_all()
            self._recorder.switch.enabled = True
            # task() and record_outcome() spans go where our model-call spans go.
            api.use_tracer_provider(kwargs.get("tracer_provider"))
            # Tokenizer data and prices load now, not on a first call, and the first call waits for none
            # of it: the same run gives the same figures on a slow machine (zero-code users come here too).
            load_local_data()
        except Exception as exc:  # noqa: BLE001 - never stop the user's app
            log_once(f"{type(self).__name__}._instrument", exc)

    def _library_missing(self) -> bool:
        """``opentelemetry-instrument`` checks dependencies per distribution, and ours declares
        none per library, so it loads every instrumentor with ``skip_dep_check``: one whose library
        is not installed (or too old) is skipped here instead of warning per method."""
        return library_conflict(self) is not None

    def _apply_all(self) -> None:
        for patch in self.patches():
            self._apply(patch)

    def _apply_when_imported(self, module: str) -> None:
        """Patch when ``module`` is imported (at once if it is). wrapt cannot unregister a hook: one left
        by an earlier instrument() finds its token stale after uninstrument() and does nothing."""
        token = object()
        self._import_token: object | None = token

        def on_import(_module: Any) -> None:
            if self._import_token is not token:
                return
            try:
                self._apply_all()
            except Exception as exc:  # noqa: BLE001 - runs inside the user's import statement
                log_once(f"{type(self).__name__}.on_import", exc)

        wrapt.register_post_import_hook(on_import, module)

    def _apply(self, patch: Patch) -> None:
        where = ".".join(part for part in (patch.module, patch.cls, patch.method) if part)
        try:
            owner = importlib.import_module(patch.module)
            if patch.cls:
                owner = getattr(owner, patch.cls)
            target = getattr(owner, patch.method, None)
            if not callable(target):
                raise AttributeError(patch.method)
        except (ImportError, AttributeError):
            if patch.optional:
                logger.debug("otel-tokenkpi: %s not in the installed version (optional)", where)
                return
            log_once(
                f"missing:{where}",
                message=f"otel-tokenkpi: {where} not found in the installed version; not instrumented",
            )
            return
        wrapt.wrap_function_wrapper(owner, patch.method, patch.wrapper(self._recorder, target))
        self._applied.append((owner, patch.method))
        logger.debug("otel-tokenkpi: instrumented %s", where)

    def _uninstrument(self, **kwargs: Any) -> None:
        recorder = getattr(self, "_recorder", None)
        if recorder is not None:
            recorder.switch.enabled = False
        self._import_token = None  # a pending post-import hook stays quiet
        for owner, method in getattr(self, "_applied", []):
            unwrap(owner, method)
        self._applied = []


def library_conflict(instrumentor: BaseInstrumentor) -> Any:
    """Why ``instrumentor``'s library cannot be instrumented, or None. Not installed at all: logged at
    debug level (most users have one or two of the nine libraries). Installed at a release outside the
    supported range: a warning, since that user expects spans and would otherwise get none silently."""
    conflict = get_dependency_conflicts(instrumentor.instrumentation_dependencies())
    if conflict is not None:
        log = logger.warning if getattr(conflict, "found", None) else logger.debug
        log("otel-tokenkpi: %s not loaded: %s", type(instrumentor).__name__, conflict)
    return conflict
