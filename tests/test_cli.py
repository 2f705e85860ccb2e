"""The ``otel-tokenkpi`` command: the agent waste demo per provider, its exporters, errors, and the script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from otlp_receiver import OtlpReceiver

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.cli import main, traces_url

HEADER = ["call", "finish", "in", "out", "cached", "re-sent", "dup-tool", "truncated", "repeated", "failed", "waste"]
# Per call: finish, then in out cached | re-sent dup-tool truncated repeated failed waste. The provider bills
# the same usage through both SDKs; local counts (re-sent, duplicate results) follow each model's tokenizer.
OPENAI_ROWS = [
    ["1", "tool_calls", "1231", "46", "0", "0", "0", "0", "0", "0", "0"],  # the unused book_flight schema is beside
    ["2", "tool_calls", "1316", "21", "0", "1152", "14", "0", "0", "0", "1166"],  # uncached history; duplicate call
    ["3", "length", "1360", "24", "0", "1280", "24", "24", "0", "0", "1328"],  # duplicate's result; cut off
    ["4", "length", "1360", "24", "1280", "0", "0", "0", "1384", "0", "1384"],  # the identical request again
    ["5", "error", "-", "-", "-", "-", "-", "-", "-", "0", "0"],  # HTTP 500: nothing billed
    ["6", "stop", "1394", "27", "0", "1280", "0", "0", "0", "0", "1280"],  # the retry of call 5
]
ANTHROPIC_ROWS = [
    ["1", "tool_use", "1743", "46", "0", "0", "0", "0", "0", "0", "0"],
    ["2", "tool_use", "1820", "21", "0", "1759", "12", "0", "0", "0", "1771"],
    ["3", "max_tokens", "1862", "24", "0", "1817", "24", "24", "0", "0", "1865"],
    ["4", "max_tokens", "1862", "24", "0", "0", "0", "0", "1886", "0", "1886"],
    ["5", "error", "-", "-", "-", "-", "-", "-", "-", "0", "0"],
    ["6", "end_turn", "1897", "27", "0", "1856", "0", "0", "0", "0", "1856"],
]
# Per provider: (billed tokens, input, cached, waste, unused tool schemas) of the task.
TASK_FIGURES = {"openai": (6803, 6661, 1280, 5158, 348), "anthropic": (9326, 9184, 0, 7378, 534)}
OPENAI_WASTE_PER_CALL = [0, 1166, 1328, 1384, 0, 1280]


def demo_table(out: str) -> list[list[str]]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == HEADER)
    return [line.split() for line in lines[start + 1 : start + 7]]


@pytest.mark.parametrize(("provider", "rows"), [("openai", OPENAI_ROWS), ("anthropic", ANTHROPIC_ROWS)])
def test_the_demo_prints_each_kind_of_waste_per_call(loaded_data, capsys, provider, rows):
    billed, input_tokens, cached, waste, unused = TASK_FIGURES[provider]
    assert main(["demo", "--provider", provider]) == 0
    out = capsys.readouterr().out
    assert demo_table(out) == rows
    assert [int(row[-1]) for row in rows[:4]] == [sum(map(int, row[5:10])) for row in rows[:4]]  # kinds add up
    assert "Agent answer: Paris is clear and 21C today. Hotel du Parc has a room for 129 EUR a night" in out
    assert (
        f"task travel-assistant: 6 model calls, {billed} tokens ({input_tokens} in, 142 out, {cached} cached), "
        "outcome success"
    ) in out
    assert f"  waste {waste} tokens ({waste / billed:.0%} of billed); duplicate tool calls 1, max tool fan-out 2" in out
    assert f"  unused tool schemas {unused} tokens" in out
    assert f"  tokens per success {billed}; cost $" in out


def test_the_demo_sends_its_spans_over_otlp_and_prints_them_with_console(loaded_data, capsys):
    with OtlpReceiver() as receiver:
        assert main(["demo", "--otlp", receiver.http_endpoint, "--console"]) == 0
        spans = receiver.wait_for_spans(7)
    out = capsys.readouterr().out
    assert f"Spans sent to {receiver.http_endpoint}/v1/traces (OTLP http/protobuf)" in out
    assert out.count('"name": "chat gpt-4o-mini"') == 6  # the console exporter's JSON, before the table
    calls = [s for s in spans if s["name"] == "chat gpt-4o-mini"]
    assert [s["attributes"][sc.WASTE_TOKENS] for s in calls] == OPENAI_WASTE_PER_CALL
    assert {s["attributes"]["team"] for s in calls} == {"travel"}
    (task,) = [s for s in spans if s["name"] == "invoke_workflow travel-assistant"]
    assert task["attributes"][sc.TRACE_WASTE_TOKENS] == 5158 and task["attributes"][sc.OUTCOME] == "success"
    assert task["resource"]["service.name"] == "tokenkpi-demo"


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_demo_sends_its_spans_over_otlp_grpc(loaded_data, capsys, monkeypatch, how):
    with OtlpReceiver() as receiver:
        if how == "option":
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")  # the option wins
            argv = ["demo", "--otlp", receiver.grpc_endpoint, "--otlp-protocol", "grpc"]
        else:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
            argv = ["demo", "--otlp", receiver.grpc_endpoint]
        assert main(argv) == 0
        spans = receiver.wait_for_spans(7)
        assert {r.transport for r in receiver.requests("traces")} == {"grpc"}
    assert f"Spans sent to {receiver.grpc_endpoint} (OTLP grpc)" in capsys.readouterr().out
    calls = [s for s in spans if s["name"] == "chat gpt-4o-mini"]
    assert [s["attributes"][sc.WASTE_TOKENS] for s in calls] == OPENAI_WASTE_PER_CALL


def test_an_unknown_otlp_protocol_in_the_environment_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    assert main(["demo", "--otlp", "http://localhost:4318"]) == 2
    assert "OTLP protocol must be one of http/protobuf, grpc, got 'http/json'" in capsys.readouterr().err


def test_otlp_urls_get_the_traces_path_only_when_they_have_none():
    assert traces_url("http://localhost:4317", "grpc") == "http://localhost:4317"
    assert traces_url("http://localhost:4318") == "http://localhost:4318/v1/traces"
    assert traces_url("https://collector:4318/") == "https://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/custom/traces") == "http://collector:4318/custom/traces"


def test_bad_demo_options_are_clear_errors(tmp_path, capsys):
    assert main(["demo", "--otlp", "localhost:4317"]) == 2
    assert "--otlp needs an http(s) URL such as http://localhost:4318, got 'localhost:4317'" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "no-such-dir" / "spans.jsonl")]) == 2
    assert "otel-tokenkpi: error: [Errno 2] No such file or directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--provider", "cohere"])
    assert exited.value.code == 2
    assert "invalid choice: 'cohere' (choose from" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2


def script() -> Path:
    return Path(sys.executable).with_name("otel-tokenkpi")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_the_console_script_has_useful_help():
    assert script().exists(), "reinstall the project (pip install -e .) to get the otel-tokenkpi script"
    done = run(str(script()), "--help")
    assert done.returncode == 0
    assert "demo" in done.stdout and "report" in done.stdout and "tokens per successful task" in done.stdout
    done = run(str(script()), "demo", "--help")
    assert "--provider {openai,anthropic}" in done.stdout and "--out FILE" in done.stdout


def test_demo_out_then_report_by_team_end_to_end_as_subprocesses(tmp_path):
    path = tmp_path / "spans.jsonl"
    demo = run(str(script()), "demo", "--out", str(path))
    assert demo.returncode == 0, demo.stderr
    assert f"Spans appended to {path} (OTLP JSON lines)" in demo.stdout
    assert demo.stderr == "", demo.stderr
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert len(json.loads(line)["resourceSpans"][0]["scopeSpans"]) == 2  # the instrumentor's and task()'s scope
    report = run(sys.executable, "-m", "otel_tokenkpi", "report", str(path), "--by", "team")
    assert report.returncode == 0, report.stderr
    assert report.stderr == "", report.stderr  # no progress bar when stderr is not a terminal
    (row,) = [line.split() for line in report.stdout.splitlines() if line.startswith("travel ")]
    assert row == ["travel", "1", "1", "6,803", "75.8%", row[5], "uncached_resent"]
    missing = run(sys.executable, "-m", "otel_tokenkpi", "report", str(tmp_path / "missing.jsonl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_counts_in_words():
    from otel_tokenkpi._words import plural

    assert [plural(n, "task") for n in (0, 1, 2)] == ["0 tasks", "1 task", "2 tasks"]
    assert plural(1204, "line") == "1,204 lines"
    assert plural(1, "model call") == "1 model call" and plural(3, "query", "queries") == "3 queries"
