"""End to end against a real OTLP backend: Arize Phoenix.

An instrumented agent run (``otel_tokenkpi.instrument()`` from the standard OTEL_* environment, the
real ``openai`` SDK against the fake server, a duplicate tool call) is exported over OTLP/HTTP and
OTLP/gRPC to a real ``phoenix serve``; the spans are read back through Phoenix's REST API
(``GET /v1/projects/{project}/spans``). What a user sees in the backend must be what the SDK held:
exact usage, waste and roll-up numbers, the task span as the parent of the model calls.

Phoenix lives in its own virtual environment; ``tests/run.sh`` makes it and sets
``TOKENKPI_PHOENIX_PYTHON``. Without that variable the tests skip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import tiktoken

try:  # repo root on sys.path (python -m pytest)
    from tests import _phoenix_agent as agent
    from tests._phoenix_support import PYTHON_ENV, PhoenixServer, otlp_env, run_agent
except ImportError:  # plain `pytest`: conftest puts tests/ on sys.path
    import _phoenix_agent as agent  # type: ignore[no-redef]
    from _phoenix_support import PYTHON_ENV, PhoenixServer, otlp_env, run_agent  # type: ignore[no-redef]

pytestmark = pytest.mark.slow

O200K = tiktoken.get_encoding("o200k_base")
OURS = ("gen_ai.", "tokenkpi.")
TASK_SPAN = f"invoke_workflow {agent.TASK}"
CALL_SPAN = f"chat {agent.MODEL}"


def n(text: str) -> int:
    return len(O200K.encode_ordinary(text))


@pytest.fixture(scope="module")
def phoenix() -> Iterator[PhoenixServer]:
    python = os.environ.get(PYTHON_ENV)
    if not python:
        pytest.skip(f"{PYTHON_ENV} is not set (tests/run.sh makes .venv-phoenix with arize-phoenix and sets it)")
    with PhoenixServer(python) as server:
        yield server


@pytest.fixture(scope="module")
def runs(phoenix: PhoenixServer) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """One agent run per transport, each into its own Phoenix project: (what the SDK held, what Phoenix holds)."""
    results = {}
    for transport in ("http", "grpc"):
        project = f"tokenkpi-e2e-{transport}"
        local = run_agent(otlp_env(phoenix, transport, project))
        stored = phoenix.trace_spans(project, local["trace_id"], expected=len(local["spans"]))
        results[transport] = (local, stored)
    return results


def _by_span_id(spans: list[dict[str, Any]], key: Any) -> dict[str, dict[str, Any]]:
    return {key(s): s for s in spans}


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_the_trace_arrives_whole_with_its_structure(transport: str, runs: Any) -> None:
    local, stored = runs[transport]
    assert sorted(s["name"] for s in stored) == [CALL_SPAN] * 3 + [TASK_SPAN]
    assert {s["context"]["trace_id"] for s in stored} == {local["trace_id"]}
    (task,) = [s for s in stored if s["name"] == TASK_SPAN]
    assert task["parent_id"] is None
    calls = sorted((s for s in stored if s["name"] == CALL_SPAN), key=lambda s: s["start_time"])
    assert [c["parent_id"] for c in calls] == [task["context"]["span_id"]] * 3
    assert [c["attributes"]["gen_ai.response.id"] for c in calls] == ["chatcmpl-1", "chatcmpl-2", "chatcmpl-3"]
    assert all(task["start_time"] <= c["start_time"] and c["end_time"] <= task["end_time"] for c in calls)
    assert {s["status_code"] for s in stored} == {"UNSET"}
    # the same span ids the SDK gave them
    local_ids = {(s["span_id"], s["parent_id"]) for s in local["spans"]}
    assert {(s["context"]["span_id"], s["parent_id"]) for s in stored} == local_ids


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_every_attribute_of_ours_survives_exactly(transport: str, runs: Any) -> None:
    local, stored = runs[transport]
    stored_by_id = _by_span_id(stored, lambda s: s["context"]["span_id"])
    for span in local["spans"]:
        ours = {k: v for k, v in span["attributes"].items() if k.startswith(OURS)}
        kept = {k: v for k, v in stored_by_id[span["span_id"]]["attributes"].items() if k.startswith(OURS)}
        assert kept == ours, span["name"]
        assert any(k.startswith("tokenkpi.") for k in kept)
        assert stored_by_id[span["span_id"]]["attributes"]["team"] == "travel"


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_usage_and_waste_numbers_in_the_backend(transport: str, runs: Any) -> None:
    _, stored = runs[transport]
    calls = sorted((s for s in stored if s["name"] == CALL_SPAN), key=lambda s: s["start_time"])
    attrs = [c["attributes"] for c in calls]
    assert [a["gen_ai.usage.input_tokens"] for a in attrs] == [r.prompt_tokens for r in agent.REPLIES]
    assert [a["gen_ai.usage.output_tokens"] for a in attrs] == [r.completion_tokens for r in agent.REPLIES]
    assert [a["gen_ai.usage.cache_read.input_tokens"] for a in attrs] == [0, 0, 128]
    assert [a["gen_ai.response.finish_reasons"] for a in attrs] == [["tool_calls"], ["tool_calls"], ["stop"]]
    assert [a["tokenkpi.tool_calls.count"] for a in attrs] == [2, 1, 0]
    assert [a["tokenkpi.tools.defined_count"] for a in attrs] == [2, 2, 2]
    assert [a["tokenkpi.context.window"] for a in attrs] == [128000] * 3
    assert [a["tokenkpi.context.utilization"] for a in attrs] == [r.prompt_tokens / 128000 for r in agent.REPLIES]
    assert [a["tokenkpi.context.system_tokens"] for a in attrs] == [n(agent.SYSTEM)] * 3
    # Call 2 asks for the weather again with the arguments reordered: a duplicate tool call; call 3
    # is the first to send that duplicate's result back.
    duplicate_result = json.dumps(agent.run_tool("get_weather", agent.DUPLICATE_ARGUMENTS))
    assert [a["tokenkpi.tool_calls.duplicate_count"] for a in attrs] == [0, 1, 0]
    assert [a["tokenkpi.waste.duplicate_tool_call_tokens"] for a in attrs] == [
        0,
        n("get_weather") + n(agent.DUPLICATE_ARGUMENTS),
        n(duplicate_result),
    ]
    for a in attrs:
        kinds = [k for k in a if k.startswith("tokenkpi.waste.") and k.endswith("_tokens")]
        assert len(kinds) == 5
        assert a["tokenkpi.waste.tokens"] == sum(a[k] for k in kinds)
        assert a["tokenkpi.waste.ratio"] == a["tokenkpi.waste.tokens"] / (
            a["gen_ai.usage.input_tokens"] + a["gen_ai.usage.output_tokens"]
        )
    assert attrs[0]["tokenkpi.waste.tokens"] == 0  # nothing re-sent on the first call
    # The agent's prompts are a few hundred tokens: re-sent, but below gpt-4o's 1,024-token cache minimum, so
    # no cache could have served them and they are not waste (docs/cache-eligibility.md).
    assert all(a["tokenkpi.context.resent_tokens"] < 1024 for a in attrs)
    assert attrs[1]["tokenkpi.context.resent_tokens"] > 0
    assert [a["tokenkpi.waste.uncached_resent_tokens"] for a in attrs] == [0, 0, 0]
    assert attrs[1]["tokenkpi.waste.tokens"] == attrs[1]["tokenkpi.waste.duplicate_tool_call_tokens"] > 0
    # The breakdown adds up to what the provider billed.
    for a in attrs:
        parts = a["tokenkpi.context.resent_tokens"] + a["tokenkpi.context.new_tokens"]
        assert parts + a["tokenkpi.context.unattributed_tokens"] == a["gen_ai.usage.input_tokens"]
    # Phoenix read our GenAI attributes as an LLM span with its own token counts.
    assert {c["span_kind"] for c in calls} == {"LLM"}
    assert [a["llm.token_count.prompt"] for a in attrs] == [182, 279, 322]
    assert [a["llm.token_count.completion"] for a in attrs] == [46, 21, 19]


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_task_roll_ups_in_the_backend(transport: str, runs: Any) -> None:
    _, stored = runs[transport]
    (task,) = [s["attributes"] for s in stored if s["name"] == TASK_SPAN]
    calls = [s["attributes"] for s in stored if s["name"] == CALL_SPAN]
    total_in = sum(r.prompt_tokens for r in agent.REPLIES)
    total_out = sum(r.completion_tokens for r in agent.REPLIES)
    waste = sum(a["tokenkpi.waste.tokens"] for a in calls)
    assert (total_in, total_out, waste > 0) == (783, 86, True)
    assert task["gen_ai.operation.name"] == "invoke_workflow"
    assert task["gen_ai.agent.name"] == agent.TASK
    assert task["tokenkpi.trace.llm_calls"] == 3
    assert task["tokenkpi.trace.input_tokens"] == total_in
    assert task["tokenkpi.trace.output_tokens"] == total_out
    assert task["tokenkpi.trace.cache_read_tokens"] == 128
    assert task["tokenkpi.trace.tool_calls"] == 3
    assert task["tokenkpi.trace.max_tool_fanout"] == 2
    assert task["tokenkpi.trace.duplicate_tool_calls"] == 1
    assert task["tokenkpi.trace.waste.tokens"] == waste
    assert task["tokenkpi.trace.waste.ratio"] == waste / (total_in + total_out)
    assert task["tokenkpi.trace.waste.unused_tool_definitions_tokens"] == 0  # both tools were used
    assert task["tokenkpi.trace.max_context_utilization"] == 322 / 128000
    assert task["tokenkpi.outcome"] == "success"
    assert task["tokenkpi.trace.tokens_per_success"] == total_in + total_out
    assert task["tokenkpi.trace.cost.usd"] == pytest.approx(sum(a["tokenkpi.cost.usd"] for a in calls), rel=1e-12)
