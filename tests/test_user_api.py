"""attributes(), conversation(), task() and record_outcome() with the real SDK and openai client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import otel_tokenkpi
from otel_tokenkpi import semconv as sc


def chat_spans(telemetry: Any) -> list[Any]:
    return [s for s in telemetry.spans() if s.attributes.get(sc.OPERATION_NAME) == "chat"]


def ask(client: Any, text: str = "hi") -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}])


def test_nested_attribute_blocks_merge_and_the_inner_value_wins(telemetry, fake, openai_client):
    with otel_tokenkpi.attributes(team="search", feature="autocomplete"):
        with otel_tokenkpi.attributes({"feature": "ranking", "tags": ["a", "b"]}):
            ask(openai_client)
        ask(openai_client)
    ask(openai_client)
    inner, outer, outside = chat_spans(telemetry)
    assert (inner.attributes["team"], inner.attributes["feature"], inner.attributes["tags"]) == (
        "search",
        "ranking",
        ("a", "b"),
    )
    assert (outer.attributes["team"], outer.attributes["feature"]) == ("search", "autocomplete")
    assert "team" not in outside.attributes and "tags" not in outer.attributes


def test_attributes_as_a_decorator_apply_per_call(telemetry, fake, openai_client):
    @otel_tokenkpi.attributes(team="billing")
    def handler(text: str) -> str:
        return ask(openai_client, text).choices[0].message.content

    assert handler("one") == "ok"
    assert handler("two") == "ok"
    assert [s.attributes["team"] for s in chat_spans(telemetry)] == ["billing", "billing"]


def test_task_decorator_sync_and_async_roll_up_their_calls(telemetry, fake, openai_client, async_openai_client):
    @otel_tokenkpi.task("sync-job")
    def sync_job() -> int:
        ask(openai_client)
        ask(openai_client)
        return 7

    @otel_tokenkpi.task("async-job")
    async def async_job() -> int:
        await async_openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        return 8

    assert sync_job() == 7
    assert asyncio.run(async_job()) == 8
    tasks = {s.name: s for s in telemetry.spans() if s.kind == SpanKind.INTERNAL}
    assert tasks["invoke_workflow sync-job"].attributes[sc.TRACE_LLM_CALLS] == 2
    assert tasks["invoke_workflow sync-job"].attributes[sc.TRACE_INPUT_TOKENS] == 20
    assert tasks["invoke_workflow async-job"].attributes[sc.TRACE_LLM_CALLS] == 1
    assert tasks["invoke_workflow async-job"].attributes[sc.WORKFLOW_NAME] == "async-job"


def test_nested_tasks_each_roll_up_what_ran_inside_them(telemetry, fake, openai_client):
    with otel_tokenkpi.task("outer"):
        ask(openai_client)
        with otel_tokenkpi.task("inner"):
            ask(openai_client, "a")
            ask(openai_client, "b")
            otel_tokenkpi.record_outcome(True)
        otel_tokenkpi.record_outcome(False)
    tasks = {s.attributes[sc.AGENT_NAME]: s.attributes for s in telemetry.spans() if s.kind == SpanKind.INTERNAL}
    assert tasks["inner"][sc.TRACE_LLM_CALLS] == 2
    assert tasks["outer"][sc.TRACE_LLM_CALLS] == 3
    assert tasks["inner"][sc.OUTCOME] == "success"
    assert tasks["inner"][sc.TRACE_TOKENS_PER_SUCCESS] == 30.0
    assert tasks["outer"][sc.OUTCOME] == "failure"  # recorded on outer itself
    assert tasks["outer"][sc.TRACE_TOKENS_PER_SUCCESS] == 45.0  # one success (inner) in its scope


def test_a_task_that_raises_records_the_error_and_still_rolls_up(telemetry, fake, openai_client):
    with pytest.raises(KeyError), otel_tokenkpi.task("doomed"):
        ask(openai_client)
        raise KeyError("boom")
    (task_span,) = [s for s in telemetry.spans() if s.kind == SpanKind.INTERNAL]
    assert task_span.status.status_code == StatusCode.ERROR
    assert task_span.attributes[sc.ERROR_TYPE] == "KeyError"
    assert task_span.attributes[sc.TRACE_LLM_CALLS] == 1


def test_outcome_on_a_plain_root_span_reaches_its_roll_up_through_the_processor(telemetry, fake, openai_client):
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request"), otel_tokenkpi.attributes(team="support"):
        ask(openai_client)
        otel_tokenkpi.record_outcome(True, resolution="refund")
    root = [s for s in telemetry.spans() if s.name == "request"][0]
    assert root.attributes[sc.OUTCOME] == "success"
    assert root.attributes[sc.TRACE_TOKENS_PER_SUCCESS] == 15.0
    assert root.attributes["resolution"] == "refund"


def test_a_late_outcome_for_a_conversation_emits_a_linked_span_with_tokens_per_success(telemetry, fake, openai_client):
    with otel_tokenkpi.conversation("ticket-42"):
        ask(openai_client, "first")
        ask(openai_client, "second")
    last_call = chat_spans(telemetry)[-1]
    otel_tokenkpi.record_outcome(True, conversation_id="ticket-42", rating=5)
    (outcome,) = [s for s in telemetry.spans() if s.name == "record_outcome"]
    assert outcome.attributes[sc.OUTCOME] == "success"
    assert outcome.attributes[sc.CONVERSATION_ID] == "ticket-42"
    assert outcome.attributes[sc.TRACE_TOKENS_PER_SUCCESS] == 30.0
    assert outcome.attributes["rating"] == 5
    (link,) = outcome.links
    assert (link.context.trace_id, link.context.span_id) == (last_call.context.trace_id, last_call.context.span_id)


def test_a_late_failure_carries_no_tokens_per_success_even_after_a_success(telemetry, fake, openai_client):
    with otel_tokenkpi.conversation("ticket-43"):
        ask(openai_client, "first")
        otel_tokenkpi.record_outcome(True)  # the conversation already counts one success
        ask(openai_client, "second")
    otel_tokenkpi.record_outcome(False, conversation_id="ticket-43")
    otel_tokenkpi.record_outcome(True, conversation_id="ticket-43")
    failure, success = [s for s in telemetry.spans() if s.name == "record_outcome"]
    assert failure.attributes[sc.OUTCOME] == "failure"
    assert sc.TRACE_TOKENS_PER_SUCCESS not in failure.attributes
    assert success.attributes[sc.OUTCOME] == "success"
    assert success.attributes[sc.TRACE_TOKENS_PER_SUCCESS] == 15.0  # 30 tokens, two successes


def test_a_late_outcome_for_a_trace_links_to_it_after_the_trace_ended(telemetry, fake, openai_client):
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as root:
        ask(openai_client)
        ask(openai_client, "again")
    trace_id = root.get_span_context().trace_id
    otel_tokenkpi.record_outcome(False, trace_id=f"{trace_id:032x}")
    (outcome,) = [s for s in telemetry.spans() if s.name == "record_outcome"]
    assert outcome.attributes[sc.OUTCOME] == "failure"
    assert sc.TRACE_TOKENS_PER_SUCCESS not in outcome.attributes
    assert outcome.links[0].context.trace_id == trace_id


def test_an_unknown_conversation_still_gets_an_outcome_span(telemetry):
    otel_tokenkpi.record_outcome(True, conversation_id="never-seen")
    (outcome,) = [s for s in telemetry.spans() if s.name == "record_outcome"]
    assert outcome.attributes[sc.OUTCOME] == "success"
    assert outcome.links == ()


def test_outcomes_are_counted_in_a_metric(fake, openai_client, loaded_data):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_tokenkpi.kpi_metrics import KPIMetrics

    reader = InMemoryMetricReader()
    metrics = KPIMetrics(MeterProvider(metric_readers=[reader]))
    metrics.record_outcome(True, {})
    metrics.record_outcome(True, {})
    metrics.record_outcome(False, {})
    points = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    points[point.attributes[sc.OUTCOME]] = point.value
    assert points == {"success": 2, "failure": 1}


def test_trace_state_is_dropped_when_the_tasks_trace_ends(telemetry, fake, openai_client):
    from otel_tokenkpi.engine import ENGINE

    with otel_tokenkpi.task("short-lived"):
        ask(openai_client)
        ask(openai_client)  # the same request: trace-keyed state remembers the first
    (task_span,) = [s for s in telemetry.spans() if s.kind == SpanKind.INTERNAL]
    trace_id = task_span.context.trace_id
    assert [s.attributes[sc.WASTE_REPEATED_REQUEST_TOKENS] for s in chat_spans(telemetry)] == [0, 15]
    assert ("trace", trace_id) not in ENGINE.store
    assert not ENGINE.holds_trace(trace_id)
    assert ("finished", trace_id) in ENGINE.store  # what a late record_outcome(trace_id=...) needs
