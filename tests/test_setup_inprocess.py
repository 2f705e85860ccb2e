"""instrument() decisions that need no global provider (the rest of setup is
tested in subprocesses by test_setup.py)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_tokenkpi
from otel_tokenkpi import sdk_setup as setup
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


@pytest.mark.parametrize(
    "options",
    [
        {"exempt_tools": "poll_job"},  # a str, not a list of names
        {"exempt_tools": ["ok", 3]},
        {"state_budget_bytes": -1},
        {"state_budget_bytes": True},
        {"state_ttl_s": 0},
        {"metric_user_attributes": [1]},
    ],
)
def test_bad_engine_options_fail_at_the_call_and_change_nothing(options):
    from otel_tokenkpi.engine import ENGINE

    before = (ENGINE.exempt_tools, ENGINE.store.budget_bytes, ENGINE.store.ttl_s, ENGINE.metric_user_attributes)
    with pytest.raises(TypeError, match=next(iter(options))):
        otel_tokenkpi.instrument(tracer_provider=TracerProvider(), **options)
    assert not setup._active and setup._instrumentors == []
    assert (ENGINE.exempt_tools, ENGINE.store.budget_bytes, ENGINE.store.ttl_s, ENGINE.metric_user_attributes) == before
