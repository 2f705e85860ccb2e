"""The waste engine end to end: scripted agent conversations through the real
openai SDK against the fake server, with planted waste and exact numbers.

Usage numbers come from the fake server's script; local counts from the
o200k_base encoding (gpt-4o), computed here from the same texts.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import openai
import pytest
import tiktoken
from _planted_waste import ARGS, ARGS_REORDERED, ASK, BIG, RESULT_1, RESULT_2, SYSTEM
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import otel_tokenkpi
from otel_tokenkpi import semconv as sc
from otel_tokenkpi.instrumentors._shapes import compact_json
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.invocation import ToolDefinition
from otel_tokenkpi.testing.fake_openai import Reply, ToolCall
from otel_tokenkpi.tool_tokens import ToolDefinitionTokens, count_request_tools

O200K = tiktoken.get_encoding("o200k_base")


def n(text: str) -> int:
    return len(O200K.encode_ordinary(text))


def cacheable(resent: int) -> int:
    """What gpt-4o's prompt cache could serve of a re-sent prefix (platform.openai.com prompt-caching guide):
    nothing below 1,024 tokens, then 1,024 plus whole 128-token steps."""
    return 0 if resent < 1024 else 1024 + (resent - 1024) // 128 * 128


def tool(name: str, description: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties or {"city": {"type": "string"}}}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


def billed_tools(definitions: list[dict[str, Any]], system: str | None, api: str | None = None) -> ToolDefinitionTokens:
    """What OpenAI bills for these tools in one gpt-4o request (docs/tool-token-counting.md; checked on billed
    requests in test_tool_tokens.py): per tool its rendered function (``per_tool``, what the unused-definitions
    roll-up sums); for the request (``total``) those plus the ``namespace functions`` framing. Called inside
    tests, once the encodings are loaded, so the count is exact."""
    functions = [d["function"] for d in definitions]
    tools = [ToolDefinition(f["name"], f["description"], compact_json(f["parameters"])) for f in functions]
    counted = count_request_tools(tools, "openai", "gpt-4o", system_text=system, api=api)
    assert counted.exact
    return counted


def tool_tokens(definition: dict[str, Any]) -> int:
    """One tool's own tokens (its rendered function), whatever else the request holds."""
    return billed_tools([definition], None).per_tool[0]


WEATHER = tool("get_weather", "Current weather for a city.")
CLOCK = tool("get_time", "Local time in a city.")
TOOLS = [WEATHER, CLOCK]


def tool_defs() -> int:
    """TOOLS in a request that starts with SYSTEM: both rendered functions and the namespace framing."""
    return billed_tools(TOOLS, SYSTEM).total


WASTE_KEYS = (
    sc.WASTE_FAILED_CALL_TOKENS,
    sc.WASTE_REPEATED_REQUEST_TOKENS,
    sc.WASTE_TRUNCATED_OUTPUT_TOKENS,
    sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS,
    sc.WASTE_UNCACHED_RESENT_TOKENS,
)


def waste(span: Any) -> dict[str, Any]:
    return {key.rsplit(".", 1)[1]: span.attributes[key] for key in WASTE_KEYS if key in span.attributes}


def model_spans(telemetry: Any) -> list[Any]:
    return [s for s in telemetry.spans() if s.attributes.get(sc.OPERATION_NAME) == "chat"]


def tool_message(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def run_planted_waste_conversation(client: Any, fake: Any) -> dict[str, int]:
    """Six calls: clean, duplicate tool call (reordered keys), its result sent back and a
    truncated answer, the same request repeated, a failed call, and its retry.
    Returns the scripted input sizes."""
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    sizes: dict[str, int] = {}

    sizes["p1"] = n(SYSTEM) + n(ASK) + tool_defs() + 20
    fake.enqueue(Reply(text=None, tool_calls=[ToolCall("get_weather", ARGS, "c1")], prompt_tokens=sizes["p1"]))
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    messages += [first.choices[0].message, tool_message("c1", RESULT_1)]

    sizes["p2"] = sizes["p1"] + n("get_weather") + n(ARGS) + n(RESULT_1) + 20
    fake.enqueue(
        Reply(
            text=None,
            tool_calls=[ToolCall("get_weather", ARGS_REORDERED, "c2")],
            prompt_tokens=sizes["p2"],
            completion_tokens=30,
        )
    )
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    messages += [second.choices[0].message, tool_message("c2", RESULT_2)]

    sizes["p3"] = sizes["p2"] + n("get_weather") + n(ARGS_REORDERED) + n(RESULT_2) + 20
    truncated = Reply(text="It is 21 C and clear in", finish_reason="length", completion_tokens=8)
    truncated.prompt_tokens, truncated.cached_tokens = sizes["p3"], CACHED
    fake.enqueue(truncated, truncated)
    client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS, max_tokens=8)
    again = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS, max_tokens=8)

    messages += [again.choices[0].message, {"role": "user", "content": "Just the temperature, please."}]
    fake.enqueue(Reply(status=500), Reply(text="21 C.", prompt_tokens=sizes["p3"] + 30, completion_tokens=4))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)  # the retry
    return sizes


CACHED = 1024  # the provider served the first 1,024 re-sent tokens of calls 3 and 4 from its cache


def expected_planted_waste(sizes: dict[str, int], stateful: bool) -> list[dict[str, int]]:
    """Re-sent context counts as waste as far as gpt-4o's cache could have served it (SYSTEM is long enough
    to pass its 1,024-token minimum), less what the cache did serve."""
    repeated = {"repeated_request_tokens": 0} if stateful else {}
    resent_2 = n(SYSTEM) + n(ASK) + tool_defs() + n("get_weather") + n(ARGS)
    resent_3 = resent_2 + n(RESULT_1) + n("get_weather") + n(ARGS_REORDERED)
    resent_6 = resent_3 + n(RESULT_2) + n("It is 21 C and clear in")  # only the last ask is new
    assert resent_2 >= 1024  # the rule applies: the prefix is cacheable
    calm = {"failed_call_tokens": 0, **repeated, "truncated_output_tokens": 0, "duplicate_tool_call_tokens": 0}
    return [
        {**calm, "uncached_resent_tokens": 0},
        {
            **calm,
            "duplicate_tool_call_tokens": n("get_weather") + n(ARGS_REORDERED),
            "uncached_resent_tokens": cacheable(resent_2),
        },
        {
            **calm,
            "truncated_output_tokens": 8,
            "duplicate_tool_call_tokens": n(RESULT_2),  # the duplicate's result, sent back for the first time
            "uncached_resent_tokens": cacheable(resent_3) - CACHED,
        },
        (
            {**calm, "repeated_request_tokens": sizes["p3"] + 8, "uncached_resent_tokens": 0}
            if stateful
            else {
                **calm,
                "truncated_output_tokens": 8,
                "duplicate_tool_call_tokens": n(RESULT_2),
                "uncached_resent_tokens": cacheable(resent_3) - CACHED,
            }
        ),
        {"failed_call_tokens": 0},
        {**calm, "uncached_resent_tokens": cacheable(resent_6)},
    ]


def test_planted_waste_in_a_task_is_flagged_on_the_right_calls_with_exact_numbers(telemetry, fake, openai_client):
    with otel_tokenkpi.task("trip"):
        sizes = run_planted_waste_conversation(openai_client, fake)
    spans = model_spans(telemetry)
    assert len(spans) == 6
    expected = expected_planted_waste(sizes, stateful=True)
    assert [waste(s) for s in spans] == expected
    assert spans[1].attributes[sc.TOOL_CALLS_DUPLICATE_COUNT] == 1
    assert spans[0].attributes[sc.CONTEXT_NEW_TOKENS] == n(SYSTEM) + n(ASK) + tool_defs()
    assert spans[0].attributes[sc.CONTEXT_RESENT_TOKENS] == 0
    assert spans[1].attributes[sc.CONTEXT_NEW_TOKENS] == n(RESULT_1)
    # Each bill is the content plus 20 tokens of framing per turn: the breakdown adds up to it.
    assert [spans[i].attributes[sc.CONTEXT_UNATTRIBUTED_TOKENS] for i in (0, 1)] == [20, 40]
    assert spans[4].attributes[sc.ERROR_TYPE] == "InternalServerError"
    assert sc.WASTE_RATIO not in spans[4].attributes  # nothing billed: no ratio
    for span in spans:
        kinds = waste(span)
        assert span.attributes[sc.WASTE_TOKENS] == sum(kinds.values())
    assert spans[3].attributes[sc.WASTE_RATIO] == 1.0

    (task_span,) = [s for s in telemetry.spans() if s.name == "invoke_workflow trip"]
    rollup = task_span.attributes
    billed_in = sizes["p1"] + sizes["p2"] + 2 * sizes["p3"] + sizes["p3"] + 30
    assert rollup[sc.TRACE_LLM_CALLS] == 6
    assert rollup[sc.TRACE_INPUT_TOKENS] == billed_in
    assert rollup[sc.TRACE_OUTPUT_TOKENS] == 5 + 30 + 8 + 8 + 4
    assert rollup[sc.TRACE_CACHE_READ_TOKENS] == 2 * CACHED
    assert rollup[sc.TRACE_WASTE_TOKENS] == sum(s.attributes[sc.WASTE_TOKENS] for s in spans)
    assert rollup[sc.TRACE_WASTE_RATIO] == rollup[sc.TRACE_WASTE_TOKENS] / (billed_in + 55)
    assert rollup[sc.TRACE_TOOL_CALLS] == 2
    assert rollup[sc.TRACE_DUPLICATE_TOOL_CALLS] == 1
    assert rollup[sc.TRACE_MAX_TOOL_FANOUT] == 1
    # get_time was offered on all six calls and never used; get_weather was used.
    assert rollup[sc.TRACE_WASTE_UNUSED_TOOL_DEFINITIONS_TOKENS] == 6 * tool_tokens(CLOCK)
    assert rollup[sc.TRACE_COST_USD] == pytest.approx(
        sum(s.attributes[sc.COST_USD] for s in spans if sc.COST_USD in s.attributes)
    )
    assert rollup[sc.OPERATION_NAME] == "invoke_workflow"
    assert rollup[sc.AGENT_NAME] == "trip"
    assert all(s.parent.span_id == task_span.context.span_id for s in spans)


def test_a_plain_agent_loop_without_a_parent_span_still_gets_the_stateless_rules(telemetry, fake, openai_client):
    sizes = run_planted_waste_conversation(openai_client, fake)
    spans = model_spans(telemetry)
    assert {s.context.trace_id for s in spans}.__len__() == 6  # every call its own trace
    # No conversation state without a conversation or a shared trace: the repeated request is not
    # known (absent, not zero); everything the request itself shows is there.
    assert [waste(s) for s in spans] == expected_planted_waste(sizes, stateful=False)
    for span in spans:  # each call is its trace's local root: it carries its own roll-up
        assert span.attributes[sc.TRACE_LLM_CALLS] == 1
        assert span.attributes[sc.TRACE_WASTE_TOKENS] == span.attributes[sc.WASTE_TOKENS]


@pytest.mark.parametrize("remembered", [True, False])
def test_a_duplicate_result_is_charged_once_even_when_the_agent_drops_the_answer_that_followed_it(
    telemetry, fake, openai_client, remembered
):
    """The agent drops a cut-off answer and asks again: the duplicate's result is again the last
    thing before the new ask, but only the call that FIRST sent it back is charged for it. Without
    a conversation (no memory) the request alone cannot tell, and the result is charged again."""
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    fake.enqueue(
        # Billed sizes large enough that no cap hides a kind.
        Reply(text=None, tool_calls=[ToolCall("get_weather", ARGS, "c1")], prompt_tokens=BIG),
        Reply(
            text=None,
            tool_calls=[ToolCall("get_weather", ARGS_REORDERED, "c2")],
            prompt_tokens=BIG,
            completion_tokens=40,
        ),
        Reply(text="It is 21 C and", finish_reason="length", prompt_tokens=BIG, completion_tokens=4),
        Reply(text="It is 21 C and clear.", prompt_tokens=BIG, completion_tokens=7),
    )
    with otel_tokenkpi.conversation("trip-1") if remembered else contextlib.nullcontext():
        for call_id, result in (("c1", RESULT_1), ("c2", RESULT_2)):
            reply = openai_client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
            messages += [reply.choices[0].message, tool_message(call_id, result)]
        openai_client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS, max_tokens=4)
        messages.append({"role": "user", "content": "Please answer in full."})  # the cut answer is not kept
        openai_client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    charged = [waste(span)["duplicate_tool_call_tokens"] for span in model_spans(telemetry)]
    again = 0 if remembered else n(RESULT_2)
    assert charged == [0, n("get_weather") + n(ARGS_REORDERED), n(RESULT_2), again]


def test_a_clean_conversation_has_every_waste_attribute_at_zero(telemetry, fake, openai_client):
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    resent = n(SYSTEM) + n(ASK) + tool_defs() + n("get_weather") + n(ARGS)
    first_bill = n(SYSTEM) + n(ASK) + tool_defs() + 20
    fake.enqueue(Reply(text=None, tool_calls=[ToolCall("get_weather", ARGS, "c1")], prompt_tokens=first_bill))
    with otel_tokenkpi.conversation("clean-1"):
        first = openai_client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
        messages += [first.choices[0].message, tool_message("c1", RESULT_1)]
        # The provider served all it could of the re-sent prefix from its cache (whole 128-token steps).
        fake.enqueue(
            Reply(
                text="21 C and clear.",
                prompt_tokens=resent + n(RESULT_1) + 20,
                cached_tokens=cacheable(resent),
                completion_tokens=6,
            )
        )
        openai_client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    spans = model_spans(telemetry)
    zero = dict.fromkeys(
        [
            "failed_call_tokens",
            "repeated_request_tokens",
            "truncated_output_tokens",
            "duplicate_tool_call_tokens",
            "uncached_resent_tokens",
        ],
        0,
    )
    assert [waste(s) for s in spans] == [zero, zero]
    assert [s.attributes[sc.WASTE_TOKENS] for s in spans] == [0, 0]
    assert [s.attributes[sc.WASTE_RATIO] for s in spans] == [0.0, 0.0]
    assert [s.attributes[sc.CONVERSATION_ID] for s in spans] == ["clean-1", "clean-1"]
    assert spans[1].attributes[sc.CONTEXT_RESENT_TOKENS] == resent
    assert spans[1].attributes[sc.CONTEXT_UNATTRIBUTED_TOKENS] == 20


def test_twelve_tools_offered_two_used_and_a_fan_out_of_three(telemetry, fake, openai_client):
    tools = [tool(f"tool_{i}", f"Tool number {i} does thing {i}.") for i in range(12)]
    fan_out = [ToolCall("tool_0", '{"city": "A"}'), ToolCall("tool_0", '{"city": "B"}'), ToolCall("tool_1", "{}")]
    fake.enqueue(Reply(text=None, tool_calls=fan_out), Reply(text="done"))
    with otel_tokenkpi.task("fan-out"):
        first = openai_client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "go"}], tools=tools
        )
        history: list[Any] = [{"role": "user", "content": "go"}, first.choices[0].message]
        history += [tool_message(call.id, "ok") for call in first.choices[0].message.tool_calls]
        openai_client.chat.completions.create(model="gpt-4o", messages=history, tools=tools)
    spans = model_spans(telemetry)
    assert [s.attributes[sc.TOOL_CALLS_COUNT] for s in spans] == [3, 0]
    assert [s.attributes[sc.TOOLS_DEFINED_COUNT] for s in spans] == [12, 12]
    assert [s.attributes[sc.TOOL_CALLS_DUPLICATE_COUNT] for s in spans] == [0, 0]
    (task_span,) = [s for s in telemetry.spans() if s.name == "invoke_workflow fan-out"]
    unused = sum(tool_tokens(t) for t in tools[2:])
    assert task_span.attributes[sc.TRACE_WASTE_UNUSED_TOOL_DEFINITIONS_TOKENS] == 2 * unused
    assert task_span.attributes[sc.TRACE_MAX_TOOL_FANOUT] == 3
    assert task_span.attributes[sc.TRACE_TOOL_CALLS] == 3
    # Unused definitions are reported beside the waste total, not added into it.
    assert task_span.attributes[sc.TRACE_WASTE_TOKENS] == sum(s.attributes[sc.WASTE_TOKENS] for s in spans)


def test_two_interleaved_conversations_in_one_trace_keep_separate_state(telemetry, fake, openai_client):
    tracer = telemetry.tracer_provider.get_tracer("app")
    same = [{"role": "user", "content": "Plan a day in Rome."}]
    with tracer.start_as_current_span("handle_request") as root:
        for conversation_id in ("a", "b", "a", "b", "a"):
            with otel_tokenkpi.conversation(conversation_id):
                openai_client.chat.completions.create(model="gpt-4o", messages=same)
    spans = model_spans(telemetry)
    assert [s.attributes[sc.CONVERSATION_ID] for s in spans] == ["a", "b", "a", "b", "a"]
    # The default reply bills 10 + 5 tokens; the first request of each conversation is not a repeat.
    assert [s.attributes[sc.WASTE_REPEATED_REQUEST_TOKENS] for s in spans] == [0, 0, 15, 15, 15]
    (root_span,) = [s for s in telemetry.spans() if s.context.span_id == root.get_span_context().span_id]
    assert root_span.attributes[sc.TRACE_LLM_CALLS] == 5
    assert root_span.attributes[sc.TRACE_WASTE_TOKENS] == 45
    assert root_span.attributes[sc.TRACE_INPUT_TOKENS] == 50


def test_the_same_request_in_a_shared_trace_without_conversation_ids_is_repeated(telemetry, fake, openai_client):
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle_request"):
        for _ in range(2):
            openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    spans = model_spans(telemetry)
    assert [s.attributes[sc.WASTE_REPEATED_REQUEST_TOKENS] for s in spans] == [0, 15]
    assert all(sc.CONVERSATION_ID not in s.attributes for s in spans)  # never a trace id as conversation id


async def test_two_hundred_concurrent_conversations_do_not_bleed(telemetry, fake, async_openai_client):
    async def converse(index: int) -> None:
        with otel_tokenkpi.attributes(conversation_index=index), otel_tokenkpi.conversation(f"c{index}"):
            async with otel_tokenkpi.task(f"conv-{index}"):
                first = [{"role": "user", "content": f"Question number {index}"}]
                await async_openai_client.chat.completions.create(model="gpt-4o", messages=first)
                await asyncio.sleep(0)
                second = first if index % 2 else [{"role": "user", "content": f"Other question {index}"}]
                await async_openai_client.chat.completions.create(model="gpt-4o", messages=second)
                otel_tokenkpi.record_outcome(index % 3 == 0)

    await asyncio.gather(*(converse(i) for i in range(200)))
    spans = telemetry.spans()
    calls = [s for s in spans if s.attributes.get(sc.OPERATION_NAME) == "chat"]
    tasks = {s.attributes[sc.AGENT_NAME]: s for s in spans if s.attributes.get(sc.OPERATION_NAME) == "invoke_workflow"}
    assert len(calls) == 400 and len(tasks) == 200
    by_task = {s.context.span_id: name for name, s in tasks.items()}
    for call in calls:
        index = call.attributes["conversation_index"]
        assert by_task[call.parent.span_id] == f"conv-{index}"
        assert call.attributes[sc.CONVERSATION_ID] == f"c{index}"
    for name, task_span in tasks.items():
        index = int(name.split("-")[1])
        attrs = task_span.attributes
        assert attrs["conversation_index"] == index
        assert attrs[sc.TRACE_LLM_CALLS] == 2
        assert attrs[sc.TRACE_WASTE_TOKENS] == (15 if index % 2 else 0)
        assert attrs[sc.OUTCOME] == ("success" if index % 3 == 0 else "failure")
        if index % 3 == 0:
            assert attrs[sc.TRACE_TOKENS_PER_SUCCESS] == 30.0
        else:
            assert sc.TRACE_TOKENS_PER_SUCCESS not in attrs


def test_a_sampler_that_drops_every_span_still_counts_every_call_in_the_waste_metrics(fake, openai_client, loaded_data):
    reader = InMemoryMetricReader()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        with otel_tokenkpi.conversation("sampled-out"):
            for _ in range(3):
                openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            fake.enqueue(Reply(text="cut", finish_reason="length", prompt_tokens=7, completion_tokens=9))
            openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "more"}])
    finally:
        instrumentor.uninstrument()
    by_kind = {}
    costs = utilization = 0
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    if metric.name == sc.METRIC_WASTE_TOKENS:
                        by_kind[point.attributes[sc.WASTE_KIND]] = point.value
                        assert point.attributes[sc.PROVIDER_NAME] == "openai"
                        assert point.attributes[sc.REQUEST_MODEL] == "gpt-4o"
                    elif metric.name == sc.METRIC_COST_USD:
                        costs += 1
                    elif metric.name == sc.METRIC_CONTEXT_UTILIZATION:
                        utilization += point.count
    assert by_kind == {"repeated_request": 30, "truncated_output": 9}
    assert costs == 1 and utilization == 4


def test_waste_metrics_carry_user_attributes_only_when_opted_in(telemetry, fake, openai_client):
    from otel_tokenkpi.engine import ENGINE

    fake.enqueue(Reply(text="cut", finish_reason="length"), Reply(text="cut", finish_reason="length"))
    with otel_tokenkpi.attributes(team="search"):
        openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a"}])
        ENGINE.configure(metric_user_attributes={"team"})
        try:
            openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "b"}])
        finally:
            ENGINE.configure(metric_user_attributes=False)
    points = telemetry.metric_points(sc.METRIC_WASTE_TOKENS)
    assert sorted((p.attributes.get("team", ""), p.value) for p in points) == [("", 5), ("search", 5)]
    assert all(s.attributes["team"] == "search" for s in model_spans(telemetry))


def test_exempt_tools_are_not_flagged_as_duplicates(telemetry, fake, openai_client):
    from otel_tokenkpi.engine import ENGINE

    poll = tool("poll_job", "Status of a job.")
    history: list[Any] = [{"role": "user", "content": "wait for job 7"}]
    ENGINE.configure(exempt_tools=["poll_job"])
    try:
        for index in range(3):
            fake.enqueue(Reply(text=None, tool_calls=[ToolCall("poll_job", '{"city": "7"}', f"p{index}")]))
            reply = openai_client.chat.completions.create(model="gpt-4o", messages=history, tools=[poll])
            history += [reply.choices[0].message, tool_message(f"p{index}", "pending")]
    finally:
        ENGINE.configure(exempt_tools=())
    assert [s.attributes[sc.TOOL_CALLS_DUPLICATE_COUNT] for s in model_spans(telemetry)] == [0, 0, 0]


def test_streams_get_the_same_waste_attributes_as_plain_calls(telemetry, fake, openai_client):
    fake.enqueue(Reply(text="It was cut", finish_reason="length", completion_tokens=3))
    stream = openai_client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "It was cut"
    (span,) = model_spans(telemetry)
    assert waste(span) == {
        "failed_call_tokens": 0,
        "truncated_output_tokens": 3,
        "duplicate_tool_call_tokens": 0,
        "uncached_resent_tokens": 0,
    }


def test_server_held_history_counts_as_resent_and_its_tool_calls_as_history(telemetry, fake, openai_client):
    fake.enqueue(Reply(text=None, tool_calls=[ToolCall("get_weather", ARGS, "c1")], prompt_tokens=40))
    with otel_tokenkpi.conversation("responses-1"):
        first = openai_client.responses.create(model="gpt-4o", input="Weather in Paris?", tools=[_response_tool()])
        fake.enqueue(
            Reply(
                text=None,
                tool_calls=[ToolCall("get_weather", ARGS_REORDERED, "c2")],
                prompt_tokens=90,
                completion_tokens=20,
            )
        )
        follow_up = [{"type": "function_call_output", "call_id": "c1", "output": RESULT_1}]
        openai_client.responses.create(
            model="gpt-4o", input=follow_up, previous_response_id=first.id, tools=[_response_tool()]
        )
    spans = model_spans(telemetry)
    second = spans[1].attributes
    definitions = billed_tools([WEATHER], None, api="responses").total
    local = n(RESULT_1) + definitions
    assert second[sc.CONTEXT_NEW_TOKENS] == n(RESULT_1)
    # The definitions were seen before; the server added 90 - local tokens of history.
    assert second[sc.CONTEXT_RESENT_TOKENS] == definitions + (90 - local)
    assert second[sc.TOOL_CALLS_DUPLICATE_COUNT] == 1
    assert second[sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS] == n("get_weather") + n(ARGS_REORDERED)


def _response_tool() -> dict[str, Any]:
    function = WEATHER["function"]
    return {"type": "function", **function}


def test_nothing_in_the_user_api_breaks_on_bad_input():
    with pytest.raises(TypeError, match="'team'"):
        otel_tokenkpi.attributes(team={"nested": "dict"})
    with pytest.raises(TypeError, match="'mixed'"):
        otel_tokenkpi.attributes({"mixed": [1, "a"]})
    with pytest.raises(TypeError, match="'obj'"):
        otel_tokenkpi.record_outcome(True, obj=object())
    with pytest.raises(TypeError):
        otel_tokenkpi.record_outcome("yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        otel_tokenkpi.conversation("")
    with pytest.raises(TypeError):
        otel_tokenkpi.task(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        otel_tokenkpi.record_outcome(True, trace_id="not-hex")
    from otel_tokenkpi.surroundings import USER_ATTRIBUTES

    with otel_tokenkpi.attributes(ok=(1, 2, 3)):  # the API still works after the errors above
        assert USER_ATTRIBUTES.get() == {"ok": [1, 2, 3]}
    assert USER_ATTRIBUTES.get() == {}


def test_current_span_is_untouched_by_blocks():
    before = trace.get_current_span()
    with otel_tokenkpi.attributes(a=1), otel_tokenkpi.conversation("x"):
        assert trace.get_current_span() is before
