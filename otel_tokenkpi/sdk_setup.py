"""``otel_tokenkpi.instrument()``: the one line.

If no SDK TracerProvider is set, build one from the standard ``OTEL_*``
environment (service name and resource, sampler, OTLP endpoint/protocol/
headers, console exporter) with :class:`TokenKPISpanProcessor` wrapping the
exporting processor, and a MeterProvider the same way. Its OTLP exporters are
behind :mod:`otlp_guard`: with nothing listening they fail at once, in one log line. Then instrument every
client library that is installed, found through THIS distribution's
``opentelemetry_instrumentor`` entry points (not the whole group, which
would instrument Flask, requests and whatever else is installed).
"""

from __future__ import annotations

import atexit
import importlib.metadata
import os
import threading
from typing import Any

from opentelemetry import metrics, trace

from . import options as tk_options
from . import otlp_guard
from ._safety import logger
from .processor import TokenKPISpanProcessor

DISTRIBUTION = "otel-tokenkpi"
_PROVIDER_OPTIONS = ("tracer_provider", "meter_provider")

_lock = threading.Lock()
_instrumentors: list[Any] = []
_active = False
_created_tracer_provider: Any = None


def _env_list(name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


def _sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _otlp_protocol(signal: str) -> str:
    """grpc (the Python SDK's default) or http/protobuf; the Python exporters
    have no http/json, so that falls back to http/protobuf with a warning."""
    value = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    value = value.strip()
    if value not in ("grpc", "http/protobuf"):
        logger.warning("otel-tokenkpi: OTLP protocol %r is not supported here; using http/protobuf", value)
        return "http/protobuf"
    return value


def _endpoint_set(signal: str) -> bool:
    names = (f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    return any(os.environ.get(name, "").strip() for name in names)


def _exporter_names(signal: str, console: bool) -> list[str]:
    """``OTEL_<SIGNAL>_EXPORTER`` when set; else OTLP, except that ``console=True`` with no OTLP endpoint
    set means "show me here": spans on the console only, metrics not exported (nothing listens on the
    default localhost endpoint on a laptop). ``console=True`` always adds the span console exporter."""
    names = _env_list(f"OTEL_{signal.upper()}_EXPORTER")
    if not names:
        names = [] if console and not _endpoint_set(signal) else ["otlp"]
    if console and signal == "traces" and "console" not in names:
        names.append("console")
    return names


def _guard(signal: str, protocol: str) -> otlp_guard.ExportGuard:
    return otlp_guard.ExportGuard(otlp_guard.default_endpoint(signal, protocol))


def _span_exporters(console: bool) -> list[tuple[Any, bool]]:
    """(exporter, batch?) pairs from OTEL_TRACES_EXPORTER (default otlp)."""
    exporters: list[tuple[Any, bool]] = []
    for name in _exporter_names("traces", console):
        if name == "otlp":
            protocol = _otlp_protocol("traces")
            if protocol == "http/protobuf":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            else:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
            exporters.append((otlp_guard.GuardedSpanExporter(OTLPSpanExporter(), _guard("traces", protocol)), True))
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append((ConsoleSpanExporter(), False))
        elif name != "none":
            logger.warning("otel-tokenkpi: unsupported OTEL_TRACES_EXPORTER value %r ignored", name)
    return exporters


def _metric_readers(console: bool) -> list[Any]:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

    readers = []
    for name in _exporter_names("metrics", console):
        if name == "otlp":
            protocol = _otlp_protocol("metrics")
            if protocol == "http/protobuf":
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            else:
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # type: ignore[assignment]
                    OTLPMetricExporter,
                )
            exporter = otlp_guard.GuardedMetricExporter(OTLPMetricExporter(), _guard("metrics", protocol))
            readers.append(PeriodicExportingMetricReader(exporter))
        elif name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    return readers


def _configure_sdk(console: bool, resource_attributes: dict[str, str] | None = None) -> None:
    """Create and set global providers when nobody configured the SDK (also the zero-code
    configurator's work, see distro.py)."""
    global _created_tracer_provider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):  # somebody set a provider: keep theirs
        if isinstance(current, TracerProvider) and not any(
            isinstance(p, TokenKPISpanProcessor) for p in _span_processors(current)
        ):
            logger.info(
                "otel-tokenkpi: an SDK TracerProvider is already set; per-call tokenkpi.* attributes are on. "
                "For trace roll-ups wrap your exporting processor: provider.add_span_processor("
                "TokenKPISpanProcessor(BatchSpanProcessor(exporter)))"
            )
        return
    if _sdk_disabled() or _created_tracer_provider is not None:
        return
    resource = Resource.create(resource_attributes or {})
    provider = TracerProvider(resource=resource)
    for exporter, batch in _span_exporters(console):
        inner = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(TokenKPISpanProcessor(inner))
    trace.set_tracer_provider(provider)
    _created_tracer_provider = provider
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=_metric_readers(console)))
    # Registered after the providers' own exit handlers, so it runs before them (atexit is LIFO).
    atexit.register(otlp_guard.exiting)


def _span_processors(provider: Any) -> list[Any]:
    active = getattr(provider, "_active_span_processor", None)
    return list(getattr(active, "_span_processors", ()) or ())


def _our_entry_points() -> list[importlib.metadata.EntryPoint]:
    found = []
    for ep in importlib.metadata.entry_points(group="opentelemetry_instrumentor"):
        try:
            name = ep.dist.metadata["Name"] if ep.dist is not None else None
        except Exception:  # noqa: BLE001 - a broken foreign distribution is not our business
            continue
        if isinstance(name, str) and name.lower().replace("_", "-") == DISTRIBUTION:
            found.append(ep)
    return found


def instrument(**options: Any) -> None:
    """Set up the SDK if needed and instrument every installed supported library.

    Options: ``model_aliases`` (model or deployment name -> priced model id),
    ``allow_tokenizer_download`` (let tiktoken data be fetched in the
    background), ``inject_stream_usage`` (add ``stream_options.include_usage``
    to OpenAI chat streams, so usage is exact; changes the stream: opt-in),
    ``console`` (print spans: beside the OTLP export when an OTLP endpoint is set in the
    environment, else instead of it, with no metrics export), ``tracer_provider`` / ``meter_provider``.
    Waste engine: ``exempt_tools`` (tool names never counted as duplicate
    calls, e.g. polling tools), ``state_budget_bytes`` (memory for
    conversation state, default 4 MiB), ``state_ttl_s`` (idle conversations
    are forgotten after this, default 1800 s), ``metric_user_attributes``
    (True, or a list of keys: let attributes set with ``otel_tokenkpi.attributes``
    join the ``tokenkpi.*`` metrics; off by default, since they may be unbounded).
    Every option but the providers can also be set in the environment,
    ``OTEL_INSTRUMENTATION_TOKENKPI_<OPTION>`` (see options.py); an argument wins.
    Calling it again does nothing.
    """
    unknown = set(options) - set(tk_options.NAMES) - set(_PROVIDER_OPTIONS)
    if unknown:
        raise TypeError(f"otel_tokenkpi.instrument() got unknown option(s): {', '.join(sorted(unknown))}")
    # Checked here, at the user's call, so a typo fails loudly before anything is patched.
    resolved = tk_options.resolve({k: v for k, v in options.items() if k not in _PROVIDER_OPTIONS})
    global _active
    with _lock:
        if _active:
            return
        _active = True
        # Applied before any instrumentor starts loading (TokenKPIInstrumentor._instrument).
        tk_options.apply(resolved)
        if options.get("tracer_provider") is None:
            _configure_sdk(bool(resolved.console))
        disabled = set(_env_list("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"))
        kwargs = {k: options[k] for k in _PROVIDER_OPTIONS if k in options}
        kwargs["inject_stream_usage"] = bool(resolved.inject_stream_usage)
        from .instrumentation import library_conflict  # the instrumentors import it anyway

        for ep in _our_entry_points():
            if ep.name in disabled:
                continue
            try:
                instrumentor = ep.load()()
                if instrumentor.is_instrumented_by_opentelemetry:
                    continue  # e.g. opentelemetry-instrument loaded it already: not ours to undo
                if library_conflict(instrumentor) is not None:
                    continue
                instrumentor.instrument(skip_dep_check=True, **kwargs)
                _instrumentors.append(instrumentor)
            except Exception as exc:  # noqa: BLE001 - one broken adapter must not stop the rest
                logger.warning("otel-tokenkpi: could not instrument %s: %r", ep.name, exc)


def uninstrument() -> None:
    """Restore every patched method."""
    global _active
    with _lock:
        _active = False
        tk_options.forget()
        for instrumentor in _instrumentors:
            instrumentor.uninstrument()
        _instrumentors.clear()
