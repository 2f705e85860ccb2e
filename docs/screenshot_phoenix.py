"""Reproduce ``docs/phoenix-trace.png``: an instrumented agent's trace in Arize Phoenix's UI.

Starts a real ``phoenix serve`` on free local ports (from ``.venv-phoenix``, which ``bash tests/run.sh``
creates; or the interpreter named by ``TOKENKPI_PHOENIX_PYTHON``), runs the agent of the end-to-end
test (``tests/_phoenix_agent.py``: the real openai SDK against the embedded fake server, a duplicate
tool call) with ``otel_tokenkpi.instrument()`` exporting over OTLP/HTTP, opens the model call that
repeated a tool call in headless Chromium, shows its ``tokenkpi.*`` attributes and saves a PNG.
Phoenix is stopped afterwards. Needs Debian's Chromium and the ``playwright`` package (its browser
download is not needed: it drives ``/usr/bin/chromium``)::

    apt-get install -y chromium
    .venv/bin/pip install playwright
    .venv/bin/python docs/screenshot_phoenix.py [--out docs/phoenix-trace.png]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _phoenix_support import PYTHON_ENV, PhoenixServer, run_agent  # noqa: E402

PROJECT = "travel-agent"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def take_screenshot(url: str, out: Path, chromium: str) -> None:
    """Open the span, switch to its Attributes tab, filter to ``tokenkpi`` and wrap long keys."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1300})
            page.goto(url)  # Phoenix redirects /redirects/spans/{span id} to the span in its trace
            page.get_by_role("button", name="Collapse side navigation").click()
            page.get_by_role("tab", name="Attributes").click()
            page.get_by_role("button", name="Search JSON keys and values").click()
            page.keyboard.type("tokenkpi")
            page.get_by_role("button", name="Wrap each row over as many lines as it needs").last.click()
            page.get_by_text("tokenkpi.waste.tokens", exact=True).wait_for()
            page.wait_for_timeout(500)
            page.screenshot(path=str(out))
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "phoenix-trace.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    python = os.environ.get(PYTHON_ENV) or str(REPO / ".venv-phoenix" / "bin" / "python")
    if not Path(python).exists():
        print(f"no Phoenix interpreter at {python}: run `bash tests/run.sh` or set {PYTHON_ENV}", file=sys.stderr)
        return 1
    with PhoenixServer(python) as phoenix:
        result = run_agent(
            {
                "OTEL_SERVICE_NAME": PROJECT,
                "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix.url,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={PROJECT}",
            }
        )
        # Wait until Phoenix has stored the whole trace, then show the call that repeated a tool call.
        phoenix.trace_spans(PROJECT, result["trace_id"], expected=len(result["spans"]))
        (span,) = [s for s in result["spans"] if s["attributes"].get("tokenkpi.tool_calls.duplicate_count")]
        take_screenshot(f"{phoenix.url}/redirects/spans/{span['span_id']}", args.out, args.chromium)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
