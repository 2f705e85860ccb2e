"""A real local OTLP receiver for tests (opentelemetry-proto + grpcio, nothing else).

One object listens on 127.0.0.1 (ephemeral ports) for OTLP/gRPC (trace, metrics, logs
services) and OTLP/HTTP (POST /v1/traces, /v1/metrics, /v1/logs; protobuf or JSON
bodies, optionally gzip-compressed). Every request is recorded with its lower-cased
headers/metadata and its decoded ``Export*ServiceRequest``; helpers flatten them::

    with OtlpReceiver() as rx:
        exporter = OTLPSpanExporter(endpoint=rx.grpc_endpoint)  # or rx.http_endpoint + "/v1/traces"
        ...
        spans = rx.wait_for_spans(2)
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

# signal -> (request class, response class, generated servicer base, add-to-server function)
_SIGNALS: dict[str, tuple[Any, Any, Any, Any]] = {
    "traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        trace_service_pb2_grpc.TraceServiceServicer,
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server,
    ),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        metrics_service_pb2_grpc.MetricsServiceServicer,
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server,
    ),
    "logs": (
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        logs_service_pb2_grpc.LogsServiceServicer,
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server,
    ),
}
_ID_KEYS = {"traceId", "spanId", "parentSpanId"}


@dataclass(frozen=True)
class Received:
    signal: str  # "traces" | "metrics" | "logs"
    transport: str  # "grpc" | "http"
    headers: dict[str, Any]  # lower-cased names
    message: Message  # the decoded Export*ServiceRequest


def _value(v: Any) -> Any:
    """AnyValue -> str/int/float/bool/bytes/list/dict (None when unset)."""
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _attrs(v.kvlist_value.values)
    return None if kind is None else getattr(v, kind)


def _attrs(kvs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


def _span(resource: dict[str, Any], scope: str, s: Any) -> dict[str, Any]:
    return {
        "name": s.name,
        "kind": s.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_"),  # SERVER, CLIENT, INTERNAL...
        "trace_id": s.trace_id.hex(),
        "span_id": s.span_id.hex(),
        "parent_span_id": s.parent_span_id.hex(),  # "" for a root
        "attributes": _attrs(s.attributes),
        "resource": resource,
        "scope": scope,
        "status": s.status.StatusCode.Name(s.status.code).removeprefix("STATUS_CODE_"),  # UNSET/OK/ERROR
        "status_message": s.status.message,
        "events": [{"name": e.name, "attributes": _attrs(e.attributes)} for e in s.events],
        "start_time_unix_nano": s.start_time_unix_nano,
        "end_time_unix_nano": s.end_time_unix_nano,
    }


def _points(resource: dict[str, Any], scope: str, m: Any) -> list[dict[str, Any]]:
    kind = m.WhichOneof("data")  # gauge, sum, histogram, exponential_histogram, summary
    out = []
    for p in getattr(m, kind).data_points:
        point = {"type": kind, "unit": m.unit, "attributes": _attrs(p.attributes), "resource": resource}
        point["scope"] = scope
        if kind in ("gauge", "sum"):
            which = p.WhichOneof("value")  # as_int or as_double
            point["value"] = getattr(p, which) if which else None
        else:
            point.update(sum=p.sum, count=p.count)
        if kind == "histogram":
            point.update(bucket_counts=list(p.bucket_counts), bounds=list(p.explicit_bounds))
        out.append(point)
    return out


def _log(resource: dict[str, Any], scope: str, r: Any) -> dict[str, Any]:
    return {
        "body": _value(r.body),
        "severity": r.severity_text,
        "attributes": _attrs(r.attributes),
        "resource": resource,
        "scope": scope,
        "trace_id": r.trace_id.hex(),
        "span_id": r.span_id.hex(),
    }


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes trace/span ids as hex; protobuf's JSON mapping expects base64."""
    if isinstance(node, list):
        return [_hex_ids_to_base64(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, val in node.items():
        if key in _ID_KEYS and isinstance(val, str) and len(val) in (16, 32):
            with contextlib.suppress(ValueError):  # not hex: already base64
                val = base64.b64encode(bytes.fromhex(val)).decode()
        out[key] = _hex_ids_to_base64(val)
    return out


def _parse_json(body: bytes, message: Message) -> Message:
    return json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), message, ignore_unknown_fields=True)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: OtlpReceiver


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        signal = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}.get(self.path.split("?")[0])
        if signal is None:
            self._reply(404, b"not found", "text/plain")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        is_json = self.headers.get("Content-Type", "").split(";")[0].strip().lower() == "application/json"
        request_cls, response_cls = _SIGNALS[signal][:2]
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            message = _parse_json(body, request_cls()) if is_json else request_cls.FromString(body)
        except Exception as exc:  # noqa: BLE001 - any malformed request gets a 400, as from a collector
            self._reply(400, str(exc).encode(), "text/plain")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.receiver._record(Received(signal, "http", headers, message))
        if is_json:
            self._reply(200, json_format.MessageToJson(response_cls()).encode(), "application/json")
        else:
            self._reply(200, response_cls().SerializeToString(), "application/x-protobuf")


def _servicer(signal: str, receiver: OtlpReceiver) -> Any:
    response_cls, base = _SIGNALS[signal][1:3]

    class _Servicer(base):  # type: ignore[misc,valid-type]
        def Export(self, request: Message, context: grpc.ServicerContext) -> Message:
            headers = {k.lower(): v for k, v in context.invocation_metadata()}
            receiver._record(Received(signal, "grpc", headers, request))
            return response_cls()

    return _Servicer()


class OtlpReceiver:
    """OTLP/gRPC + OTLP/HTTP receiver on 127.0.0.1; use as a context manager. Thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._received: list[Received] = []
        self.grpc_endpoint = ""
        self.http_endpoint = ""

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> OtlpReceiver:
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        for signal, (*_, add_to_server) in _SIGNALS.items():
            add_to_server(_servicer(signal, self), self._grpc)
        grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self._http = _HttpServer(("127.0.0.1", 0), _Handler)
        self._http.receiver = self
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.grpc_endpoint = f"http://127.0.0.1:{grpc_port}"
        self.http_endpoint = f"http://127.0.0.1:{self._http.server_address[1]}"
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=None).wait(5)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- recording ---------------------------------------------------------------
    def _record(self, item: Received) -> None:
        with self._cond:
            self._received.append(item)
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._received.clear()

    def requests(self, signal: str | None = None) -> list[Received]:
        with self._cond:
            return [r for r in self._received if signal is None or r.signal == signal]

    def headers(self, signal: str | None = None) -> list[dict[str, Any]]:
        """Headers (HTTP) or metadata (gRPC) of each request, names lower-cased."""
        return [dict(r.headers) for r in self.requests(signal)]

    # -- flattened views ---------------------------------------------------------
    def _items(self, signal: str, per_resource: str, per_scope: str, field: str) -> Iterator[tuple]:
        """Yield (resource attributes, scope name, item) for every span / metric / log record."""
        for req in self.requests(signal):
            for res in getattr(req.message, per_resource):
                resource = _attrs(res.resource.attributes)
                for sc in getattr(res, per_scope):
                    for item in getattr(sc, field):
                        yield resource, sc.scope.name, item

    def spans(self) -> list[dict[str, Any]]:
        return [_span(*x) for x in self._items("traces", "resource_spans", "scope_spans", "spans")]

    def metrics(self) -> dict[str, list[dict[str, Any]]]:
        """Metric name -> data points: {type, unit, attributes, resource, scope, value | sum+count...}."""
        out: dict[str, list[dict[str, Any]]] = {}
        for resource, scope, m in self._items("metrics", "resource_metrics", "scope_metrics", "metrics"):
            out.setdefault(m.name, []).extend(_points(resource, scope, m))
        return out

    def metric_names(self) -> set[str]:
        return set(self.metrics())

    def logs(self) -> list[dict[str, Any]]:
        return [_log(*x) for x in self._items("logs", "resource_logs", "scope_logs", "log_records")]

    # -- waiting -----------------------------------------------------------------
    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        """Wait until predicate() is truthy and return its value; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (result := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"OTLP receiver: timed out after {timeout}s waiting for {what}")
                self._cond.wait(left)
            return result

    def wait_for_spans(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least n spans arrived; return all spans received so far."""
        self.wait_for(lambda: len(self.spans()) >= n, timeout, f"{n} spans")
        return self.spans()

    def wait_for_metrics(self, *names: str, timeout: float = 10.0) -> dict[str, list[dict[str, Any]]]:
        """Wait until every named metric (or, with no names, any metric) arrived; return metrics()."""

        def ready() -> Any:
            m = self.metrics()
            return m if m and all(n in m for n in names) else None

        return self.wait_for(ready, timeout, f"metrics {names or '(any)'}")
