"""Base class for our instrumentors: patch a table of methods, safely.

``opentelemetry-instrument`` loads instrumentors with ``skip_dep_check=True``
and an exception other than ImportError in ``_instrument`` stops the user's
app, so ``_instrument`` here never raises: a method missing from the
installed client version is skipped with one warning and the rest is still
instrumented.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from . import api, prices, tokens
from ._safety import log_once, logger
from .recorder import Recorder
from .version import __version__


@dataclass(frozen=True)
class Patch:
    """``module.cls.method`` is replaced by ``make_wrapper(recorder)``."""

    module: str
    cls: str
    method: str
    make_wrapper: Callable[[Recorder], Callable[..., Any]]


class TokenKPIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Subclasses set ``scope``, ``instruments`` and implement ``patches()``."""

    scope = "otel_tokenkpi"
    instruments: tuple[str, ...] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.instruments

    def patches(self) -> list[Patch]:
        raise NotImplementedError

    def _instrument(self, **kwargs: Any) -> None:
        try:
            self._recorder = Recorder(
                self.scope,
                __version__,
                tracer_provider=kwargs.get("tracer_provider"),
                meter_provider=kwargs.get("meter_provider"),
            )
            self._applied: list[tuple[Any, str]] = []
            self.options = kwargs
            for patch in self.patches():
                self._apply(patch)
            self._recorder.switch.enabled = True
            # task() and record_outcome() spans go where our model-call spans go.
            api.use_tracer_provider(kwargs.get("tracer_provider"))
            # Tokenizer data and prices load in the background, now rather than on a first call
            # (zero-code users reach us through here, not through instrument()).
            tokens.start_loading()
            prices.start_loading()
        except Exception as exc:  # noqa: BLE001 - never stop the user's app
            log_once(f"{type(self).__name__}._instrument", exc)

    def _apply(self, patch: Patch) -> None:
        target = f"{patch.module}.{patch.cls}.{patch.method}"
        try:
            owner = getattr(importlib.import_module(patch.module), patch.cls)
            if not callable(getattr(owner, patch.method, None)):
                raise AttributeError(patch.method)
        except (ImportError, AttributeError):
            log_once(
                f"missing:{target}",
                message=f"otel-tokenkpi: {target} not found in the installed version; not instrumented",
            )
            return
        wrapt.wrap_function_wrapper(owner, patch.method, patch.make_wrapper(self._recorder))
        self._applied.append((owner, patch.method))
        logger.debug("otel-tokenkpi: instrumented %s", target)

    def _uninstrument(self, **kwargs: Any) -> None:
        recorder = getattr(self, "_recorder", None)
        if recorder is not None:
            recorder.switch.enabled = False
        for owner, method in getattr(self, "_applied", []):
            unwrap(owner, method)
        self._applied = []
