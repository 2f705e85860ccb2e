"""The report's fast path, checked against the plain way: lines split out of one reused buffer (against
``bytes.splitlines``), and the fast reader's key union, which decodes attributes as structs tagged by their
key and learns keys as they appear (against the standard reader, record by record)."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import random
import re
from pathlib import Path

import pytest
from test_report import call, hand_written_lines, span, task

from otel_tokenkpi import _span_files
from otel_tokenkpi import semconv as sc
from otel_tokenkpi._otlp_json import FLOAT, INT, STR, read_line
from otel_tokenkpi.report import WANTED, read_report, readers

needs_msgspec = pytest.mark.skipif("msgspec" not in readers(), reason="msgspec is not installed (the [fast] extra)")


def test_lines_come_out_exactly_whatever_the_buffer_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines shorter and far longer than the buffer, blank lines, a last line without its newline."""
    monkeypatch.setattr(_span_files, "READ_BUFFER", 16)
    for seed in range(500):
        rng = random.Random(seed)
        pieces = [b"a" * rng.randint(0, 70), b"\n", b"xy\n", b"\n\n", b"{}" * rng.randint(0, 40) + b"\n"]
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert [bytes(line) for line in _span_files._split(io.BytesIO(data))] == data.splitlines(keepends=True)


@pytest.mark.parametrize("reader", ["python", pytest.param("msgspec", marks=needs_msgspec)])
def test_a_buffer_smaller_than_a_line_gives_the_same_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    plain = tmp_path / "spans.jsonl"
    plain.write_text("\n".join(hand_written_lines()) + "\n")
    zipped = tmp_path / "spans.jsonl.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))

    def totals(path: Path) -> tuple:
        report = read_report(path, by="team", reader=reader)
        tasks = report.tasks()
        return report.lines, report.spans, report.calls.calls, report.calls.ints, tasks.tasks, tasks.successes

    expected = totals(plain)
    assert expected[:3] == (6, 15, 7)
    monkeypatch.setattr(_span_files, "READ_BUFFER", 64)  # every line is longer
    assert totals(plain) == expected
    assert totals(zipped) == expected


def _line(scopes: dict[str, list[dict]]) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "app"}}]},
                    "scopeSpans": [{"scope": {"name": name}, "spans": spans} for name, spans in scopes.items()],
                }
            ]
        }
    ).encode()


def _model_call(number: int, extra: dict) -> dict:
    return span("E", number, None, "chat m", number, number + 1, {**call("ml", "gpt-4o", number, 7, 0.01), **extra})


def _lines() -> list[bytes]:
    """Six lines. The model client scope brings a new custom key on lines 1, 4 and 6; the task scope has a
    span that is ours only by an unread ``tokenkpi.*`` key, and a span that is not ours at all."""
    lines = []
    for number in range(1, 7):
        extra = {f"app.custom_{number}": "x"} if number in (1, 4, 6) else {"app.custom_1": "y"}
        client = [_model_call(10 * number + i, extra) for i in range(3)]
        tasks = [
            span("E", 10 * number + 5, None, "invoke_workflow t", 1, 9, task("t", "ml", 3, 30, 21, 0, 0.03, "success")),
            span("E", 10 * number + 6, None, "execute_tool look", 1, 2, {sc.OPERATION_NAME: "execute_tool"}),
            span("E", 10 * number + 7, None, "chat q", 1, 2, {sc.OPERATION_NAME: "chat", "tokenkpi.context.window": 9}),
        ]
        lines.append(_line({"client": client, "tasks": tasks, "db": [span("E", 99, None, "SELECT", 1, 2, {})]}))
    return lines


@needs_msgspec
def test_the_key_union_learns_keys_and_reads_each_span_as_the_standard_reader_does() -> None:
    from otel_tokenkpi._otlp_fast import FastReader

    wanted = {**WANTED, "team": "any"}
    reader = FastReader(wanted, "team")
    for number, line in enumerate(_lines(), 1):
        fast, plain = reader.read(line), read_line(line, wanted, "team")
        assert fast == plain, number
        assert plain is not None and (plain.total, len(plain.spans)) == (7, 5)
    union = reader._union
    assert {"app.custom_1", "app.custom_4", "app.custom_6", sc.TRACE_LLM_CALLS} <= union._keys
    # Only the lines that brought a new key missed: every other scope was decoded by the union.
    assert union._misses == {"client": 3, "tasks": 1}
    assert reader.fallbacks == 0


@needs_msgspec
def test_past_its_bounds_the_key_union_gives_way_to_the_plain_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    from otel_tokenkpi import _otlp_fast

    monkeypatch.setattr(_otlp_fast._KeyUnion, "MAX_LESSONS", 2)  # learns the first line's keys only
    monkeypatch.setattr(_otlp_fast._KeyUnion, "MAX_MISSES", 2)
    wanted = {**WANTED, "team": "any"}
    reader = _otlp_fast.FastReader(wanted, "team")
    for number, line in enumerate(_lines(), 1):
        assert reader.read(line) == read_line(line, wanted, "team"), number
    union = reader._union
    assert "app.custom_1" in union._keys and "app.custom_4" not in union._keys
    assert union._misses == {"client": 2, "tasks": 1}  # the client scope stopped trying after two
    assert not union.usable("client") and union.usable("tasks")


@needs_msgspec
def test_a_report_of_lines_with_ever_new_keys_is_the_standard_readers(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b"\n".join(_lines()) + b"\n")
    reports = {}
    for reader in ("python", "msgspec"):
        report = read_report(path, by="team", reader=reader)
        tasks = report.tasks()
        reports[reader] = (report.spans, report.calls.calls, report.calls.ints, tasks.tasks, tasks.successes)
    assert reports["python"] == reports["msgspec"]
    assert reports["python"][:2] == (42, 24)


def _random_value(rng: random.Random, kind: str | None, strange: float) -> object:
    """A value of ``kind`` as writers send it, or, with probability ``strange``, any AnyValue shape, valid
    or not (another type, two fields, broken numbers, not an object)."""
    if rng.random() >= strange:
        fitting = {
            INT: [{"intValue": str(rng.randrange(-5, 10**6))}, {"intValue": rng.randrange(10**6)}],
            FLOAT: [{"doubleValue": rng.choice([0.5, 3.0, 3, 1e-6, "NaN", "Infinity"])}, {"intValue": "2"}],
            STR: [{"stringValue": rng.choice(["gpt-4o", "chat", "success", "failure", ""])}],
        }
        return rng.choice(fitting.get(kind or "", [{"stringValue": "v"}, {"intValue": "3"}, {"boolValue": True}]))
    return rng.choice(
        [
            {"stringValue": "7"},
            {"intValue": str(rng.randrange(10**6))},
            {"doubleValue": "NaN"},
            {"boolValue": False},
            {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "2"}]}},
            {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}},
            {},
            {"intValue": "1.5"},  # not an integer
            {"doubleValue": "abc"},  # not a number
            {"boolValue": "yes"},  # not a bool
            {"arrayValue": {"values": [{"intValue": "x"}]}},  # a broken item
            {"stringValue": "s", "intValue": "5"},  # two fields: the string comes first
            {"doubleValue": 2.5, "intValue": "4"},  # two fields: the int comes first
            7,  # not an object
        ]
    )


def _comparable(spans: object) -> str:
    """The records as sorted JSON: a NaN attribute equals a NaN (``nan != nan`` in a plain comparison)."""
    return json.dumps(dataclasses.asdict(spans), sort_keys=True)  # type: ignore[call-overload]


SEEDS = 1000


@needs_msgspec
@pytest.mark.parametrize("taught", [False, True])
def test_the_readers_agree_on_random_attributes(taught: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random spans over a pool of keys (read ones of every kind, unread ``tokenkpi.*`` ones, others) with
    values of every shape: line by line, the fast reader returns what the standard one returns, or raises
    what it raises. Untaught, keys vary from line to line, so the union learns, misses and gives way;
    taught every key and never giving way, every scope whose values fit is read by the key union."""
    from otel_tokenkpi import _otlp_fast
    from otel_tokenkpi._otlp_json import MalformedLine

    wanted = {**WANTED, "team": "any"}
    pool = [*WANTED, "team", "tokenkpi.context.window", "tokenkpi.x", "http.route", "db.system", "app.k"]
    reader = _otlp_fast.FastReader(wanted, "team")
    if taught:
        monkeypatch.setattr(_otlp_fast._KeyUnion, "MAX_MISSES", 10**9)
        reader._union._learn(pool)
    tagged = 0

    def count_tagged(items: list) -> object:
        nonlocal tagged
        tagged += 1
        return _otlp_fast.FastReader._tagged_attributes(reader, items)

    reader._tagged_attributes = count_tagged  # type: ignore[method-assign]
    outcomes = {"equal": 0, "malformed": 0}
    for seed in range(SEEDS):
        rng = random.Random(seed)
        scopes: dict[str, list[dict]] = {}
        for number in range(rng.randint(1, 6)):
            keys = rng.sample(pool, rng.randint(0, 8))
            if not taught and rng.random() < 0.02:
                keys.append(f"app.new_{seed}")
            attrs = [{"key": key, "value": _random_value(rng, wanted.get(key), 0.03)} for key in keys]
            one = span("E", number + 1, rng.choice([None, 77]), "s", 1, 2, {}, error=rng.random() < 0.1)
            one["attributes"] = attrs
            scopes.setdefault(rng.choice(["client", "tasks", "http"]), []).append(one)
        line = _line(scopes)
        try:
            plain = read_line(line, wanted, "team")
        except MalformedLine as exc:
            with pytest.raises(MalformedLine, match=re.escape(str(exc))):
                reader.read(line)
            outcomes["malformed"] += 1
            continue
        assert _comparable(reader.read(line)) == _comparable(plain), seed
        outcomes["equal"] += 1
    assert min(outcomes.values()) >= 50, outcomes  # both sides of the contract were tried
    assert tagged >= (2000 if taught else 150), tagged  # scope decodes read by the key union
