"""Smoke test of ``benchmarks/report_throughput.py --quick``: tiny generated files, every engine once.

Checks that the script runs, that otel-tokenkpi's readers find exactly the generator's totals on every file
(the script exits 1 otherwise), and the shape of its summary; never the timings (those belong to the
benchmark, not to a test).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_run_reads_every_file_exactly(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "report_throughput.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["problems"] == []
    ours = ["python"] + (["msgspec"] if importlib.util.find_spec("msgspec") else [])
    for name in ("fleet", "report", "fleet-quarter", "fleet-quarter.gz"):
        for engine in ours:
            (run,) = [r for r in results["runs"] if r["file"] == name and r["engine"] == engine]
            assert run["spans"] >= 1_000 and run["calls"] > 0 and run["late_outcomes"] > 0
    summary = results["summary"]
    assert summary["target"].endswith("(target 200,000)")
    assert {"parse:json", "python"} <= set(summary["slice (100k fleet spans), CPU s"])
    # The reader this change replaced ran too, from git, when the checkout has that commit.
    has_previous = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", "c154935"], capture_output=True)
    if has_previous.returncode == 0:
        assert any(r["engine"].startswith("previous:") for r in results["runs"])
    # No generated file is left behind.
    assert "generating in " in done.stdout
    work = Path(done.stdout.split("generating in ", 1)[1].split()[0])
    assert not work.exists()
