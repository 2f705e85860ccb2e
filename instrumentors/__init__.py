"""Adapters, one module per client library (installed as ``otel_tokenkpi.instrumentors``).

Each adapter says where its library's model calls live and how to read their
requests, responses and stream chunks; the lifecycle in ``otel_tokenkpi`` does
the rest. The core imports no adapter: ``instrument()`` finds them through
this distribution's ``opentelemetry_instrumentor`` entry points.
"""
