"""Reproduce ``docs/report-html.png``: ``otel-tokenkpi report --html`` of the demo's spans in headless Chromium.

Runs ``otel-tokenkpi demo --out`` twice (the openai and the anthropic agent, so the page compares two models),
writes the HTML report ``--by team``, and screenshots its top (KPIs, what to fix first, tokens per success,
waste by kind and model) with Debian's Chromium, no driver needed; then quantizes the PNG to a small palette
with ImageMagick when ``convert`` is the real one::

    apt-get install -y chromium imagemagick
    .venv/bin/python docs/screenshot_report.py [--out docs/report-html.png]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def otel_tokenkpi(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "otel_tokenkpi", *args], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "report-html.png")
    parser.add_argument("--size", default="1000,1900", help="window size WIDTH,HEIGHT in CSS pixels")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs Debian's chromium: apt-get install -y chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as work:
        spans, page = Path(work) / "demo.jsonl", Path(work) / "report.html"
        otel_tokenkpi("demo", "--out", str(spans))
        otel_tokenkpi("demo", "--provider", "anthropic", "--out", str(spans))
        otel_tokenkpi("report", str(spans), "--by", "team", "--html", str(page))
        shot = Path(work) / "shot.png"
        subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={Path(work) / 'profile'}",
                f"--window-size={args.size}",
                f"--screenshot={shot}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
        convert = shutil.which("convert")
        quantized = Path(work) / "small.png"
        if convert and subprocess.run([convert, "-version"], capture_output=True).returncode == 0:
            subprocess.run([convert, str(shot), "-colors", "64", "-strip", f"PNG8:{quantized}"], check=True)
            shot = quantized
        shutil.copyfile(shot, args.out)
    print(f"{args.out}: {args.out.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
