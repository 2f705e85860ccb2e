"""instrument() decisions that need no global provider (the rest of setup is
tested in subprocesses by test_setup.py)."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider

import otel_tokenkpi
from otel_tokenkpi import setup
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor


def test_http_json_protocol_falls_back_to_http_protobuf(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with caplog.at_level(logging.WARNING, logger="otel_tokenkpi"):
        assert setup._otlp_protocol("traces") == "http/protobuf"
    assert "http/json" in caplog.text
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    assert setup._otlp_protocol("traces") == "grpc"


def test_an_instrumentor_someone_else_started_is_not_ours_to_undo():
    already = OpenAIInstrumentor()
    already.instrument(tracer_provider=TracerProvider())  # as opentelemetry-instrument would have
    try:
        otel_tokenkpi.instrument(tracer_provider=TracerProvider())
        assert not any(isinstance(i, OpenAIInstrumentor) for i in setup._instrumentors)
        assert setup._instrumentors  # the other installed libraries were instrumented
        otel_tokenkpi.uninstrument()
        assert already.is_instrumented_by_opentelemetry
    finally:
        already.uninstrument()
        otel_tokenkpi.uninstrument()
