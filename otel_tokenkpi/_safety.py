"""Error isolation and the global switches every wrapper consults.

Instrumentation lives inside other people's production code: a bug of ours
must never become their exception. Every internal hook runs through
:func:`run_hook`, which swallows the error and logs it once per hook name, so
a broken parser on a hot path cannot flood the log either.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

logger = logging.getLogger("otel_tokenkpi")

T = TypeVar("T")

_logged_hooks: set[str] = set()
_logged_lock = threading.Lock()


class _Switch:
    """Process-wide on/off. Wrappers bound before ``uninstrument()`` (for example
    openai's cached ``with_raw_response``) still run our code, so they check this
    and go quiet."""

    __slots__ = ("enabled",)

    def __init__(self) -> None:
        self.enabled = False


SWITCH = _Switch()

# Set while a wrapped model call is running: an inner wrapped call (a helper
# that calls ``create``, litellm calling the openai SDK) is the same call and
# must not open a second span. It holds the call in flight (truthy; the
# lifecycle's ModelCall, where an SDK's retry hook notes failed attempts).
IN_MODEL_CALL: contextvars.ContextVar[Any] = contextvars.ContextVar("tokenkpi_in_model_call", default=False)


def log_once(hook: str, exc: BaseException | None = None, message: str | None = None) -> None:
    """Log a problem in ``hook`` the first time it happens in this process."""
    with _logged_lock:
        if hook in _logged_hooks:
            return
        _logged_hooks.add(hook)
    if exc is not None:
        logger.warning(
            "otel-tokenkpi: internal error in %s (user call unaffected; logged once): %r",
            hook,
            exc,
            exc_info=exc,
        )
    else:
        # Callers often spell the prefix themselves; the log line carries it once.
        logger.warning("otel-tokenkpi: %s", (message or hook).removeprefix("otel-tokenkpi: "))


def run_hook(hook: str, func: Callable[..., T], *args: Any, default: Any = None) -> T | Any:
    """Call ``func(*args)``; on any exception log once and return ``default``."""
    try:
        return func(*args)
    except Exception as exc:  # noqa: BLE001 - isolation is the point
        log_once(hook, exc)
        return default


class ImportGate:
    """Lets a fork wait (at most ``wait_s``) for an import a background thread is running.

    Importing holds per-module import locks for its whole duration. A child forked meanwhile inherits them
    held by a thread it does not have, so the child's own loader blocks on them forever (gunicorn
    ``--preload`` forks its workers right after the app called ``instrument()``, while the loaders of price
    and tokenizer data are still importing). A module registers ``wait`` before fork and ``reset`` in the
    child; its loader imports inside ``importing()``."""

    def __init__(self, wait_s: float = 3.0) -> None:
        self.wait_s = wait_s
        self._idle = threading.Event()
        self._idle.set()

    @contextlib.contextmanager
    def importing(self) -> Iterator[None]:
        self._idle.clear()
        try:
            yield
        finally:
            self._idle.set()

    def wait(self) -> None:
        self._idle.wait(self.wait_s)

    def reset(self) -> None:
        self._idle = threading.Event()
        self._idle.set()


def _after_fork_in_child() -> None:
    """A fork while another thread held ``_logged_lock`` would leave it held for good in the child, and the
    child's next log_once (any hook failing) would hang the user's call: start the child with a fresh lock."""
    global _logged_lock
    _logged_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _reset_logged_for_tests() -> None:
    with _logged_lock:
        _logged_hooks.clear()
