"""The options of ``instrument()``, from keyword arguments or ``OTEL_INSTRUMENTATION_TOKENKPI_*``.

Zero-code users (``opentelemetry-instrument``) pass no arguments, so every
option also has an environment variable: ``OTEL_INSTRUMENTATION_TOKENKPI_``
plus the option's name in capitals. This is the one place that reads and
checks both:

- an explicit keyword argument wins over the environment; a bad one raises
  TypeError at the user's call, before anything is patched;
- a bad environment value is logged once, naming the variable, and the
  default is used: an app must never fail to start over our setting.

Formats: booleans ``true``/``false`` (or ``1``/``0``), lists comma-separated,
model aliases ``alias=model,alias2=model2``; an empty value is unset.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ._safety import log_once

ENV_PREFIX = "OTEL_INSTRUMENTATION_TOKENKPI_"
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Options:
    """Resolved options; None means "not given" (the component keeps its default)."""

    model_aliases: dict[str, str] | None = None
    inject_stream_usage: bool | None = None
    allow_tokenizer_download: bool | None = None
    console: bool | None = None
    exempt_tools: tuple[str, ...] | None = None
    state_budget_bytes: int | None = None
    state_ttl_s: float | None = None
    metric_user_attributes: bool | frozenset[str] | None = None

    def engine_options(self) -> dict[str, Any]:
        names = ("exempt_tools", "state_budget_bytes", "state_ttl_s", "metric_user_attributes")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


NAMES: tuple[str, ...] = tuple(f.name for f in fields(Options))


def env_name(option: str) -> str:
    return ENV_PREFIX + option.upper()


# -- keyword arguments: checked, TypeError ----------------------------------------------------------


def _check_bool(name: str, value: Any) -> bool:
    return bool(value)  # historically truthy values were accepted; keep that


def _check_aliases(name: str, value: Any) -> dict[str, str]:
    if not (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        raise TypeError("model_aliases must be a dict of str -> str")
    return dict(value)


def _check_tools(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(tool, str) for tool in value):
        raise TypeError("exempt_tools must be a list of tool names (str)")
    return tuple(value)


def _check_budget(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError("state_budget_bytes must be a non-negative int")
    return value


def _check_ttl(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (0 < value < math.inf):
        raise TypeError("state_ttl_s must be a positive number of seconds")
    return float(value)


def _check_metric_attributes(name: str, value: Any) -> bool | frozenset[str]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) or not all(isinstance(key, str) for key in value):
        raise TypeError("metric_user_attributes must be True/False or a list of attribute keys")
    return frozenset(value)


# -- environment: parsed, ValueError -> logged once, default used ---------------------------------------


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _parse_aliases(text: str) -> dict[str, str]:
    aliases = {}
    for item in _parse_list(text):
        alias, sep, model = (part.strip() for part in item.partition("="))
        if not (sep and alias and model):
            raise ValueError(f"expected alias=model, got {item!r}")
        aliases[alias] = model
    return aliases


def _parse_budget(text: str) -> int:
    return _check_budget("", _as(int, text))


def _parse_ttl(text: str) -> float:
    return _check_ttl("", _as(float, text))


def _parse_metric_attributes(text: str) -> bool | frozenset[str]:
    try:
        return _parse_bool(text)
    except ValueError:
        return frozenset(_parse_list(text))


def _as(kind: Callable[[str], Any], text: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


# option -> (check a keyword argument, parse an environment value)
_RULES: dict[str, tuple[Callable[[str, Any], Any], Callable[[str], Any]]] = {
    "model_aliases": (_check_aliases, _parse_aliases),
    "inject_stream_usage": (_check_bool, _parse_bool),
    "allow_tokenizer_download": (_check_bool, _parse_bool),
    "console": (_check_bool, _parse_bool),
    "exempt_tools": (_check_tools, _parse_list),
    "state_budget_bytes": (_check_budget, _parse_budget),
    "state_ttl_s": (_check_ttl, _parse_ttl),
    "metric_user_attributes": (_check_metric_attributes, _parse_metric_attributes),
}
assert set(_RULES) == set(NAMES)


def _from_env(option: str) -> Any:
    name = env_name(option)
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return _RULES[option][1](text)
    except (ValueError, TypeError) as exc:
        log_once(f"env:{name}={text}", message=f"{name}={text!r} ignored ({exc}); using the default")
        return None


def resolve(explicit: Mapping[str, Any] | None = None) -> Options:
    """Keyword arguments (None counts as not given) over the environment. Raises TypeError only
    for a bad keyword argument; ``explicit`` must hold option names only."""
    explicit = explicit or {}
    values: dict[str, Any] = {}
    for option in NAMES:  # every keyword argument first: a bad one fails before env is read
        if explicit.get(option) is not None:
            values[option] = _RULES[option][0](option, explicit[option])
    for option in NAMES:
        if option not in values:
            values[option] = _from_env(option)
    return Options(**values)


# -- applying -----------------------------------------------------------------------------------------

_lock = threading.Lock()
_applied: Options | None = None


def apply(options: Options, *, reset_unset: bool = True) -> None:
    """Configure the engine, prices and tokenizer loading. With ``reset_unset`` options not given
    get their defaults (``instrument()`` after ``uninstrument()`` starts from a clean slate);
    without it they are left as they are."""
    global _applied
    from . import prices, tokens
    from .engine import ENGINE

    with _lock:
        ENGINE.configure(**options.engine_options())
        if reset_unset or options.model_aliases is not None:
            prices.configure(model_aliases=options.model_aliases)
        if reset_unset or options.allow_tokenizer_download is not None:
            tokens.configure(allow_download=bool(options.allow_tokenizer_download))
        _applied = options


def for_instrumentor() -> Options:
    """The options in force, for an instrumentor being loaded. When nobody applied any (an
    instrumentor loaded on its own, e.g. by ``opentelemetry-instrument``), apply the environment's
    now, once; whatever it leaves unset keeps its current value. Never raises."""
    with _lock:
        applied = _applied
    if applied is not None:
        return applied
    options = resolve()
    apply(options, reset_unset=False)
    return options


def forget() -> None:
    """``uninstrument()``: the next instrumentor loaded on its own reads the environment again."""
    global _applied
    with _lock:
        _applied = None
