"""1,000 concurrent asyncio tasks and 8 threads at once: every span has the right parent and no
conversation state bleeds across traces.

Each unit of work (an asyncio task or a thread's turn) opens its own parent, either ``otel_tokenkpi.task()``
or a plain span with ``otel_tokenkpi.conversation()``, tags its calls with ``otel_tokenkpi.attributes()``,
and makes two calls following one of two scripts:

* clean: two single-turn requests, the SAME two requests in every clean unit. Nothing is waste; if state
  leaked between traces (or conversations), the second clean unit to send a request would see it as a
  repeated request.
* dirty: the same request twice, whose history already holds the tool call the reply makes again: call 1
  has a duplicate tool call, call 2 is also a repeated request.

The expected ``tokenkpi.*`` attributes of each script are measured first, one unit at a time; under
concurrency every model span must carry exactly its own script's values, its own unit's user attribute,
and its own unit's span as parent. The async client's pool is capped at 32 connections, so all 1,000
tasks are in flight at once (most waiting for a connection) with their spans open.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from _telemetry import Telemetry
from opentelemetry import trace

import otel_tokenkpi
from otel_tokenkpi import semconv as sc
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall

ASYNC_UNITS = 1000
THREADS = 8
UNITS_PER_THREAD = 25
SYSTEM = {"role": "system", "content": "You look things up for the user and answer in one sentence."}
ARGS = '{"city": "Paris", "unit": "celsius"}'
CLEAN_REQUESTS = [
    [SYSTEM, {"role": "user", "content": "What is the weather in Paris today?"}],
    [SYSTEM, {"role": "user", "content": "And what will it be tomorrow in Paris?"}],
]
DIRTY_REQUEST = [
    SYSTEM,
    {"role": "user", "content": "What is the weather in Paris today?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ARGS}}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "21 degrees and sunny in Paris, light wind."},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}},
        },
    }
]
# Every reply is the same tool call: a duplicate only where the request's history already holds it.
REPLY = Reply(text=None, tool_calls=[ToolCall("lookup", ARGS)], prompt_tokens=120, completion_tokens=20)


def script(kind: str) -> list[list[dict[str, Any]]]:
    return CLEAN_REQUESTS if kind == "clean" else [DIRTY_REQUEST, DIRTY_REQUEST]


def kind_of(unit: int) -> str:
    return "dirty" if unit % 3 == 0 else "clean"


def opener(unit: int, label: str) -> Any:
    """The unit's parent: a task() span, or a plain span inside conversation() (odd units)."""
    if unit % 2 == 0:
        return otel_tokenkpi.task(label)
    return _span_in_conversation(label)


class _span_in_conversation:
    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> None:
        # Conversation state outlives the test (it is keyed by id, not trace): a fresh id per run.
        self._conversation = otel_tokenkpi.conversation(f"conversation-{RUN}-{self.label}")
        self._conversation.__enter__()
        tracer = trace.get_tracer("concurrency-test", tracer_provider=_provider[0])
        self._span = tracer.start_as_current_span(self.label)
        self._span.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._span.__exit__(*exc)
        self._conversation.__exit__(*exc)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)


_provider: list[Any] = [None]
RUN = uuid.uuid4().hex


def run_sync_unit(client: Any, unit: int, label: str) -> None:
    with otel_tokenkpi.attributes(unit=label), opener(unit, label):
        for messages in script(kind_of(unit)):
            client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)


async def run_async_unit(client: Any, unit: int, label: str) -> None:
    async with otel_tokenkpi.attributes(unit=label), opener(unit, label):
        for messages in script(kind_of(unit)):
            await client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)


def tokenkpi_attributes(span: Any) -> dict[str, Any]:
    return {k: v for k, v in span.attributes.items() if k.startswith("tokenkpi.")}


@pytest.fixture
def setup(loaded_data: None) -> Iterator[tuple[Telemetry, FakeOpenAIServer]]:
    telemetry = Telemetry()
    _provider[0] = telemetry.tracer_provider
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    with FakeOpenAIServer() as server:
        server.default_reply = REPLY
        try:
            yield telemetry, server
        finally:
            instrumentor.uninstrument()


def calls_by_unit(telemetry: Telemetry) -> tuple[dict[str, list[Any]], dict[int, Any]]:
    spans = telemetry.spans()
    by_id = {s.context.span_id: s for s in spans}
    calls: dict[str, list[Any]] = defaultdict(list)
    for span in spans:
        if span.attributes.get(sc.OPERATION_NAME) == "chat":
            calls[span.attributes["unit"]].append(span)
    for unit_calls in calls.values():
        unit_calls.sort(key=lambda s: s.start_time)
    return calls, by_id


@pytest.mark.parametrize(
    ("async_units", "units_per_thread"),
    [(200, 5), pytest.param(ASYNC_UNITS, UNITS_PER_THREAD, marks=pytest.mark.slow)],
)
def test_concurrent_tasks_and_threads_keep_parents_and_state_apart(setup, async_units, units_per_thread):
    global RUN
    RUN = uuid.uuid4().hex
    telemetry, server = setup
    client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)

    # The reference: one clean and one dirty unit, one at a time (units 1 and 3: conversation(); 0 and 2: task()).
    for unit in (0, 1, 2, 3):
        run_sync_unit(client, unit, f"reference-{unit}")
    calls, _ = calls_by_unit(telemetry)
    expected = {
        (unit % 2, kind_of(unit)): [tokenkpi_attributes(s) for s in calls[f"reference-{unit}"]] for unit in (0, 1, 2, 3)
    }
    clean, dirty = expected[(1, "clean")], expected[(1, "dirty")]
    assert [a[sc.WASTE_TOKENS] for a in clean] == [0, 0]
    assert [a[sc.TOOL_CALLS_DUPLICATE_COUNT] for a in dirty] == [1, 1]
    assert dirty[0][sc.WASTE_REPEATED_REQUEST_TOKENS] == 0 and dirty[1][sc.WASTE_REPEATED_REQUEST_TOKENS] == 140
    telemetry.exporter.clear()
    server.reset()

    failures: list[BaseException] = []

    def thread_main(index: int) -> None:
        thread_client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
        try:
            for turn in range(units_per_thread):
                unit = index * units_per_thread + turn
                run_sync_unit(thread_client, unit, f"thread-{unit}")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    async def all_tasks() -> None:
        http_client = openai.DefaultAsyncHttpxClient(limits=httpx2.Limits(max_connections=32))
        async_client = openai.AsyncOpenAI(
            api_key="sk-test", base_url=server.url + "/v1", max_retries=0, http_client=http_client
        )
        await asyncio.gather(*(run_async_unit(async_client, unit, f"task-{unit}") for unit in range(async_units)))
        await async_client.close()

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    asyncio.run(all_tasks())
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert not any(thread.is_alive() for thread in threads)

    calls, by_id = calls_by_unit(telemetry)
    units = [(f"task-{u}", u) for u in range(async_units)]
    units += [(f"thread-{u}", u) for u in range(THREADS * units_per_thread)]
    assert len(calls) == len(units)
    for label, unit in units:
        unit_calls = calls[label]
        assert len(unit_calls) == 2, label
        parents = {by_id[s.parent.span_id] for s in unit_calls}
        assert len(parents) == 1, label
        parent = parents.pop()
        assert parent.attributes.get("unit", label) == label  # task() spans carry the user attributes too
        assert parent.name in (label, f"invoke_workflow {label}")
        assert {s.context.trace_id for s in unit_calls} == {parent.context.trace_id}
        assert [tokenkpi_attributes(s) for s in unit_calls] == expected[(unit % 2, kind_of(unit))], label
        if unit % 2 == 0:  # task(): roll-ups of its own two calls only
            waste = sum(s.attributes[sc.WASTE_TOKENS] for s in unit_calls)
            assert parent.attributes["tokenkpi.trace.llm_calls"] == 2
            assert parent.attributes["tokenkpi.trace.waste.tokens"] == waste
            assert parent.attributes["tokenkpi.trace.duplicate_tool_calls"] == (2 if kind_of(unit) == "dirty" else 0)
        else:
            assert {s.attributes[sc.CONVERSATION_ID] for s in unit_calls} == {f"conversation-{RUN}-{label}"}
