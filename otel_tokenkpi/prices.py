"""Prices and context windows from genai-prices' bundled data, resolved once per (provider, model).

Why this shape: importing genai-prices costs ~160-200 ms and one ``calc_price`` ~70-90 us, so neither
belongs on a user's call. The import runs in one daemon thread; each (provider, model) is resolved once
into a small frozen ``ModelInfo`` of floats, and ``cost_usd`` is plain arithmetic. Until the import has
finished, ``lookup`` returns None rather than wait.

Rates are the model's standard prices when it is first resolved: no batch / priority service tier, and
for tiered prices (e.g. Anthropic and Gemini above 200k input tokens) the BASE tier, so a long-context
call is under-priced. Daily time-of-day windows (DeepSeek's peak and off-peak rates) are resolved once
too, and ``lookup`` picks the window of the moment it is asked. Nothing here touches the network unless
the user calls ``refresh_prices_from_network()``, which starts genai-prices' own updater
(``UpdatePrices``); lookups then re-resolve against the refreshed data.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._safety import ImportGate, log_once

logger = logging.getLogger("otel_tokenkpi")

# OpenTelemetry gen_ai.provider.name -> genai-prices provider id, where they differ. Other names pass
# through: openai, anthropic, cohere, groq, deepseek and perplexity are the same in both, and genai-prices
# matches e.g. "together_ai", "fireworks" and "openrouter" itself.
# fmt: off
PROVIDER_IDS = {
    "aws.bedrock": "aws", "mistral_ai": "mistral", "x_ai": "x-ai",
    "gcp.gemini": "google", "gcp.vertex_ai": "google", "gcp.gen_ai": "google",
    "azure.ai.openai": "azure", "azure.ai.inference": "azure",
    "az.ai.openai": "azure", "az.ai.inference": "azure",
}
# fmt: on
_MAX_RESOLVED = 4096


@dataclass(frozen=True)
class ModelInfo:
    model: str  # the priced model id it resolved to
    provider: str  # genai-prices provider id
    input_per_mtok: float | None
    output_per_mtok: float | None
    cache_read_per_mtok: float | None
    cache_write_per_mtok: float | None
    context_window: int | None


@dataclass(frozen=True)
class _DailyWindow:
    """Rates that apply every day from ``start`` to ``end`` (seconds after UTC midnight; may wrap midnight)."""

    start: int
    end: int
    info: ModelInfo

    def active(self, second_of_day: int) -> bool:
        if self.end < self.start:
            return second_of_day >= self.start or second_of_day < self.end
        return self.start <= second_of_day < self.end


@dataclass(frozen=True)
class _Resolved:
    default: ModelInfo
    windows: tuple[_DailyWindow, ...] = ()

    def at(self, when: datetime | None) -> ModelInfo:
        if not self.windows:
            return self.default
        when = when or datetime.now(timezone.utc)
        when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)  # naive: UTC
        second_of_day = when.hour * 3600 + when.minute * 60 + when.second
        for window in self.windows:
            if window.active(second_of_day):
                return window.info
        return self.default


_lock = threading.Lock()
_done = threading.Event()
_thread: threading.Thread | None = None
_snapshots: Any = None  # genai_prices.data_snapshot once imported
_aliases: dict[str, str] = {}
_resolved: dict[tuple[str | None, str], _Resolved | None] = {}
_resolved_for: Any = None  # the DataSnapshot _resolved was computed from
_updater: Any = None
_refresh_requested = False
_load_hook: Callable[[], None] | None = None  # tests: runs in the loader thread before the import
_import_gate = ImportGate()  # a fork waits for the loader's import of genai-prices


def start_loading() -> None:
    """Import genai-prices in one daemon thread. Returns at once; idempotent."""
    global _thread
    with _lock:
        if _thread is not None or _done.is_set():
            return
        _thread = threading.Thread(target=_load, name="otel_tokenkpi-prices", daemon=True)
        try:
            _thread.start()
        except RuntimeError:  # "can't start new thread", e.g. at interpreter shutdown: no prices
            _thread = None


def wait_until_loaded(timeout: float = 10.0) -> bool:
    """Block until genai-prices is imported (starting the import if needed); False if missing or slow."""
    start_loading()
    _done.wait(timeout)
    return _snapshots is not None


def configure(*, model_aliases: dict[str, str] | None = None) -> None:
    """Map model or Azure deployment names (case-insensitive) to priced model ids: {"prod-chat": "gpt-4o"}."""
    global _aliases
    with _lock:
        _aliases = {str(k).lower(): str(v) for k, v in (model_aliases or {}).items()}
        _resolved.clear()


def lookup(provider: str | None, model: str | None, at: datetime | None = None) -> ModelInfo | None:
    """Prices and context window of ``model`` at ``at`` (default: now; a naive datetime is UTC, as in
    genai-prices; it matters only for models with time-of-day rates); None if not loaded yet,
    genai-prices missing, or unknown.

    Never waits and never raises. ``provider`` is an OTel ``gen_ai.provider.name``.
    """
    global _resolved_for
    if not isinstance(model, str) or not model:
        return None
    snapshots = _snapshots
    if snapshots is None:
        start_loading()
        return None
    try:
        snapshot = snapshots.get_snapshot()
        if snapshot is not _resolved_for:  # first use, or prices were refreshed: resolve again
            with _lock:
                _resolved.clear()
                _resolved_for = snapshot
        key = (provider if isinstance(provider, str) else None, model)
        if key in _resolved:
            resolved = _resolved[key]
        else:
            resolved = _resolve(snapshot, key[0], model)
            with _lock:
                if _resolved_for is snapshot:  # not a result from before a concurrent refresh
                    if len(_resolved) >= _MAX_RESOLVED:
                        del _resolved[next(iter(_resolved))]
                    _resolved[key] = resolved
        return None if resolved is None else resolved.at(at)
    except Exception:
        logger.debug("otel_tokenkpi: price lookup failed for %r/%r", provider, model, exc_info=True)
        return None


def cost_usd(
    info: ModelInfo,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float | None:
    """Estimated USD price of one call, cache-aware.

    ``input_tokens`` INCLUDES cache reads and writes (OTel semconv). Uncached input is billed at the input
    rate, cache reads at the cache-read rate and cache writes at the cache-write rate (each falling back
    to the input rate when the model has none). None when a rate needed for non-zero tokens is unknown.
    """
    try:
        cache_read, cache_write = max(0, int(cache_read_tokens)), max(0, int(cache_write_tokens))
        uncached, output = max(0, int(input_tokens) - cache_read - cache_write), max(0, int(output_tokens))
        rate_in, rate_out = info.input_per_mtok, info.output_per_mtok
        if (rate_in is None and (uncached or cache_read or cache_write)) or (rate_out is None and output):
            return None
        if rate_in is None and rate_out is None:
            return None
        rate_in, rate_out = rate_in or 0.0, rate_out or 0.0
        rate_read = rate_in if info.cache_read_per_mtok is None else info.cache_read_per_mtok
        rate_write = rate_in if info.cache_write_per_mtok is None else info.cache_write_per_mtok
        total = uncached * rate_in + cache_read * rate_read + cache_write * rate_write + output * rate_out
        return total / 1_000_000
    except (TypeError, ValueError, AttributeError):
        return None


def refresh_prices_from_network() -> None:
    """Start genai-prices' own background price updater (fetches now, then hourly).

    The only code path here that may use the network; nothing calls it unless the user does.
    """
    global _refresh_requested
    _refresh_requested = True
    if _snapshots is not None:
        _start_updater()
    else:
        start_loading()  # the loader thread starts the updater after the import


def _start_updater() -> None:
    global _updater
    with _lock:
        if _updater is not None:
            return
        from genai_prices import UpdatePrices

        _updater = UpdatePrices()
        _updater.start(wait=False)


def _load() -> None:
    global _snapshots, _thread
    loaded = None
    try:
        if _load_hook is not None:
            _load_hook()
        with _import_gate.importing():
            from genai_prices import data_snapshot

            data_snapshot.get_snapshot()  # builds the bundled data (imports genai_prices.data: part of the cost)
        loaded = data_snapshot
    except ImportError:
        logger.debug("otel_tokenkpi: genai-prices is not installed, no cost attributes")
    except Exception:
        logger.debug("otel_tokenkpi: loading genai-prices failed", exc_info=True)
    with _lock:
        if _thread is not threading.current_thread():  # superseded (reset for tests)
            return
        _snapshots, _thread = loaded, None
        _done.set()
    if loaded is not None and _refresh_requested:
        _start_updater()


def canonical_model(model: str) -> str:
    """The model a name stands for under the configured ``model_aliases`` (a deployment name -> its model;
    alias names are case-insensitive), else the name itself. The tokenizer and the cache rules use it too,
    so an aliased deployment is counted and judged as its model, not only priced as it."""
    return _aliases.get(model.lower(), model) if _aliases else model


def _resolve(snapshot: Any, provider: str | None, model: str) -> _Resolved | None:
    ref = canonical_model(model)
    pid = PROVIDER_IDS.get(provider.lower(), provider.lower()) if provider else None
    candidates: list[tuple[str | None, str]] = [(pid, ref)] if pid else []
    if "/" in ref:  # "openai/gpt-4o" (LiteLLM style), "models/gemini-2.5-flash"
        head, tail = ref.split("/", 1)[0], ref.rsplit("/", 1)[1]
        candidates += [(PROVIDER_IDS.get(head.lower(), head.lower()), tail), (pid, tail)]
    candidates += [(None, ref), (None, ref.rsplit("/", 1)[-1])]  # model-only matching
    for candidate_pid, candidate_ref in dict.fromkeys(candidates):
        try:
            found_provider, found = snapshot.find_provider_model(candidate_ref, None, candidate_pid, None)
        except LookupError:
            continue

        def info(prices: Any, found: Any = found, found_provider: Any = found_provider) -> ModelInfo:
            def rate(key: str) -> float | None:
                value = getattr(prices, key, None)
                value = getattr(value, "base", value)  # TieredPrices: the base tier
                return None if value is None else float(value)

            return ModelInfo(
                model=found.id,
                provider=found_provider.id,
                input_per_mtok=rate("input_mtok"),
                output_per_mtok=rate("output_mtok"),
                cache_read_per_mtok=rate("cache_read_mtok"),
                cache_write_per_mtok=rate("cache_write_mtok"),
                context_window=found.context_window,
            )

        default, windows = _standard_prices(found)
        return _Resolved(info(default), tuple(_DailyWindow(start, end, info(p)) for start, end, p in windows))
    _say_unpriced(provider, model, ref)
    return None


def _say_unpriced(provider: str | None, model: str, ref: str) -> None:
    """Once per model: why its spans have no cost, and the fix when it is a deployment name (Azure) or an
    in-house alias. Local models (Ollama) cost nothing to price: not worth a line."""
    if provider == "ollama":
        return
    aliased = f" (aliased to {ref!r})" if ref != model else ""
    log_once(
        f"prices:unknown:{model.lower()}",
        message=f"no price known for model {model!r}{aliased} ({provider or 'provider unknown'}): its spans get no "
        "tokenkpi.cost.usd or context window. If it is a deployment name or an alias, map it to a priced model: "
        f"instrument(model_aliases={{{model!r}: 'gpt-4o'}}) or "
        f"OTEL_INSTRUMENTATION_TOKENKPI_MODEL_ALIASES={model}=gpt-4o",
    )


def _standard_prices(model: Any) -> tuple[Any, list[tuple[int, int, Any]]]:
    """The model's prices now, without a service tier or batch variant, and its daily time-of-day windows
    as (start, end, prices), start and end in seconds after UTC midnight (only DeepSeek has them)."""
    if not isinstance(model.prices, list):
        return model.prices, []
    now = datetime.now(timezone.utc)
    default, windows = model.prices[0].prices, []
    for conditional in reversed(model.prices):
        constraint = conditional.constraint
        if constraint is not None and hasattr(constraint, "start_time"):
            windows.append((_utc_second(constraint.start_time), _utc_second(constraint.end_time), conditional.prices))
    for conditional in reversed(model.prices):
        constraint = conditional.constraint
        if constraint is None or (not hasattr(constraint, "start_time") and constraint.active(now)):
            default = conditional.prices
            break
    return default, windows


def _utc_second(value: Any) -> int:
    """A ``datetime.time`` (naive means UTC) as seconds after UTC midnight."""
    offset = value.utcoffset()
    seconds = value.hour * 3600 + value.minute * 60 + value.second
    return (seconds - int(offset.total_seconds() if offset is not None else 0)) % 86400


def _reset_for_tests() -> None:
    """Forget the import, resolutions, aliases and updater (a running loader thread is abandoned)."""
    global _thread, _snapshots, _resolved_for, _updater, _refresh_requested, _load_hook, _aliases
    with _lock:
        updater, _updater = _updater, None
        _thread = _snapshots = _resolved_for = _load_hook = None
        _refresh_requested, _aliases = False, {}
        _resolved.clear()
        _done.clear()
    if updater is not None:
        updater.stop()
        from genai_prices import data_snapshot

        data_snapshot.set_custom_snapshot(None)


def _after_fork_in_child() -> None:
    global _lock, _done, _thread
    finished = _done.is_set()
    _lock, _done = threading.Lock(), threading.Event()
    _import_gate.reset()
    if finished:
        _done.set()
    was_loading, _thread = _thread is not None, None
    if was_loading:
        start_loading()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_import_gate.wait, after_in_child=_after_fork_in_child)
