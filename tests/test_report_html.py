"""``otel-tokenkpi report FILE --html OUT.html`` opened in a real headless Chromium (Debian's ``chromium``).

The page is checked as a reader meets it: Chromium loads it from disk with the network features off, its DOM
(``--dump-dom``) holds every section with the right figures, and a screenshot (``--screenshot``) shows the
charts' bars in the waste kinds' colors. Without Chromium the tests skip, except in CI (``CI=true``), where
they fail: ``tests/run.sh`` installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _png import colors, read_png
from test_report import span, task, value

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.cli import main
from otel_tokenkpi.report import read_report
from otel_tokenkpi.report_html import KIND_COLORS, render_html

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAY = 86_400 * 10**9
T0 = 1_767_571_200 * 10**9  # 2026-01-05T00:00:00Z


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    reason = "Chromium is not installed (apt-get install chromium chromium-driver; tests/run.sh does it)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def browse(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )


class Page(HTMLParser):
    """The text of each section (by id), the tags used, and every attribute that could load something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.loads: list[str] = []
        self.sections: dict[str, str] = {}
        self._section = "top"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, found in attrs:
            if name in ("src", "href", "srcset", "poster", "data") or (found and "url(" in found):
                self.loads.append(f"{tag} {name}={found}")
            if tag == "h2" and name == "id" and found:
                self._section = found

    def handle_data(self, data: str) -> None:
        self.sections[self._section] = self.sections.get(self._section, "") + data


def fleet_request(service: str, *spans: dict) -> dict:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}]}]}


def call(team: str, model: str, tokens_in: int, tokens_out: int, cost: float, waste_cost: float, **kinds: int) -> dict:
    attrs = {"team": team, sc.OPERATION_NAME: "chat", sc.REQUEST_MODEL: model}
    attrs |= {sc.USAGE_INPUT_TOKENS: tokens_in, sc.USAGE_OUTPUT_TOKENS: tokens_out, sc.COST_USD: cost}
    attrs |= {key: kinds.get(kind, 0) for kind, key in sc.WASTE_KIND_ATTRIBUTES.items()}
    attrs |= {sc.WASTE_TOKENS: sum(kinds.values()), sc.WASTE_COST_USD: waste_cost}
    return attrs


@pytest.fixture
def two_days(tmp_path: Path) -> Path:
    """Two days of two teams' agents: search re-sends history to gpt-4o uncached; support offers a refund tool
    it never calls; a late outcome arrives for support's second ticket."""
    lines = []
    for day in range(2):
        start = T0 + day * DAY
        search = task("triage", "search", 1, 10_000, 1_000, 8_000, 0.035, "success")
        lines.append(
            fleet_request(
                "search-api",
                span("A", 10 + day, None, "invoke_workflow triage", start, start + 10**9, search),
                span(
                    "A",
                    20 + day,
                    10 + day,
                    "chat gpt-4o",
                    start + 1,
                    start + 9 * 10**8,
                    call("search", "gpt-4o", 10_000, 1_000, 0.035, 0.025, uncached_resent=8_000),
                ),
            )
        )
        helped = "success" if day == 0 else None
        support = task("answer", "support", 1, 2_000, 200, 100, 0.0004, helped, unused=500)
        support[sc.TRACE_UNUSED_TOOL_NAMES] = ("refund",)
        support[sc.CONVERSATION_ID] = f"ticket-{day}"
        lines.append(
            fleet_request(
                "support-bot",
                span("B", 30 + day, None, "invoke_workflow answer", start, start + 10**9, support),
                span(
                    "B",
                    40 + day,
                    30 + day,
                    "chat gpt-4o-mini",
                    start + 1,
                    start + 5 * 10**8,
                    call("support", "gpt-4o-mini", 2_000, 200, 0.0004, 0.00002, truncated_output=100),
                ),
            )
        )
    late = {sc.OUTCOME: "success", sc.CONVERSATION_ID: "ticket-1"}
    lines.append(fleet_request("support-bot", span("C", 50, None, "record_outcome", T0 + 2 * DAY, T0 + 2 * DAY, late)))
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    # test_report's span() writes tuples as strings; the tool names are an array in OTLP.
    text = text.replace(json.dumps(value(("refund",))), '{"arrayValue": {"values": [{"stringValue": "refund"}]}}')
    path = tmp_path / "two-days.jsonl"
    path.write_text(text)
    return path


def test_the_fix_first_list_and_the_tables_hold_the_figures(two_days: Path) -> None:
    page = Page()
    page.feed(render_html(read_report(two_days, by="team"), str(two_days)))
    fixes = page.sections["fix-first"]
    # 8,000 uncached tokens a day on gpt-4o; its waste cost apportioned: $0.025 a day.
    assert "Keep the start of the prompt stable on gpt-4o in search-api" in fixes
    assert "8,000 tokens, about $0.0250 of history re-sent uncached/day (80% of its input tokens)" in fixes
    assert "Stop offering refund to answer" in fixes
    assert "offered on every run (2) and never called: 500 tokens of tool schemas/day" in fixes
    assert "Raise max_tokens (or ask for shorter answers) on gpt-4o-mini in support-bot" in fixes
    assert fixes.index("prompt stable") < fixes.index("refund") < fixes.index("max_tokens")  # by what they save
    groups = page.sections["groups"]
    # support: 2 tasks, 1 success in-band + 1 late, 4,400 tokens; search: 2 tasks, 2 successes, 22,000 tokens.
    assert re.search(r"support\s*2\s*2\s*2,200\s*4\.5%", groups), groups
    assert re.search(r"search\s*2\s*2\s*11,000\s*72\.7%", groups), groups
    assert "1 late outcomes" in page.sections["top"] or "1 late outcome" in page.sections["top"]
    assert "refund (2/2 runs)" in page.sections["unused-tools"]
    assert "01-05 00:00" in page.sections["over-time"] or "2026-01-05" in page.sections["over-time"]


@pytest.mark.slow
def test_chromium_opens_the_demo_report_offline_and_draws_the_charts(loaded_data, tmp_path: Path) -> None:
    spans = tmp_path / "demo.jsonl"
    assert main(["demo", "--out", str(spans)]) == 0
    page = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "otel_tokenkpi", "report", str(spans), "--by", "team", "--html", str(page)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"HTML report written to {page}" in done.stdout

    dom = browse(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    seen = Page()
    seen.feed(dom.stdout)
    assert "script" not in seen.tags and "link" not in seen.tags and "img" not in seen.tags
    assert seen.loads == []  # nothing to fetch: no src, href or url() anywhere
    assert "@import" not in dom.stdout and "@font-face" not in dom.stdout
    assert {"kpis", "fix-first", "groups", "kinds", "models", "over-time", "costliest", "unused-tools"} <= set(
        re.findall(r'id="([a-z-]+)"', dom.stdout)
    )
    # The demo's task: 6,803 tokens for one success; its waste: 5,158 tokens, 75.8 %; book_flight never called.
    assert "6,803" in seen.sections["top"] and "tokens per successful task" in seen.sections["top"]
    assert re.search(r"travel\s*1\s*1\s*6,803\s*75\.8%", seen.sections["groups"])
    assert "Stop offering book_flight to travel-assistant" in seen.sections["fix-first"]
    # gpt-4o-mini caches automatically: the fix is a stable prompt start (the demo's time stamp), not a switch.
    assert "Keep the start of the prompt stable on gpt-4o-mini in tokenkpi-demo" in seen.sections["fix-first"]
    assert re.search(r"uncached re-sent context\s*3,712\s*72\.0%\s*3", seen.sections["kinds"])  # tokens share calls
    assert "book_flight (1/1 runs)" in seen.sections["unused-tools"]

    shot = tmp_path / "shot.png"
    taken = browse(page, f"--screenshot={shot}", "--window-size=1000,2400", "--force-device-scale-factor=1")
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    width, height, _ = read_png(shot)
    assert (width, height) == (1000, 2400)
    found = colors(shot)
    # Bars of every waste kind the demo has, drawn in its color (the smallest, 24 tokens, is ~200 pixels here).
    for kind in ("uncached_resent", "repeated_request", "duplicate_tool_call", "truncated_output"):
        assert found[KIND_COLORS[kind]] > 50, (kind, found.most_common(8))
    assert found["#ffffff"] > width * height // 3  # a page, not a blank or an error screen


@pytest.mark.parametrize(
    ("model", "mode"),
    [("gpt-4o", "automatic"), ("claude-sonnet-4-5", "explicit"), ("gemini-2.5-flash", "automatic"), ("x-1", None)],
)
def test_the_caching_fix_follows_the_models_cache_mode(model: str, mode: str | None) -> None:
    """Automatic caches (OpenAI, Gemini) need a stable prompt start; explicit ones (Claude) need enabling."""
    from otel_tokenkpi._fix_first import _cache_mode

    assert _cache_mode(model) == mode
