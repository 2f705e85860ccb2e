"""How a finished call is recorded: span attributes and GenAI metrics.

One :class:`Recorder` per instrumentor holds the tracer, the meters and the
switch. The lifecycle (:mod:`otel_tokenkpi.lifecycle`) says *when*; this
module says *what* gets written. The engine is fed for every call, recording
or not, so metrics and state stay complete under head sampling.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode

from . import content
from . import semconv as sc
from ._safety import _Switch, run_hook
from .counting import ContextCounts
from .engine import ENGINE, Assessment
from .invocation import CallRequest, CallResult, FinishedCall, Usage
from .kpi_metrics import KPIMetrics, create_histogram


class Recorder:
    def __init__(
        self,
        scope: str,
        version: str,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        self.switch = _Switch()
        self.tracer = trace.get_tracer(scope, version, tracer_provider)
        meter = metrics.get_meter(scope, version, meter_provider)
        self.token_usage = create_histogram(
            meter, sc.METRIC_TOKEN_USAGE, "{token}", "Number of input and output tokens used", sc.TOKEN_USAGE_BUCKETS
        )
        self.duration = create_histogram(
            meter, sc.METRIC_OPERATION_DURATION, "s", "GenAI operation duration", sc.DURATION_BUCKETS
        )
        self.kpi_metrics = KPIMetrics(meter_provider)
        self.capture_content = content.capture_enabled()

    def prepare(self, request: CallRequest) -> Future[ContextCounts] | None:
        """At call start: lets the engine work while the request is in flight."""
        return ENGINE.prepare(request)

    def write_call(
        self,
        span: Span,
        record: FinishedCall,
        error: BaseException | None,
        prepared: Future[ContextCounts] | None = None,
    ) -> None:
        assessment: Assessment | None = run_hook("engine.assess", ENGINE.assess, record, prepared, self.kpi_metrics)
        if assessment is None:  # the engine failed (logged once): the span still gets what the adapter read
            assessment = Assessment({}, record.result.usage if record.result is not None else None)
        if span.is_recording():
            run_hook("recorder.span_attributes", self._write_span, span, record, assessment, error)
        run_hook("recorder.metrics", self._write_metrics, record, assessment.usage)

    def record_retry(self, span: Span, attempt: int, status_code: int | None, error_type: str | None) -> None:
        """A failed attempt the client library retries: an event at that moment, and the number of resends
        so far on the span (HTTP semconv's ``http.request.resend_count``; the failed attempt's own ordinal,
        0 for the original request, is the event's)."""
        if not span.is_recording():
            return
        attrs: dict[str, Any] = {sc.HTTP_REQUEST_RESEND_COUNT: attempt}
        if status_code is not None:
            attrs[sc.HTTP_RESPONSE_STATUS_CODE] = status_code
        if error_type:
            attrs[sc.ERROR_TYPE] = error_type
        span.add_event(sc.EVENT_RETRY, attrs)
        span.set_attribute(sc.HTTP_REQUEST_RESEND_COUNT, attempt + 1)

    def _write_span(self, span: Span, record: FinishedCall, assessment: Assessment, error: Any) -> None:
        attrs = _response_attributes(record.result, assessment.usage) if record.result is not None else {}
        attrs.update(assessment.attributes)
        if self.capture_content and record.request.operation != "embeddings":
            attrs.update(_content_attributes(record, _attribute_length_limit(span)))
        if record.error_type is not None:
            attrs[sc.ERROR_TYPE] = record.error_type
            span.set_status(Status(StatusCode.ERROR, status_description(error) if error is not None else None))
        span.set_attributes(attrs)

    def _write_metrics(self, record: FinishedCall, usage: Usage | None) -> None:
        attrs = call_identity_attributes(record.request)
        result = record.result
        if result is not None and result.response_model:
            attrs[sc.RESPONSE_MODEL] = result.response_model
        if record.error_type is not None:
            attrs[sc.ERROR_TYPE] = record.error_type
        self.duration.record(record.duration_s, attrs)
        if usage is None:
            return
        if usage.input_tokens is not None:
            self.token_usage.record(usage.input_tokens, {**attrs, sc.TOKEN_TYPE: "input"})
        if usage.output_tokens is not None:
            self.token_usage.record(usage.output_tokens, {**attrs, sc.TOKEN_TYPE: "output"})


def call_identity_attributes(request: CallRequest) -> dict[str, Any]:
    """Which call this is, in semconv terms: operation, provider, model and server. The span gets them at
    start (samplers read them) and the GenAI metrics carry them, so both say the same."""
    attrs: dict[str, Any] = {sc.OPERATION_NAME: request.operation, sc.PROVIDER_NAME: request.provider}
    if request.model:
        attrs[sc.REQUEST_MODEL] = request.model
    if request.server_address:
        attrs[sc.SERVER_ADDRESS] = request.server_address
    if request.server_port:
        attrs[sc.SERVER_PORT] = request.server_port
    return attrs


def _response_attributes(result: CallResult, usage: Usage | None) -> dict[str, Any]:
    """What the response says: id, model, finish reasons, output type, usage (the engine's: the
    provider's, or an estimate where it reported none) and the adapter's provider-specific facts."""
    attrs: dict[str, Any] = {}
    if result.response_id:
        attrs[sc.RESPONSE_ID] = result.response_id
    if result.response_model:
        attrs[sc.RESPONSE_MODEL] = result.response_model
    if result.finish_reasons:
        attrs[sc.RESPONSE_FINISH_REASONS] = result.finish_reasons
    if result.output_type:
        attrs[sc.OUTPUT_TYPE] = result.output_type
    attrs.update(result.provider_attributes)
    if usage is not None:
        for key, value in (
            (sc.USAGE_INPUT_TOKENS, usage.input_tokens),
            (sc.USAGE_OUTPUT_TOKENS, usage.output_tokens),
            (sc.USAGE_CACHE_READ_INPUT_TOKENS, usage.cache_read_tokens),
            (sc.USAGE_CACHE_WRITE_INPUT_TOKENS, usage.cache_write_tokens),
            (sc.USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning_tokens),
        ):
            if value is not None:
                attrs[key] = value
    return attrs


def _content_attributes(record: FinishedCall, limit: int | None) -> dict[str, Any]:
    """Opt-in content: input messages, system instructions and, for a completed call, output messages."""
    attrs: dict[str, Any] = {sc.INPUT_MESSAGES: content.input_messages_json(record.request, limit)}
    system = content.system_instructions_json(record.request, limit)
    if system:
        attrs[sc.SYSTEM_INSTRUCTIONS] = system
    result = record.result
    # A stream left early has no finish reason: its output is not a semconv output message.
    if result is not None and record.complete and result.outputs:
        attrs[sc.OUTPUT_MESSAGES] = content.output_messages_json(result, limit)
    return attrs


def _attribute_length_limit(span: Span) -> int | None:
    """The longest string value the SDK keeps on this span (``SpanLimits``, from
    ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`` / ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` by default); None
    when unlimited or not an SDK span."""
    limit = getattr(getattr(span, "_limits", None), "max_span_attribute_length", None)
    return limit if isinstance(limit, int) and limit > 0 else None


def status_description(error: BaseException) -> str:
    """A failed call's span status description: the exception's type and, where the client library
    exposes one, the HTTP status; never the message.

    Provider error messages echo what they were sent: some echo the API key of a 401, many echo prompt
    content ("Invalid value for messages[0].content: ..."), so no key and, with content capture off,
    no content may reach a span from them (tests/test_secrets.py)."""
    status = getattr(error, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(error, "response", None), "status_code", None)
    if not isinstance(status, int):  # botocore's ClientError: response is a dict
        response = getattr(error, "response", None)
        metadata = response.get("ResponseMetadata") if isinstance(response, dict) else None
        status = metadata.get("HTTPStatusCode") if isinstance(metadata, dict) else None
    name = type(error).__qualname__
    return f"{name} (HTTP {status})" if isinstance(status, int) else name
