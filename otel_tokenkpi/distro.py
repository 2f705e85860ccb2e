"""Zero-code setup: ``opentelemetry-instrument python app.py``.

``opentelemetry-instrument`` loads one distro (``OTEL_PYTHON_DISTRO``, else the
first installed), then one configurator (``OTEL_PYTHON_CONFIGURATOR``, else the
first installed), then every ``opentelemetry_instrumentor`` entry point. Ours
are all named ``tokenkpi``; with no other distro or configurator installed they
are picked without any setting.

The configurator builds the SDK from the standard environment exactly as
``instrument()`` does (one code path: ``sdk_setup._configure_sdk``), so
``TokenKPISpanProcessor`` sits in front of the exporting processor and the
trace roll-ups reach the backend. Our options come from
``OTEL_INSTRUMENTATION_TOKENKPI_*`` (options.py), read by each instrumentor as
it loads, whichever distro loads it.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from . import options, sdk_setup
from ._safety import logger

NAME = "tokenkpi"  # the entry point name of both, the value of OTEL_PYTHON_DISTRO / _CONFIGURATOR


class TokenKPIDistro(BaseDistro):  # type: ignore[misc]
    """Selected with ``OTEL_PYTHON_DISTRO=tokenkpi``: makes our configurator the default
    (``OTEL_PYTHON_CONFIGURATOR`` is read after the distro is configured) and exports over
    OTLP unless told otherwise, like ``opentelemetry-distro`` (with
    ``OTEL_INSTRUMENTATION_TOKENKPI_CONSOLE=true`` it leaves the exporters to our configurator,
    which prints spans and sends nothing when no OTLP endpoint is set, as ``instrument(console=True)``)."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", NAME)
        if options.resolve().console:
            return  # our configurator decides: the console only, unless an OTLP endpoint is set (setup.py)
        os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")
        os.environ.setdefault("OTEL_METRICS_EXPORTER", "otlp")


class TokenKPIConfigurator:
    """Selected with ``OTEL_PYTHON_CONFIGURATOR=tokenkpi``: sets the global tracer and meter
    providers from the standard ``OTEL_*`` environment, ``TokenKPISpanProcessor`` wrapping
    each exporting span processor. Honours ``OTEL_SDK_DISABLED`` and leaves a provider somebody
    already set alone."""

    def configure(self, **kwargs: Any) -> None:
        version = kwargs.get("auto_instrumentation_version")
        attributes = {"telemetry.auto.version": str(version)} if version else {}
        try:
            sdk_setup._configure_sdk(bool(options.resolve().console), attributes)
        except Exception as exc:  # noqa: BLE001 - the app and the instrumentors still start
            logger.warning("otel-tokenkpi: could not configure the OpenTelemetry SDK: %r", exc, exc_info=exc)
