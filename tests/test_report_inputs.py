"""``otel-tokenkpi report`` as a user runs it: late outcomes from a real app, gzip'd and rotated files, both
JSON readers giving the same report, run as subprocesses of the installed command."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_report import hand_written_lines, request, span, table, task

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.report import read_report, readers

APP = Path(__file__).resolve().parent / "_feedback_app.py"
KPI = "Tokens per success by team (best first; groups without a success last)"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_tokenkpi", *args], capture_output=True, text=True, timeout=120, env={**os.environ}
    )


@pytest.fixture(scope="module")
def feedback_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two processes of the feedback app: answers with in-process feedback, then feedback from elsewhere."""
    path = tmp_path_factory.mktemp("feedback") / "spans.jsonl"
    answered = subprocess.run(
        [sys.executable, str(APP), str(path), "answer"], capture_output=True, text=True, timeout=120
    )
    assert answered.returncode == 0, answered.stderr
    trace_id = answered.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    later = subprocess.run(
        [sys.executable, str(APP), str(path), "feedback", trace_id], capture_output=True, text=True, timeout=120
    )
    assert later.returncode == 0, later.stderr
    return path


@pytest.mark.slow
@pytest.mark.parametrize("reader", ["python", "msgspec"])
def test_late_outcomes_count_in_every_table(feedback_file: Path, reader: str) -> None:
    if reader not in readers():
        pytest.skip("msgspec is not installed (the [fast] extra)")
    by_team = run("report", str(feedback_file), "--by", "team", "--reader", reader)
    assert by_team.returncode == 0, by_team.stderr
    # T1 (search): success by conversation id, in-process. T2 (support): failure by conversation id from
    # another process. T3 (support): success by trace id in-process (the span links to its trace); the other
    # process's outcome for T3's trace id carries no link, so it names no task and is not counted.
    assert (
        "late outcomes: 4 (record_outcome after the task): 3 counted with their tasks, 1 not counted" in by_team.stdout
    )
    rows = table(by_team.stdout, KPI)
    # tasks successes tokens/success waste% cost/success top_waste_kind: 120 tokens per ticket
    assert rows["search"][:3] == ["1", "1", "120"]
    assert rows["support"][:3] == ["2", "1", "240"]
    plain = run("report", str(feedback_file), "--reader", reader)
    assert plain.returncode == 0, plain.stderr
    # runs successes failures calls tokens waste waste% cost tokens/success
    assert table(plain.stdout, "Waste by task")["answer-ticket"][:5] == ["3", "2", "1", "3", "360"]


def test_a_late_outcome_for_a_conversation_counts_once_for_the_task_and_its_root(tmp_path: Path) -> None:
    """The processor's root holds the task: the late success goes to both rows of the task table (each is its
    own scope), once to the totals and to the group of the root (the outermost unit)."""
    root = task("x", "ads", 1, 500, 100, 50, 0.01, None)
    root[sc.OPERATION_NAME] = "http"
    nested = {**task("triage", "ads", 1, 500, 100, 50, 0.01, None), sc.CONVERSATION_ID: "C9"}
    outcome = {"team": "ops", sc.OUTCOME: "success", sc.CONVERSATION_ID: "C9"}
    lines = [
        json.dumps(request(span("A", 2, 1, "invoke_workflow triage", 10, 90, nested))),
        json.dumps(request(span("A", 1, None, "POST /ask", 0, 100, root))),
        json.dumps(request(span("B", 1, None, "record_outcome", 200, 201, outcome))),
    ]
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = read_report(path, by="team")
    total = report.tasks()
    assert (total.tasks, total.successes, total.tokens_per_success) == (1, 1, 600)
    assert [(name, t.tasks, t.successes) for name, t, _ in report.by_group()] == [("ads", 1, 1)]
    assert {name: t.successes for name, t in report.by_task.items()} == {"triage": 1, "POST /ask": 1}
    assert (report.late_outcomes, report.late_unmatched) == (1, 0)


def test_gzipped_files_and_a_directory_of_rotated_files_read_like_one_file(tmp_path: Path) -> None:
    lines = hand_written_lines()
    whole = tmp_path / "whole.jsonl"
    whole.write_text("\n".join(lines) + "\n")
    rotated = tmp_path / "otelcol"
    rotated.mkdir()
    # What the Collector's file exporter leaves: backups named by rotation time, the live file, here gzip'd
    # by logrotate (the name does not matter: gzip is detected by its first bytes); a hidden file is skipped.
    (rotated / "tokenkpi-spans-2026-01-05T10-00-00.000.jsonl").write_text("\n".join(lines[:2]) + "\n")
    with gzip.open(rotated / "tokenkpi-spans-2026-01-05T11-00-00.000.jsonl.gz", "wt") as out:
        out.write("\n".join(lines[2:4]) + "\n")
    with gzip.open(rotated / "tokenkpi-spans.jsonl", "wt") as out:
        out.write("\n".join(lines[4:]) + "\n")
    (rotated / ".tokenkpi-spans.jsonl.swp").write_text("not json\n")
    one = run("report", str(whole))
    many = run("report", str(rotated))
    assert one.returncode == many.returncode == 0, many.stderr
    assert f"{rotated} (3 files): 15 spans in 6 lines; 7 model calls, 5 tasks" in many.stdout
    assert many.stdout.split("\n", 1)[1] == one.stdout.split("\n", 1)[1]  # every table the same
    files = run("report", *sorted(map(str, rotated.iterdir())))
    assert files.returncode == 1  # the hidden file, named on the command line, is read: not JSON
    assert "skipped malformed line: not JSON" in files.stderr


def test_a_truncated_gzip_keeps_what_was_read_and_fails_the_exit_status(tmp_path: Path) -> None:
    data = gzip.compress(("\n".join(hand_written_lines()) + "\n").encode())
    path = tmp_path / "spans.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    done = run("report", str(path))
    assert done.returncode == 1
    assert "skipped malformed line: the file breaks off after line" in done.stderr
    assert "spans in" in done.stdout


def test_paths_that_cannot_be_read_are_clear_errors(tmp_path: Path) -> None:
    missing = run("report", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and f"no such file: {tmp_path / 'nope.jsonl'}" in missing.stderr
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    done = run("report", str(empty))
    assert done.returncode == 2 and "is a directory with no span files in it" in done.stderr
    zstd = tmp_path / "spans.jsonl.zst"
    zstd.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 16)
    done = run("report", str(zstd))
    assert done.returncode == 2 and "zstd-compressed" in done.stderr


@pytest.mark.skipif("msgspec" not in readers(), reason="msgspec is not installed (the [fast] extra)")
def test_both_readers_give_the_same_report_on_odd_input(tmp_path: Path) -> None:
    """Lines the fast reader hands to the standard one (proto field names, base64 ids, numbers as strings or
    doubles, other signals, broken lines) and lines it reads itself give one and the same report."""
    lines = hand_written_lines()
    odd = [
        # intValue as a JSON number, doubleValue "NaN", a string where a number belongs, an array --by value
        json.dumps(
            request(
                span(
                    "E",
                    9,
                    None,
                    "chat odd",
                    1,
                    2,
                    {sc.OPERATION_NAME: "chat", sc.REQUEST_MODEL: "odd", sc.WASTE_TOKENS: 5, "team": "ml"},
                )
            )
        )
        .replace('{"intValue": "5"}', '{"intValue": 5}')
        .replace('"stringValue": "ml"', '"arrayValue": {"values": [{"stringValue": "ml"}, {"intValue": "2"}]}'),
        json.dumps(
            request(span("E", 10, None, "chat nan", 1, 2, {sc.OPERATION_NAME: "chat", sc.COST_USD: 1.5}))
        ).replace("1.5", '"NaN"'),
        json.dumps(
            request(span("E", 11, None, "chat str", 1, 2, {sc.OPERATION_NAME: "chat", sc.WASTE_TOKENS: 7}))
        ).replace('{"intValue": "7"}', '{"stringValue": "7"}'),
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "no attributes"}, 3]}]}]}',  # not read, not checked
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "tokenkpi.x", "value": '
        '{"intValue": "x"}}]}]}]}]}',  # ours, unwanted key, bad int: no problem (only wanted values are read)
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "tokenkpi.waste.tokens", "value": '
        '{"intValue": "1.5"}}]}]}]}]}',  # a wanted value that is no integer: malformed
        "[1, 2]",
        "   ",
    ]
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join(lines + odd) + "\n")
    outputs = {}
    for reader in ("python", "msgspec"):
        done = run("report", str(path), "--by", "team", "--reader", reader)
        plain = run("report", str(path), "--reader", reader)
        outputs[reader] = (done.returncode, done.stdout, done.stderr, plain.stdout)
    assert outputs["python"] == outputs["msgspec"]
    code, by_team, errors, plain = outputs["python"]
    assert code == 1
    assert errors.count("skipped malformed line") == 2
    assert ":12: skipped malformed line: intValue '1.5' is not an integer" in errors
    assert ":13: skipped malformed line: not a JSON object" in errors
    assert table(by_team, "Tokens per success by team (best first; groups without a success last)")["ml,2"]
    assert table(plain, "Waste by model")["odd"][:7] == ["1", "0", "0", "0", "0", "5", "-"]


def test_the_reader_is_chosen_and_a_missing_msgspec_is_named(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(hand_written_lines()) + "\n")
    from otel_tokenkpi import cli

    monkeypatch.setattr("otel_tokenkpi.report.readers", lambda: {"python": "stdlib"})
    assert cli.main(["report", str(path), "--reader", "msgspec"]) == 2
    assert cli.main(["report", str(path)]) == 0  # auto: the standard reader


@pytest.mark.slow
def test_a_copy_of_the_demo_file_in_a_directory_reports_twice_the_demo(loaded_data, tmp_path: Path) -> None:
    from otel_tokenkpi.cli import main

    folder = tmp_path / "spans"
    folder.mkdir()
    assert main(["demo", "--out", str(folder / "a.jsonl")]) == 0
    shutil.copy(folder / "a.jsonl", folder / "b.jsonl")
    report = read_report(folder, by="team")
    ((team, totals, calls),) = report.by_group()
    assert (team, totals.tasks, totals.successes, totals.tokens, calls.calls) == ("travel", 2, 2, 2 * 6803, 12)


@pytest.mark.skipif("msgspec" not in readers(), reason="msgspec is not installed (the [fast] extra)")
def test_the_fast_reader_finds_our_spans_among_others_in_every_kind_of_scope(tmp_path: Path) -> None:
    """A scope that never mentions tokenkpi. is only counted; one where most spans are not ours (an HTTP
    server's) is searched span by span; one where most are ours is decoded whole. The same scope switches
    between the last two from line to line: every model call is still found, once."""

    def http(number: int) -> dict:
        return span("E", number, None, "GET /items", 1, 2, {"http.route": "/items", "http.status_code": 200})

    def model_call(number: int, tokens: int) -> dict:
        return span(
            "E",
            number,
            None,
            "chat m",
            1,
            2,
            {sc.OPERATION_NAME: "chat", sc.USAGE_INPUT_TOKENS: tokens, sc.WASTE_TOKENS: 1},
        )

    def line(*scopes: tuple[str, list[dict]]) -> str:
        return json.dumps(
            {
                "resourceSpans": [
                    {
                        "resource": {"attributes": []},
                        "scopeSpans": [{"scope": {"name": n}, "spans": s} for n, s in scopes],
                    }
                ]
            }
        )

    lines = [
        line(("db", [http(1), http(2)]), ("app", [model_call(3, 5), http(4), http(5), http(6)])),  # app: sparse
        line(("app", [model_call(7, 11), model_call(8, 13), http(9)])),  # app: mostly ours now
        line(("app", [model_call(10, 17), http(11)]), ("db", [])),  # and back
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    for reader in ("python", "msgspec"):
        report = read_report(path, reader=reader)
        totals = (report.spans, report.calls.calls, report.calls.input_tokens, report.calls.waste_tokens)
        assert totals == (11, 4, 46, 4), reader


def test_memory_is_a_window_and_what_left_it_still_places_late_outcomes(
    feedback_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a window of 50 traces most roots and conversations go to the spill files; the report is the
    same, to the digit: nested tasks, late outcomes by conversation and by trace link, groups, the costliest
    tasks."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from _span_file import write_span_file

    from otel_tokenkpi import _report_tables as tables
    from otel_tokenkpi import _report_units
    from otel_tokenkpi.report_html import render_html

    def render(report) -> str:
        text = tables.summary(report, "spans") + tables.by_model(report) + tables.by_kind(report)
        return "\n".join(text + tables.by_task(report) + tables.kpi(report, "team")) + render_html(report)

    generated = tmp_path / "fleet.jsonl"
    with open(generated, "w", encoding="utf-8") as out:
        expected = write_span_file(out, 6000, seed=3, unfiltered=True)
    assert expected.late_outcomes > 0
    for path in (generated, feedback_file):
        whole = read_report(path, by="team")
        monkeypatch.setattr(_report_units, "WINDOW", 50)
        windowed = read_report(path, by="team")
        monkeypatch.undo()
        if path == generated:
            assert windowed._units._spilled_conversations.entries > 100
            assert windowed._units._spilled_roots.entries > 100
        assert render(windowed) == render(whole)
        assert (windowed.late_outcomes, windowed.late_unmatched) == (whole.late_outcomes, whole.late_unmatched)
        assert [(t.trace_id, t.late_outcomes) for t in windowed.top_tasks()] == [
            (t.trace_id, t.late_outcomes) for t in whole.top_tasks()
        ]
    tasks = read_report(generated, by="team").tasks()
    assert (tasks.tasks, tasks.successes, tasks.failures) == (expected.tasks, expected.successes, expected.failures)
