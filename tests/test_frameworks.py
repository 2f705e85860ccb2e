"""Framework conformance: real agent frameworks, plain and instrumented, against the fake OpenAI server.

Each case runs one scenario of tests/frameworks/ in a framework venv (``.venv-frameworks`` and
``.venv-frameworks-openai2``, made by tests/run.sh from the pinned requirements beside the scenarios)
and asserts on its record, per the conformance contract:

- plain vs instrumented: identical final output, tool executions and request bodies;
- one model-call span per HTTP call, usage equal to what the server reported (or, for a stream the
  framework asked no usage for, estimated and flagged);
- the scripted conversation: fan-out 2 on the first call, the planted duplicate flagged on the second,
  its result charged once on the third, zero waste on the clean first call, and the roll-ups on the root;
- each call counted once by a ``gen_ai.usage.*`` sum over all exported spans, whichever other
  instrumentation (pydantic-ai's own, OpenLLMetry) emitted a span for the same call.

Without the venvs the cases skip (run tests/run.sh); with CI=true they fail instead.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tiktoken

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.foreign import is_model_call_span

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
RUNNER = REPO / "tests" / "frameworks" / "run.py"
VENVS = {  # name -> (environment variable tests/run.sh sets, default location)
    "main": ("TOKENKPI_FRAMEWORKS_PYTHON", REPO / ".venv-frameworks" / "bin" / "python"),
    "openai2": ("TOKENKPI_FRAMEWORKS_OPENAI2_PYTHON", REPO / ".venv-frameworks-openai2" / "bin" / "python"),
}
RESULT_PREFIX = "TOKENKPI-FRAMEWORK-RESULT "
O200K = tiktoken.get_encoding("o200k_base")
USAGE = [(3000, 40), (3200, 20), (3400, 12)]  # tests/frameworks/_harness.py USAGE
PARIS = '{"city":"Paris"}'
DUPLICATE_ID = "call_3"  # the fake numbers tool calls call_1, call_2 (first reply), call_3 (the duplicate)


def n(text: str) -> int:
    return len(O200K.encode_ordinary(text))


@dataclass(frozen=True)
class Case:
    venv: str
    module: str
    scenario: str
    conversation: str = "agent"  # "agent": the 3-call tool script; "single": one call (its usage below)
    usage: str = "exact"  # "estimated": a stream the framework asked no usage for
    spans: str = "ours"  # "foreign": processor-only, the framework's own spans carry everything
    theirs_dropped: bool = False  # another instrumentation's span for each call ended and was dropped
    single_usage: tuple[int, int] = (0, 0)
    usage_keys: tuple[str, str] = (sc.USAGE_INPUT_TOKENS, sc.USAGE_OUTPUT_TOKENS)  # where the spans keep it
    pending: str | None = None  # xfail(strict): the real assertions, failing until this is done

    @property
    def id(self) -> str:
        return f"{self.module}:{self.scenario}"


DSPY_NATIVE = "DSPy's default engine (its vendored native HTTP client) is not traced: use engine='litellm'"

CASES = [
    Case("main", "openai_agents", "responses-plain"),
    Case("main", "openai_agents", "responses-streamed"),  # with_streaming_response, read through our tee
    Case("main", "openai_agents", "chat_completions-plain"),
    Case("main", "openai_agents", "chat_completions-streamed", usage="estimated"),
    Case("main", "langchain", "invoke"),
    Case("main", "langchain", "stream", usage="estimated"),
    Case("main", "langchain", "astream", usage="estimated"),
    Case("main", "langchain", "stream-with-usage"),
    Case("main", "pydantic_ai", "own-off"),
    Case("main", "pydantic_ai", "own-off-streamed"),
    Case("main", "pydantic_ai", "own-on", theirs_dropped=True),
    Case("main", "pydantic_ai", "own-on-streamed", theirs_dropped=True),
    Case("main", "pydantic_ai", "processor-only", spans="foreign"),
    Case("main", "pydantic_ai", "processor-only-streamed", spans="foreign"),
    Case("main", "openllmetry", "openllmetry-after-ours", theirs_dropped=True),
    Case("main", "openllmetry", "openllmetry-before-ours", theirs_dropped=True),
    Case("main", "emitters", "openllmetry", spans="foreign"),
    Case("main", "emitters", "util-genai", spans="foreign"),
    Case(
        "main",
        "emitters",
        "openinference",
        spans="foreign",
        usage_keys=("llm.token_count.prompt", "llm.token_count.completion"),
    ),
    Case("main", "dspy", "default-engine", conversation="single", single_usage=(700, 25), pending=DSPY_NATIVE),
    Case("main", "dspy", "litellm-engine", conversation="single", single_usage=(700, 25)),
    Case("openai2", "llama_index", "streaming", usage="estimated"),
    Case("openai2", "llama_index", "not-streaming"),
    Case("openai2", "instructor", "client-after-instrument", conversation="single", single_usage=(900, 30)),
    # The client is built before instrument(): the Stainless request-path patch catches it.
    Case("openai2", "instructor", "client-before-instrument", conversation="single", single_usage=(900, 30)),
    Case("openai2", "crewai", "crew"),
]


def _python(venv: str) -> str:
    variable, default = VENVS[venv]
    python = os.environ.get(variable) or (str(default) if default.exists() else "")
    if not python:
        message = f"{variable} is not set and {default} does not exist (tests/run.sh makes the framework venvs)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return python


@functools.cache
def _run(venv: str, module: str, scenario: str) -> dict[str, Any]:
    env = dict(os.environ, TRACELOOP_TRACE_CONTENT="true")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [_python(venv), str(RUNNER), module, scenario],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert done.returncode == 0 and lines, f"{module} {scenario} failed:\n{done.stderr[-4000:]}"
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def _tool_result(body: dict[str, Any], call_id: str) -> str:
    """The text a request sends back as the result of tool call ``call_id`` (chat or Responses)."""
    for item in body.get("messages") or body.get("input") or []:
        if not isinstance(item, dict):
            continue
        if item.get("role") == "tool" and item.get("tool_call_id") == call_id:
            content = item["content"]
            return content if isinstance(content, str) else "".join(part["text"] for part in content)
        if item.get("type") == "function_call_output" and item.get("call_id") == call_id:
            return item["output"]
    raise AssertionError(f"no result for {call_id} in the request")


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    return span["attributes"]


def check(case: Case, record: dict[str, Any]) -> None:
    plain, instrumented = record["plain"], record["instrumented"]
    # Instrumentation changes nothing the framework does.
    assert instrumented["final"] == plain["final"]
    assert sorted(map(json.dumps, instrumented["tools"])) == sorted(map(json.dumps, plain["tools"]))
    assert [r["body"] for r in instrumented["requests"]] == [r["body"] for r in plain["requests"]]
    requests = instrumented["requests"]

    spans = instrumented["spans"]
    calls = sorted((s for s in spans if is_model_call_span(_attributes(s))), key=lambda s: s["start"])
    assert len(calls) == len(requests), "one model-call span per HTTP call"
    ours = [s["scope"].startswith("otel_tokenkpi") for s in calls]
    assert ours == [case.spans == "ours"] * len(calls)
    if case.theirs_dropped:
        exported = {s["span_id"] for s in spans}
        ended = [s for s in instrumented["ended"] if is_model_call_span(_attributes(s))]
        theirs = [s for s in ended if s["span_id"] not in exported]
        assert len(theirs) == len(calls) and not any(s["scope"].startswith("otel_tokenkpi") for s in theirs)

    attrs = [_attributes(s) for s in calls]
    input_key, output_key = case.usage_keys
    inputs = [a.get(input_key) for a in attrs]
    outputs = [a.get(output_key) for a in attrs]
    expected = USAGE if case.conversation == "agent" else [case.single_usage]
    if case.usage == "exact":
        assert list(zip(inputs, outputs, strict=True)) == expected[: len(calls)], "usage equal to the server's"
        assert not any(a.get(sc.TOKENS_ESTIMATED) for a in attrs)
    else:
        assert all(a.get(sc.TOKENS_ESTIMATED) is True for a in attrs)
        assert all(isinstance(v, int) and v > 0 for v in inputs + outputs)

    # Each call counted once by a gen_ai.usage.* (OpenInference: llm.token_count.*) sum over every exported span.
    for key, per_call in ((input_key, inputs), (output_key, outputs)):
        assert sum(_attributes(s).get(key, 0) for s in spans) == sum(per_call)

    (root,) = [s for s in spans if s["parent_id"] is None]
    rollup = _attributes(root)
    assert root["name"] == "run"
    assert rollup[sc.TRACE_LLM_CALLS] == len(calls)
    assert rollup[sc.TRACE_INPUT_TOKENS] == sum(inputs)
    assert rollup[sc.TRACE_OUTPUT_TOKENS] == sum(outputs)

    first = attrs[0]
    assert first[sc.WASTE_TOKENS] == 0, "zero waste on a clean first call"
    if case.conversation == "single":
        assert len(calls) == 1
        return
    assert len(calls) == 3
    second, third = attrs[1], attrs[2]
    assert (first[sc.TOOL_CALLS_COUNT], first[sc.TOOL_CALLS_DUPLICATE_COUNT]) == (2, 0), "fan-out"
    assert (second[sc.TOOL_CALLS_COUNT], second[sc.TOOL_CALLS_DUPLICATE_COUNT]) == (1, 1), "the planted duplicate"
    assert second[sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS] == n("get_weather") + n(PARIS)
    assert (third[sc.TOOL_CALLS_COUNT], third[sc.TOOL_CALLS_DUPLICATE_COUNT]) == (0, 0)
    result = _tool_result(requests[2]["body"], DUPLICATE_ID)
    assert third[sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS] == n(result), "the duplicate's result, charged once"
    assert third[sc.CONTEXT_TOOL_RESULTS_TOKENS] == n(result) + sum(
        n(_tool_result(requests[2]["body"], call_id)) for call_id in ("call_1", "call_2")
    )
    assert rollup[sc.TRACE_TOOL_CALLS] == 3
    assert rollup[sc.TRACE_MAX_TOOL_FANOUT] == 2
    assert rollup[sc.TRACE_DUPLICATE_TOOL_CALLS] == 1
    assert rollup[sc.TRACE_WASTE_TOKENS] == sum(a[sc.WASTE_TOKENS] for a in attrs)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=[pytest.mark.xfail(strict=True, reason=case.pending)] if case.pending else [])
        for case in CASES
    ],
    ids=lambda case: case.id,
)
def test_framework_conformance(case: Case) -> None:
    check(case, _run(case.venv, case.module, case.scenario))


def test_the_framework_venvs_hold_the_pinned_versions() -> None:
    """What the README's table states was measured with exactly these versions."""
    for venv, requirements in (("main", "requirements-main.txt"), ("openai2", "requirements-openai2.txt")):
        pins = {}
        for line in (REPO / "tests" / "frameworks" / requirements).read_text().splitlines():
            spec = line.split("#", 1)[0].strip()
            if "==" in spec:
                name, version = spec.split("==")
                pins[name.split("[")[0]] = version.strip()
        code = "import importlib.metadata as m, json, sys; print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))"
        done = subprocess.run([_python(venv), "-c", code, *pins], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == pins
