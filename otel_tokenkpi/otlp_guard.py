"""OTLP exporters that fail fast when nothing listens, and say so in one line.

The SDK's OTLP exporters retry a refused connection with backoff for up to their timeout (10 s by
default; the oldest supported releases for up to a minute), log every retry, and do it again for each
signal at process exit: a script run with no collector about prints a retry log and takes 15-20 s to
end. :class:`GuardedSpanExporter` and :class:`GuardedMetricExporter` wrap those exporters:

* before exporting to an endpoint that has not answered yet (or failed since, or at process exit) they
  open one TCP connection to it (at most ``PROBE_TIMEOUT_S``; a failure is shared by every exporter of
  that address for ``PROBE_FRESH_S``). If nothing accepts it, the batch is dropped at once: no retries.
  Behind an HTTP(S)/gRPC proxy a direct connection proves nothing, so there is no probe;
* the SDK's own log lines about that export (retries, "Failed to export") are held back and
  replaced by one line per outage and address, naming the endpoint and the reason; traces and metrics
  sent to the same address share it. Nothing is logged again until an export there has succeeded.

A collector that accepts connections but never answers is bounded by the exporter's own timeout
(``OTEL_EXPORTER_OTLP_TIMEOUT``), as without the guard.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._safety import logger

__all__ = ["ExportGuard", "GuardedMetricExporter", "GuardedSpanExporter", "default_endpoint", "exiting"]

PROBE_TIMEOUT_S = 2.0
PROBE_FRESH_S = 5.0
MAX_REASON_CHARS = 300
SDK_LOGGERS = "opentelemetry.exporter."  # where the OTLP exporters of every supported release log
_PROXY_SCHEMES = ("http", "https", "grpc", "all")

Address = tuple[str, int]

_lock = threading.Lock()
_probes: dict[Address, tuple[float, str]] = {}  # address -> (monotonic time of a failed probe, why)
_in_outage: set[Address | str] = set()  # addresses (or endpoints) whose outage was already reported
_exiting = False
_local = threading.local()  # .heard: the SDK log messages of the export running on this thread
_hushed_loggers: set[str] = set()


def exiting() -> None:
    """Called at process exit (setup registers it to run before the providers shut down): from now on
    every export probes its endpoint first, so a collector that went away does not hold exit."""
    global _exiting
    _exiting = True


def default_endpoint(signal: str, protocol: str) -> str:
    """The endpoint the SDK's exporter of ``signal`` (traces, metrics) will use, from the standard
    environment: ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT``, else ``OTEL_EXPORTER_OTLP_ENDPOINT``, else
    localhost on the protocol's port."""
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"


def address(endpoint: str) -> Address | None:
    """(host, port) of an http(s) URL or a gRPC ``host:port``; None for anything else (unix sockets)."""
    text = endpoint.strip()
    try:
        parts = urlsplit(text if "://" in text else "//" + text)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("", "http", "https") or not host:
        return None
    if port is None:
        port = 443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None
    return None if port is None else (host, port)


def _behind_proxy(host: str) -> bool:
    proxies = urllib.request.getproxies_environment()
    if not any(proxies.get(scheme) for scheme in _PROXY_SCHEMES):
        return False
    return not urllib.request.proxy_bypass(host)  # NO_PROXY (and the system's settings on macOS / Windows)


def _probe(where: Address) -> str | None:
    """None if something accepts a TCP connection at ``where``, else why not."""
    try:
        with socket.create_connection(where, timeout=PROBE_TIMEOUT_S):
            return None
    except socket.gaierror:
        return f"cannot resolve {where[0]}"
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


def unreachable(where: Address) -> str | None:
    """Why nothing listens at ``where``, or None. A recent failed probe is reused (traces and metrics at exit
    probe once); a successful one is not: the next probe is the one that matters."""
    with _lock:
        seen = _probes.get(where)
    if seen is not None and time.monotonic() - seen[0] < PROBE_FRESH_S:
        return seen[1]
    reason = _probe(where)
    with _lock:
        if reason is None:
            _probes.pop(where, None)
        else:
            _probes[where] = (time.monotonic(), reason)
    return reason


class _Hush(logging.Filter):
    """Drops, and keeps for our own line, what the SDK logs during a guarded export on this thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        heard = getattr(_local, "heard", None)
        if heard is None:
            return True
        heard.append(record.getMessage())
        return False


_HUSH = _Hush()


def _hush_sdk_loggers() -> None:
    """Filters sit on the logger that creates a record (a parent's filters do not apply), so the filter goes
    on each OTLP exporter module's logger; new ones appear as exporter modules are imported."""
    names = [name for name in list(logging.root.manager.loggerDict) if name.startswith(SDK_LOGGERS)]
    for name in names:
        if name not in _hushed_loggers:
            logging.getLogger(name).addFilter(_HUSH)
            _hushed_loggers.add(name)


@contextmanager
def _heard() -> Iterator[list[str]]:
    _hush_sdk_loggers()
    heard: list[str] = []
    _local.heard = heard
    try:
        yield heard
    finally:
        _local.heard = None


def _reason_from(heard: Sequence[str]) -> str:
    """The SDK's first message about a failed export names the cause; later ones say it gave up."""
    if not heard:
        return "the exporter reported a failure"
    first = heard[0].split(", retrying in")[0].strip()
    return first if len(first) <= MAX_REASON_CHARS else first[: MAX_REASON_CHARS - 3] + "..."


def _log_warning(message: str) -> None:
    logger.warning("%s", message)


class ExportGuard:
    """Probe-before-export and one line per outage for one endpoint (see the module docstring).

    ``report`` gets each outage's line (default: a warning on the ``otel_tokenkpi`` logger). ``failures``
    counts failed exports and ``last_error`` keeps the latest reason (e.g. "connection refused"), for
    callers that judge the run.
    """

    def __init__(self, endpoint: str, report: Callable[[str], None] | None = None) -> None:
        self.endpoint = endpoint
        self.address = address(endpoint)
        self.where = f"{self.address[0]}:{self.address[1]}" if self.address else endpoint
        self._report = report or _log_warning
        self._answered = False
        self.failures = 0
        self.last_error: str | None = None
        _hush_sdk_loggers()

    def run(self, export: Callable[[], bool]) -> bool:
        """Run one export (``export`` returns whether it succeeded); never raises."""
        if (not self._answered or _exiting) and self.address is not None and not _behind_proxy(self.address[0]):
            reason = unreachable(self.address)
            if reason is not None:
                return self._failed(
                    reason,
                    f"nothing answers at the OTLP endpoint {self.where} ({reason}); telemetry for it is dropped "
                    "until it does. Start a collector there or set OTEL_EXPORTER_OTLP_ENDPOINT "
                    "(OTEL_TRACES_EXPORTER=none / OTEL_METRICS_EXPORTER=none: no export)",
                )
        with _heard() as heard:
            try:
                ok = export()
            except Exception as exc:  # noqa: BLE001 - an exporter's bug is one more failed export
                ok = False
                heard.append(repr(exc))
        if ok:
            self._answered = True
            with _lock:
                _in_outage.discard(self._outage_key)
            return True
        self._answered = False
        reason = _reason_from(heard)
        return self._failed(
            reason,
            f"export to the OTLP endpoint {self.where} failed ({reason}); telemetry for it is "
            "dropped until an export succeeds",
        )

    @property
    def _outage_key(self) -> Address | str:
        return self.address or self.endpoint

    def _failed(self, reason: str, message: str) -> bool:
        self.failures += 1
        self.last_error = reason
        with _lock:
            first = self._outage_key not in _in_outage
            _in_outage.add(self._outage_key)
        if first:
            self._report("otel-tokenkpi: " + message)
        return False


class GuardedSpanExporter(SpanExporter):
    """A span exporter (an OTLP one) behind an :class:`ExportGuard`."""

    def __init__(self, inner: SpanExporter, guard: ExportGuard) -> None:
        self.inner, self.guard = inner, guard

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self.guard.run(lambda: self.inner.export(spans) == SpanExportResult.SUCCESS)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class GuardedMetricExporter(MetricExporter):
    """A metric exporter (an OTLP one) behind an :class:`ExportGuard`; temporality and aggregation are the
    inner exporter's."""

    def __init__(self, inner: MetricExporter, guard: ExportGuard) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner, self.guard = inner, guard

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        def send() -> bool:
            return (
                self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs) == MetricExportResult.SUCCESS
            )

        return MetricExportResult.SUCCESS if self.guard.run(send) else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis=timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _after_fork_in_child() -> None:
    """A fork taken while another thread held the lock must not leave the child's exports waiting on it."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _reset_for_tests() -> None:
    global _exiting
    with _lock:
        _probes.clear()
        _in_outage.clear()
    _exiting = False
