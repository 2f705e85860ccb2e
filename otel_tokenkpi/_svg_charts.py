"""Inline SVG charts for the HTML report: horizontal bars, stacked bars, stacked columns over time.

Plain SVG elements with ``<title>`` tooltips, sized with a viewBox so they scale with the page; no script,
no external font or style. Every number a bar stands for is also in a table beside it (and in the
tooltip), so the page reads without the charts too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

__all__ = ["bars", "columns", "legend", "stacked_bars"]

ROW = 26  # px per bar row
LABEL_W = 190  # px for the row labels
VALUE_W = 110  # px for the value after a bar


def _fmt(value: float) -> str:
    if value >= 10_000_000:
        return f"{value / 1e6:,.0f}M"
    if value >= 100_000:
        return f"{value / 1e3:,.0f}k"
    if value >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _label(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def bars(
    rows: Sequence[tuple[str, float, str]],
    *,
    label: str,
    color: str = "#4c78a8",
    colors: Sequence[str] = (),
    width: int = 720,
    fmt: Callable[[float], str] = _fmt,
) -> str:
    """One horizontal bar per (label, value, tooltip), on one scale; ``colors`` per row, else ``color``."""
    top = max((value for _, value, _ in rows), default=0) or 1
    span = width - LABEL_W - VALUE_W
    body = []
    for i, (name, value, tip) in enumerate(rows):
        y = i * ROW
        w = max(value / top * span, 0)
        fill = colors[i] if i < len(colors) else color
        body.append(
            f'<text x="{LABEL_W - 8}" y="{y + 17}" text-anchor="end" class="lbl">{escape(_label(name))}</text>'
            f'<rect x="{LABEL_W}" y="{y + 4}" width="{w:.1f}" height="{ROW - 8}" fill="{fill}">'
            f"<title>{escape(tip)}</title></rect>"
            f'<text x="{LABEL_W + w + 6:.1f}" y="{y + 17}" class="val">{escape(fmt(value))}</text>'
        )
    return _svg(width, max(len(rows), 1) * ROW, label, body)


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[float], str]],
    *,
    names: Sequence[str],
    colors: Sequence[str],
    label: str,
    width: int = 720,
) -> str:
    """One horizontal bar per row, split into ``names`` segments (``colors``), the total written after it."""
    top = max((sum(values) for _, values, _ in rows), default=0) or 1
    span = width - LABEL_W - VALUE_W - 50  # room for "12,345 (61.2%)"
    body = []
    for i, (name, values, tip) in enumerate(rows):
        y = i * ROW
        x = float(LABEL_W)
        body.append(f'<text x="{LABEL_W - 8}" y="{y + 17}" text-anchor="end" class="lbl">{escape(_label(name))}</text>')
        for part, value, color in zip(names, values, colors, strict=False):
            w = value / top * span
            if w <= 0:
                continue
            body.append(
                f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{ROW - 8}" fill="{color}">'
                f"<title>{escape(f'{name}: {part} {value:,.0f} tokens')}</title></rect>"
            )
            x += w
        body.append(f'<text x="{x + 6:.1f}" y="{y + 17}" class="val">{escape(tip)}</text>')
    return _svg(width, max(len(rows), 1) * ROW, label, body)


def columns(
    buckets: Sequence[tuple[str, Sequence[float]]],
    *,
    names: Sequence[str],
    colors: Sequence[str],
    label: str,
    width: int = 720,
    height: int = 220,
) -> str:
    """Stacked columns, one per (x label, values per ``names``), with a y axis in tokens."""
    left, bottom, top_pad = 64, 34, 10
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    top = max((sum(values) for _, values in buckets), default=0) or 1
    step = plot_w / max(len(buckets), 1)
    bar_w = max(step * 0.8, 1.0)
    body = [
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" class="axis"/>',
        f'<text x="{left - 6}" y="{top_pad + 8}" text-anchor="end" class="tick">{escape(_fmt(top))}</text>',
        f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end" class="tick">0</text>',
    ]
    every = max(1, round(len(buckets) / 8))
    for i, (name, values) in enumerate(buckets):
        x = left + i * step + (step - bar_w) / 2
        y = float(top_pad + plot_h)
        for part, value, color in zip(names, values, colors, strict=False):
            h = value / top * plot_h
            if h <= 0:
                continue
            y -= h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(f'{name}: {part} {value:,.0f} tokens')}</title></rect>"
            )
        if i % every == 0:
            middle = x + bar_w / 2
            body.append(
                f'<text x="{middle:.1f}" y="{height - 12}" text-anchor="middle" class="tick">{escape(name)}</text>'
            )
    return _svg(width, height, label, body)


def legend(names: Sequence[str], colors: Sequence[str]) -> str:
    items = "".join(
        f'<span class="key"><span class="swatch" style="background:{color}"></span>{escape(name)}</span>'
        for name, color in zip(names, colors, strict=True)
    )
    return f'<div class="legend">{items}</div>'
