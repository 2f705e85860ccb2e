"""``otel-tokenkpi report``: exact sums from a hand-written OTLP JSON lines file and from the demo's own file."""

from __future__ import annotations

import base64
import json
import re

import pytest

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.cli import main
from otel_tokenkpi.report import read_report, readers

TRACE = {name: f"{index:032x}" for index, name in enumerate("ABCDE", 1)}


def value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": v}


def span(trace, span_id, parent, name, start, end, attrs, error=False):
    out = {
        "traceId": TRACE[trace],
        "spanId": f"{span_id:016x}",
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()],
        "status": {"code": 2} if error else {},
    }
    if parent:
        out["parentSpanId"] = f"{parent:016x}"
    return out


def request(*spans):
    scope = {"scope": {"name": "otel_tokenkpi"}, "spans": list(spans)}
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [scope]}]}


def base64_ids(req):
    """As protobuf's own JSON mapping writes them (some tools do)."""
    for s in req["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in s:
                s[key] = base64.b64encode(bytes.fromhex(s[key])).decode()
    return req


def snake_case(req):
    """proto field names, as ``MessageToDict(preserving_proto_field_name=True)`` writes them."""
    text = json.dumps(req)
    for camel in (
        "resourceSpans",
        "scopeSpans",
        "traceId",
        "spanId",
        "parentSpanId",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "stringValue",
        "intValue",
        "doubleValue",
        "boolValue",
    ):
        text = text.replace(f'"{camel}"', '"' + re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower() + '"')
    return json.loads(text)


def task(name, team, calls, tokens_in, tokens_out, waste, cost, outcome, unused=0):
    return {
        "team": team,
        sc.OPERATION_NAME: sc.INVOKE_WORKFLOW,
        sc.AGENT_NAME: name,
        sc.TRACE_LLM_CALLS: calls,
        sc.TRACE_INPUT_TOKENS: tokens_in,
        sc.TRACE_OUTPUT_TOKENS: tokens_out,
        sc.TRACE_WASTE_TOKENS: waste,
        sc.TRACE_WASTE_UNUSED_TOOL_DEFINITIONS_TOKENS: unused,
        sc.TRACE_COST_USD: cost,
        sc.OUTCOME: outcome,
    }


def call(team, model, tokens_in, tokens_out, cost, **kinds):
    attrs = {"team": team, sc.OPERATION_NAME: "chat", sc.REQUEST_MODEL: model}
    if cost is not None:
        attrs[sc.COST_USD] = cost
    if tokens_in is not None:
        attrs.update({sc.USAGE_INPUT_TOKENS: tokens_in, sc.USAGE_OUTPUT_TOKENS: tokens_out})
    for kind, key in sc.WASTE_KIND_ATTRIBUTES.items():
        attrs[key] = kinds.get(kind, 0)
    attrs[sc.WASTE_TOKENS] = sum(kinds.values())
    return attrs


def hand_written_lines():
    trace_a = [  # a root task with a task nested in it; a foreign span inside one of our calls
        span(
            "A",
            1,
            None,
            "invoke_workflow triage",
            0,
            100,
            task("triage", "search", 2, 1000, 200, 300, 0.01, "success", 50),
        ),
        span("A", 2, 1, "invoke_workflow lookup", 10, 50, task("lookup", "search", 1, 400, 100, 200, 0.004, "success")),
        span("A", 3, 1, "chat gpt-4o", 5, 9, call("search", "gpt-4o", 600, 100, 0.006, duplicate_tool_call=100)),
        span(
            "A",
            4,
            2,
            "chat gpt-4o",
            20,
            30,
            call("search", "gpt-4o", 400, 100, 0.004, uncached_resent=150, truncated_output=50),
        ),
        span("A", 5, 4, "chat gpt-4o", 21, 29, {sc.OPERATION_NAME: "chat", sc.USAGE_INPUT_TOKENS: 400}),
    ]
    trace_b = [
        span(
            "B", 1, None, "invoke_workflow triage", 0, 100, task("triage", "search", 1, 500, 50, 550, 0.02, "failure")
        ),
        span(
            "B", 2, 1, "chat claude", 10, 20, call("search", "claude-sonnet-4-6", 500, 50, 0.02, repeated_request=550)
        ),
    ]
    trace_c = [
        span(
            "C", 1, None, "invoke_workflow triage", 0, 100, task("triage", "support", 2, 300, 60, 30, 0.003, "success")
        ),
        span("C", 2, 1, "chat gpt-4o-mini", 10, 20, call("support", "gpt-4o-mini", 300, 60, 0.003, uncached_resent=30)),
        span("C", 3, 1, "chat gpt-4o-mini", 30, 40, call("support", "gpt-4o-mini", None, None, None), error=True),
    ]
    trace_d = [  # the span processor's roll-up on a foreign root, and a task inside it
        span(
            "D",
            1,
            None,
            "POST /ask",
            0,
            100,
            {**task("x", "ads", 1, 5000, 1000, 3000, 0.5, "success"), sc.OPERATION_NAME: "http"},
        ),
        span("D", 2, 1, "invoke_workflow triage", 10, 90, task("triage", "ads", 1, 5000, 1000, 3000, 0.5, "success")),
        span(
            "D",
            3,
            2,
            "chat gpt-4o",
            20,
            80,
            call("ads", "gpt-4o", 5000, 1000, 0.5, truncated_output=1000, uncached_resent=2000),
        ),
    ]
    trace_e = [
        span(
            "E", 1, None, "invoke_workflow summarize", 0, 100, task("summarize", "ml", 1, 80, 20, 0, 0.001, "failure")
        ),
        span("E", 2, 1, "chat gpt-4o-mini", 10, 20, call("ml", "gpt-4o-mini", 80, 20, 0.001)),
    ]
    return [
        json.dumps(request(*trace_a, *trace_b)),
        json.dumps(base64_ids(request(*trace_c))),
        "",
        json.dumps({"resourceMetrics": []}),  # another signal's line: skipped silently
        json.dumps(snake_case(base64_ids(request(*trace_d)))),
        json.dumps(request(*trace_e)),
    ]


@pytest.fixture(autouse=True, params=["python", "msgspec"])
def reader(request, monkeypatch):
    """Every test here runs with each JSON reader (`--reader auto` picks the fast one when installed)."""
    if request.param not in readers():
        pytest.skip("msgspec is not installed (the [fast] extra)")
    if request.param == "python":
        monkeypatch.setattr("otel_tokenkpi.report.readers", lambda: {"python": "the standard library's json"})
    return request.param


@pytest.fixture
def spans_file(tmp_path):
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(hand_written_lines()) + "\n", encoding="utf-8")
    return path


def table(out: str, title: str) -> dict[str, list[str]]:
    """The rows of the table under ``title``, keyed by first cell; cells split on two or more spaces."""
    block = out.split(title + "\n", 1)[1].split("\n\n", 1)[0]
    rows = [re.split(r"\s{2,}", line.strip()) for line in block.splitlines() if "  " in line]
    return {row[0]: row[1:] for row in rows[1:]}


def test_sums_by_model_kind_and_task_exactly(spans_file, capsys):
    assert main(["report", str(spans_file)]) == 0
    out = capsys.readouterr().out
    assert f"{spans_file}: 15 spans in 6 lines; 7 model calls, 5 tasks" in out
    models = table(out, "Waste by model")
    # calls errors input output cached waste waste% cost waste_cost
    assert models["gpt-4o"] == ["3", "0", "6,000", "1,200", "0", "3,300", "45.8%", "$0.510000", "-"]
    assert models["claude-sonnet-4-6"] == ["1", "0", "500", "50", "0", "550", "100.0%", "$0.020000", "-"]
    assert models["gpt-4o-mini"] == ["3", "1", "380", "80", "0", "30", "6.5%", "$0.004000", "-"]
    assert list(models) == ["gpt-4o", "claude-sonnet-4-6", "gpt-4o-mini"]  # most waste first
    kinds = table(out, "Waste by kind")
    assert kinds["uncached re-sent context"] == ["2,180", "56.2%", "3"]
    assert kinds["truncated output"] == ["1,050", "27.1%", "2"]
    assert kinds["repeated requests"] == ["550", "14.2%", "1"]
    assert kinds["duplicate tool calls"] == ["100", "2.6%", "1"]
    assert kinds["failed calls"] == ["0", "0.0%", "0"]
    assert kinds["total"] == ["3,880", "100.0%"]
    assert "waste is 47.3% of 8,210 billed tokens" in out
    assert "unused tool definitions: 50 tokens" in out
    tasks = table(out, "Waste by task")
    # runs successes failures calls tokens waste waste% cost tokens/success; nested spans are rows too
    assert tasks["triage"] == ["4", "3", "1", "6", "8,110", "3,880", "47.8%", "$0.533000", "2,703.3"]
    assert tasks["lookup"] == ["1", "1", "0", "1", "500", "200", "40.0%", "$0.004000", "500"]
    assert tasks["POST /ask"] == ["1", "1", "0", "1", "6,000", "3,000", "50.0%", "$0.500000", "6,000"]
    assert tasks["summarize"] == ["1", "0", "1", "1", "100", "0", "0.0%", "$0.001000", "-"]


def test_totals_count_only_outermost_tasks(spans_file):
    report = read_report(spans_file)
    total = report.tasks()
    # A's root (not its nested lookup), B, C, D's root (not the task inside it), E.
    assert (total.tasks, total.successes, total.failures) == (5, 3, 2)
    assert total.tokens == 1200 + 550 + 360 + 6000 + 100
    assert total.llm_calls == 2 + 1 + 2 + 1 + 1


def test_by_team_is_the_kpi_table_best_tokens_per_success_first(spans_file, capsys):
    assert main(["report", str(spans_file), "--by", "team"]) == 0
    out = capsys.readouterr().out
    rows = table(out, "Tokens per success by team (best first; groups without a success last)")
    assert list(rows) == ["support", "search", "ads", "ml"]
    # tasks successes tokens/success waste% cost/success top_waste_kind
    assert rows["support"] == ["1", "1", "360", "8.3%", "$0.003000", "uncached_resent"]
    assert rows["search"] == ["2", "1", "1,750", "48.6%", "$0.030000", "repeated_request"]
    assert rows["ads"] == ["1", "1", "6,000", "50.0%", "$0.500000", "uncached_resent"]
    assert rows["ml"] == ["1", "0", "-", "0.0%", "-", "-"]
    assert "Waste by model" not in out


def test_by_an_attribute_no_span_carries_says_so(spans_file, capsys):
    assert main(["report", str(spans_file), "--by", "tenant"]) == 0
    out = capsys.readouterr().out
    assert "no span carries the attribute 'tenant'" in out
    assert table(out, "Tokens per success by tenant (best first; groups without a success last)")["(none)"][:3] == [
        "5",
        "3",
        f"{8210 / 3:,.1f}",
    ]


def test_a_malformed_line_is_named_skipped_and_fails_the_exit_status(spans_file, capsys):
    lines = hand_written_lines()
    lines.insert(1, '{"resourceSpans": [')  # line 2: cut off
    # line 8: a roll-up span (whose ids the report reads) with a broken trace id; spans the report does not
    # read are not checked beyond the JSON syntax.
    rollup = {"traceId": "zz", "spanId": "00", "attributes": [{"key": sc.TRACE_LLM_CALLS, "value": {"intValue": "1"}}]}
    lines.append(
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [rollup, {"traceId": "zz", "spanId": "00"}]}]}]})
    )
    spans_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["report", str(spans_file)]) == 1
    captured = capsys.readouterr()
    assert f"{spans_file}:2: skipped malformed line: not JSON" in captured.err
    assert f"{spans_file}:8: skipped malformed line: traceId 'zz' is neither 32 hex digits nor base64" in captured.err
    assert "2 malformed lines skipped" in captured.err
    # Every other line still counts.
    assert f"{spans_file}: 15 spans in 8 lines; 7 model calls, 5 tasks" in captured.out
    assert table(captured.out, "Waste by task")["triage"][:5] == ["4", "3", "1", "6", "8,110"]


def test_a_missing_file_or_a_directory_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.jsonl")]) == 2
    assert f"otel-tokenkpi: error: no such file: {tmp_path / 'nope.jsonl'}" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_an_empty_file_reports_no_spans(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    assert main(["report", str(path)]) == 0
    assert "no spans found" in capsys.readouterr().out


def test_the_demo_file_reports_the_demo_numbers(loaded_data, tmp_path, capsys):
    path = tmp_path / "demo.jsonl"
    assert main(["demo", "--out", str(path)]) == 0
    capsys.readouterr()
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert ": 7 spans in 1 lines; 6 model calls, 1 tasks" in out
    model = table(out, "Waste by model")["gpt-4o-mini"]
    assert model[:7] == ["6", "1", "6,661", "142", "1,280", "5,158", "75.8%"]
    kinds = table(out, "Waste by kind")
    assert [kinds[k][0] for k in ("uncached re-sent context", "repeated requests", "duplicate tool calls")] == [
        "3,712",
        "1,384",
        "38",
    ]
    assert kinds["truncated output"][0] == "24" and kinds["failed calls"][0] == "0"
    assert "unused tool definitions: 348 tokens" in out
    assert table(out, "Waste by task")["travel-assistant"][:7] == ["1", "1", "0", "6", "6,803", "5,158", "75.8%"]
    assert main(["report", str(path), "--by", "team"]) == 0
    row = table(capsys.readouterr().out, "Tokens per success by team (best first; groups without a success last)")
    assert row["travel"][:4] == ["1", "1", "6,803", "75.8%"] and row["travel"][5] == "uncached_resent"


def test_the_progress_bar_draws_on_the_given_stream_and_clears_its_line(spans_file):
    import io

    stream = io.StringIO()
    report = read_report(spans_file, progress=stream)
    assert report.spans == 15
    drawn = stream.getvalue()
    assert drawn.startswith("\r[") and " MiB" in drawn
    assert drawn.endswith("\r") and drawn.rsplit("\r", 2)[1].strip() == ""  # the last thing written blanks the bar
