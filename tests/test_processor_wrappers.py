"""One GenAI span per model call: a foreign model-call span that WRAPS ours (pydantic-ai's ``chat``
span, OpenLLMetry instrumented after ours) is dropped, and ours takes its place in the tree, so a
``gen_ai.usage.*`` sum over the exported model-call spans counts the call once. Both instrumentation
orders: the other instrumentation outside ours (here) and inside ours (test_processor_foreign.py).
tests/frameworks/ runs the same with the real pydantic-ai and OpenLLMetry."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Telemetry
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from test_processor_foreign import Pipeline

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.foreign import is_model_call_span
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing.fake_openai import Reply

THEIRS = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 10,
    "gen_ai.usage.output_tokens": 5,
}
ASK = [{"role": "user", "content": "hi"}]


def usage_sum(spans: list[ReadableSpan], key: str = "gen_ai.usage.input_tokens") -> int:
    """What a backend query sums: gen_ai.usage.* over every exported model-call span."""
    return sum(int(s.attributes.get(key, 0)) for s in spans if is_model_call_span(s.attributes or {}))


def wrap_create(client: Any, tracer: Any, attributes: dict[str, Any] = THEIRS) -> None:
    """Another instrumentation applied after ours: its span opens around our wrapped ``create``."""
    create = client.chat.completions.create

    def instrumented_create(*args: Any, **kwargs: Any) -> Any:
        with tracer.start_as_current_span("chat gpt-4o (theirs)", kind=SpanKind.CLIENT, attributes=attributes):
            return create(*args, **kwargs)

    client.chat.completions.create = instrumented_create


def by_name(telemetry: Telemetry) -> dict[str, ReadableSpan]:
    return {s.name: s for s in telemetry.spans()}


def test_a_wrapping_foreign_span_is_dropped_and_ours_takes_its_place(telemetry, fake, openai_client):
    fake.enqueue(Reply(prompt_tokens=10, completion_tokens=5))
    other = telemetry.tracer_provider.get_tracer("some.framework")
    wrap_create(openai_client, other)
    with other.start_as_current_span("invoke_agent agent") as agent:
        openai_client.chat.completions.create(model="gpt-4o", messages=ASK)
    spans = by_name(telemetry)
    assert sorted(spans) == ["chat gpt-4o", "invoke_agent agent"]
    ours = spans["chat gpt-4o"]
    assert ours.parent is not None and ours.parent.span_id == agent.get_span_context().span_id
    assert ours.attributes[sc.WASTE_TOKENS] == 0
    assert usage_sum(telemetry.spans()) == 10 and usage_sum(telemetry.spans(), "gen_ai.usage.output_tokens") == 5
    assert spans["invoke_agent agent"].attributes[sc.TRACE_LLM_CALLS] == 1
    assert spans["invoke_agent agent"].attributes[sc.TRACE_INPUT_TOKENS] == 10


def test_with_keep_nested_genai_spans_the_wrapper_is_forwarded_unchanged_and_not_counted(loaded_data, fake):
    import openai

    pipeline = Pipeline(keep_nested_genai_spans=True)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.provider)
    try:
        client = openai.OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0)
        wrap_create(client, pipeline.tracer)
        with pipeline.tracer.start_as_current_span("agent"):
            client.chat.completions.create(model="gpt-4o", messages=ASK)
    finally:
        instrumentor.uninstrument()
    spans = pipeline.spans()
    assert dict(spans["chat gpt-4o (theirs)"].attributes) == THEIRS
    assert spans["chat gpt-4o"].parent.span_id == spans["chat gpt-4o (theirs)"].context.span_id
    assert spans["agent"].attributes[sc.TRACE_LLM_CALLS] == 1


def test_a_wrapper_that_is_the_local_root_leaves_ours_as_the_root_with_the_roll_ups(telemetry, fake, openai_client):
    fake.enqueue(Reply(prompt_tokens=10, completion_tokens=5))
    wrap_create(openai_client, telemetry.tracer_provider.get_tracer("opentelemetry.instrumentation.openai.v1"))
    openai_client.chat.completions.create(model="gpt-4o", messages=ASK)
    (ours,) = telemetry.spans()
    assert ours.name == "chat gpt-4o" and ours.parent is None
    assert ours.attributes[sc.TRACE_LLM_CALLS] == 1
    assert ours.attributes[sc.TRACE_INPUT_TOKENS] == 10
    assert usage_sum([ours]) == 10


def test_a_stream_read_after_its_root_wrapper_ended_still_gets_the_roll_ups(telemetry, fake, openai_client):
    fake.enqueue(Reply(text="one two three", prompt_tokens=10, completion_tokens=3))
    other = telemetry.tracer_provider.get_tracer("some.framework")
    with other.start_as_current_span("chat gpt-4o (theirs)", kind=SpanKind.CLIENT, attributes=THEIRS):
        stream = openai_client.chat.completions.create(
            model="gpt-4o", messages=ASK, stream=True, stream_options={"include_usage": True}
        )
    assert telemetry.spans() == []  # theirs ended and was dropped; ours is still streaming
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "one two three"
    (ours,) = telemetry.spans()
    assert ours.parent is None
    assert ours.attributes[sc.TRACE_LLM_CALLS] == 1
    assert ours.attributes["gen_ai.usage.output_tokens"] == 3


def test_other_spans_ending_under_a_dropped_wrapper_are_reparented(telemetry, fake, openai_client):
    other = telemetry.tracer_provider.get_tracer("some.framework")
    with (
        other.start_as_current_span("invoke_agent agent") as agent,
        other.start_as_current_span("chat gpt-4o (theirs)", kind=SpanKind.CLIENT, attributes=THEIRS),
    ):
        openai_client.chat.completions.create(model="gpt-4o", messages=ASK)
        other.start_span("parse response").end()
    spans = by_name(telemetry)
    assert "chat gpt-4o (theirs)" not in spans
    agent_id = agent.get_span_context().span_id
    assert spans["parse response"].parent.span_id == agent_id
    assert spans["chat gpt-4o"].parent.span_id == agent_id


@pytest.mark.parametrize("order", ["theirs outside ours", "theirs inside ours"])
def test_each_call_is_counted_once_whichever_order_the_instrumentations_were_applied(
    telemetry, fake, openai_client, order
):
    fake.enqueue(Reply(prompt_tokens=10, completion_tokens=5), Reply(prompt_tokens=20, completion_tokens=7))
    other = telemetry.tracer_provider.get_tracer("another.instrumentation")
    if order == "theirs outside ours":
        wrap_create(openai_client, other)
    else:
        post = openai_client.post

        def instrumented_post(*args: Any, **kwargs: Any) -> Any:
            with other.start_as_current_span("chat gpt-4o (theirs)", kind=SpanKind.CLIENT, attributes=THEIRS):
                return post(*args, **kwargs)

        openai_client.post = instrumented_post
    with other.start_as_current_span("run"):
        openai_client.chat.completions.create(model="gpt-4o", messages=ASK)
        openai_client.chat.completions.create(model="gpt-4o", messages=ASK + [{"role": "user", "content": "more"}])
    spans = telemetry.spans()
    assert sorted(s.name for s in spans if is_model_call_span(s.attributes or {})) == ["chat gpt-4o"] * 2
    assert usage_sum(spans) == 30
    assert usage_sum(spans, "gen_ai.usage.output_tokens") == 12
    (run,) = [s for s in spans if s.name == "run"]
    assert run.attributes[sc.TRACE_LLM_CALLS] == 2


def test_a_call_held_for_a_root_wrapper_that_never_ends_is_exported_at_shutdown(loaded_data, fake):
    import openai

    pipeline = Pipeline()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.provider)
    try:
        client = openai.OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0)
        wrapper = pipeline.tracer.start_span("chat gpt-4o (theirs)", attributes=THEIRS)
        with trace.use_span(wrapper):
            client.chat.completions.create(model="gpt-4o", messages=ASK)
    finally:
        instrumentor.uninstrument()
    assert pipeline.exporter.get_finished_spans() == ()  # held until the root wrapper ends
    pipeline.provider.shutdown()
    (ours,) = pipeline.exporter.get_finished_spans()
    assert ours.name == "chat gpt-4o" and ours.parent is None
    assert ours.attributes["gen_ai.usage.input_tokens"] == 10
