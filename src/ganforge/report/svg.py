"""The report's charts, drawn as inline SVG with no library: line charts over training steps and interval
charts (means with error bars). Both scale with the page and carry their title for screen readers.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ganforge.report.page import attributes

MARKER_MAX_POINTS = 30  # series with at most this many points also get a dot per value (sparse metrics like FID)
CHART_WIDTH, CHART_HEIGHT = 760, 300  # SVG user units; the chart scales down with the page
SMALL_CHART_WIDTH = 540  # the other metrics, two side by side
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
INTERVAL_ROW_HEIGHT = 28  # SVG user units per row of an interval chart


@dataclass
class Series:
    """One line of a chart: values ``ys`` at steps ``xs`` (non-finite values break the line)."""

    label: str
    xs: list[float]
    ys: list[float]
    colour: str
    dash: str | None = None  # SVG stroke-dasharray, None = solid


def nice_ticks(low: float, high: float, target: int = 5) -> tuple[float, float, list[float]]:
    """Bounds covering [low, high] that fall on ticks spaced 1, 2 or 5 x 10^k, and the ticks."""
    if not high > low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    ticks = [first + index * step for index in range(round((last - first) / step) + 1)]
    return first, last, ticks


def format_tick(value: float, step: float) -> str:
    """A tick label with as many decimals as the tick spacing needs."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    text = f"{value:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


def line_chart(
    series: Sequence[Series],
    title: str,
    *,
    y_label: str = "",
    x_label: str = "step",
    y_range: tuple[float, float] | None = None,
    guides: Sequence[tuple[float, str]] = (),
    marks: Sequence[tuple[float, str]] = (),
    chart_id: str | None = None,
    legend: bool = True,
    width: int = CHART_WIDTH,
    height: int = CHART_HEIGHT,
) -> str:
    """An SVG line chart: axes with ticks, one polyline per finite stretch of each series, a legend.

    ``y_range`` fixes the y axis (else it covers the data); ``guides`` are dashed horizontal reference
    lines (value, label); ``marks`` are dashed vertical lines at steps (step, label), e.g. rollbacks;
    ``legend=False`` leaves out the legend (a lone series the title names).
    """
    finite = [(x, y) for s in series for x, y in zip(s.xs, s.ys) if math.isfinite(x) and math.isfinite(y)]
    legend_chars = max((len(s.label) for s in series), default=0)
    legend_width = min(34, legend_chars) * 7 + 40 if series and legend else 0
    left, top, right, bottom = 64 if y_label else 52, 36, width - legend_width - 14, height - 44
    xs = [x for x, _ in finite] or [0.0, 1.0]
    x_low, x_high, x_ticks = nice_ticks(min(0.0, min(xs)), max(xs))
    if y_range is not None:
        y_low, y_high, y_ticks = nice_ticks(*y_range)
    else:
        ys = [y for _, y in finite] + [value for value, _ in guides]
        y_low, y_high, y_ticks = nice_ticks(min(ys, default=0.0), max(ys, default=1.0))

    def px(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * (right - left)

    def py(y: float) -> float:
        return bottom - (y - y_low) / (y_high - y_low) * (bottom - top)

    esc = html.escape
    parts = _svg_opening("chart", chart_id, title, width, height, title_x=left)
    x_step = x_ticks[1] - x_ticks[0]
    y_step = y_ticks[1] - y_ticks[0]
    for tick in y_ticks:
        y = py(tick)
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{format_tick(tick, y_step)}</text>")
    for tick in x_ticks:
        x = px(tick)
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">'
                     f"{format_tick(tick, x_step)}</text>")
    parts.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>')
    parts.append(f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>')
    parts.append(f'<text class="axis-label" x="{(left + right) / 2:.1f}" y="{height - 8}" text-anchor="middle">'
                 f"{esc(x_label)}</text>")
    if y_label:
        parts.append(f'<text class="axis-label" transform="translate(16 {(top + bottom) / 2:.1f}) rotate(-90)" '
                     f'text-anchor="middle">{esc(y_label)}</text>')
    for value, label in guides:
        if y_low <= value <= y_high:
            y = py(value)
            parts.append(f'<line class="guide" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
            parts.append(f'<text class="guide-label" x="{right - 4}" y="{y - 4:.1f}" text-anchor="end">'
                         f"{esc(label)}</text>")
    for step, label in marks:
        if x_low <= step <= x_high:
            x = px(step)
            parts.append(f'<line class="mark" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>')
            parts.append(f'<text class="mark-label" x="{x + 3:.1f}" y="{top + 10}">{esc(label)}</text>')
    for s in series:
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        for stretch in _finite_stretches(s.xs, s.ys):
            points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in stretch)
            parts.append(f'<polyline class="series" data-label="{esc(s.label)}" points="{points}" fill="none" '
                         f'stroke="{s.colour}" stroke-width="1.8" stroke-linejoin="round"{dash}>'
                         f'<title>{esc(s.label)}</title></polyline>')
        if len(s.xs) <= MARKER_MAX_POINTS:
            for x, y in zip(s.xs, s.ys):
                if math.isfinite(x) and math.isfinite(y):
                    parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.6" fill="{s.colour}"/>')
    legend_x = right + 16
    for index, s in enumerate(series if legend else ()):
        y = top + 6 + index * 18
        label = s.label if len(s.label) <= 34 else s.label[:33] + "\u2026"
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        parts.append(f'<g class="legend-entry"><line x1="{legend_x}" y1="{y}" x2="{legend_x + 24}" y2="{y}" '
                     f'stroke="{s.colour}" stroke-width="2.4"{dash}/>'
                     f'<text class="legend" x="{legend_x + 30}" y="{y + 4}">{esc(label)}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts)


def _svg_opening(css_class: str, chart_id: str | None, title: str, width: float, height: float,
                 title_x: float) -> list[str]:
    """The first elements of a chart: the svg tag (labelled by its title for screen readers) and the title."""
    ids = attributes(id=chart_id, aria_labelledby=f"{chart_id}-title" if chart_id else None)
    title_ids = attributes(id=f"{chart_id}-title" if chart_id else None)
    return [f'<svg class="{css_class}"{ids} viewBox="0 0 {width} {height}" role="img">',
            f"<title{title_ids}>{html.escape(title)}</title>",
            f'<text class="chart-title" x="{title_x}" y="20">{html.escape(title)}</text>']


def _finite_stretches(xs: Sequence[float], ys: Sequence[float]) -> list[list[tuple[float, float]]]:
    stretches: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys):
        if math.isfinite(x) and math.isfinite(y):
            stretches[-1].append((x, y))
        elif stretches[-1]:
            stretches.append([])
    return [stretch for stretch in stretches if stretch]


@dataclass
class Interval:
    """One row of an interval chart: a mean with a bar from ``low`` to ``high`` and the values it summarizes."""

    label: str
    mean: float
    low: float  # e.g. mean - std
    high: float  # e.g. mean + std
    values: list[float]  # each one drawn as a small dot (one per seed)
    colour: str
    tooltip: str = ""


def interval_chart(
    rows: Sequence[Interval],
    title: str,
    *,
    x_label: str = "",
    guides: Sequence[tuple[float, str]] = (),
    chart_id: str | None = None,
    width: int = CHART_WIDTH,
) -> str:
    """An SVG chart of means with error bars, one labelled row each (labels stay readable however long):
    a dot at the mean, a capped bar from low to high, a small hollow dot per value, and dashed vertical
    ``guides`` (value, label) such as the real-data floor. Non-finite numbers are left out."""
    esc = html.escape
    numbers = [v for row in rows for v in (row.mean, row.low, row.high, *row.values) if math.isfinite(v)]
    numbers += [value for value, _ in guides if math.isfinite(value)]
    x_low, x_high, ticks = nice_ticks(min(numbers, default=0.0), max(numbers, default=1.0))
    label_chars = min(40, max((len(row.label) for row in rows), default=0))
    left, top, right = 24 + round(label_chars * 7.6), 40, width - 24  # monospace labels of 12 px: ~7.2 px a character
    bottom = top + max(1, len(rows)) * INTERVAL_ROW_HEIGHT
    height = bottom + (48 if x_label else 30)

    def px(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * (right - left)

    parts = _svg_opening("chart interval-chart", chart_id, title, width, height, title_x=16)
    step = ticks[1] - ticks[0]
    for tick in ticks:
        x = px(tick)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">'
                     f"{format_tick(tick, step)}</text>")
    parts.append(f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>')
    if x_label:
        parts.append(f'<text class="axis-label" x="{(left + right) / 2:.1f}" y="{height - 8}" '
                     f'text-anchor="middle">{esc(x_label)}</text>')
    for value, label in guides:
        if math.isfinite(value) and x_low <= value <= x_high:
            x = px(value)
            parts.append(f'<line class="guide" x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{bottom}"/>')
            parts.append(f'<text class="guide-label" x="{x:.1f}" y="{top - 10}" text-anchor="middle">'
                         f"{esc(label)}</text>")
    for index, row in enumerate(rows):
        y = top + (index + 0.5) * INTERVAL_ROW_HEIGHT
        label = row.label if len(row.label) <= 40 else row.label[:39] + "\u2026"
        parts.append(f'<g class="interval" data-label="{esc(row.label)}">'
                     f"<title>{esc(row.tooltip or row.label)}</title>")
        parts.append(f'<text class="row-label" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{esc(label)}</text>')
        if math.isfinite(row.low) and math.isfinite(row.high):
            x1, x2 = px(row.low), px(row.high)
            parts.append(f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" stroke="{row.colour}" '
                         'stroke-width="2"/>')
            for x in (x1, x2):
                parts.append(f'<line x1="{x:.1f}" y1="{y - 6:.1f}" x2="{x:.1f}" y2="{y + 6:.1f}" '
                             f'stroke="{row.colour}" stroke-width="2"/>')
        for value in row.values:
            if math.isfinite(value):
                parts.append(f'<circle class="value" cx="{px(value):.1f}" cy="{y:.1f}" r="3" fill="none" '
                             f'stroke="{row.colour}" stroke-opacity="0.7"/>')
        if math.isfinite(row.mean):
            parts.append(f'<circle class="mean" cx="{px(row.mean):.1f}" cy="{y:.1f}" r="5" fill="{row.colour}"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)
