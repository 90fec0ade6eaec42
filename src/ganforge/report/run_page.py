"""``ganforge report``: one self-contained HTML page about a run, or comparing several.

The page holds the config, the losses and D's outputs over the steps, any other
logged metric, the timeline of fixed-noise sample grids, the evaluation table
beside the real-data floor, the generator at its last checkpoint (a latent
interpolation strip, or for 2-D data the decision-surface picture) and the
failure signs :mod:`ganforge.train.diagnostics` finds. Charts are inline SVG drawn
here, pictures are embedded as data URIs: the file opens in any browser, with
no network and no server, and can be mailed as it is.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml
from PIL import Image

from ganforge.report.animate import sample_grids
from ganforge.runs.checkpoint import list_checkpoints, read_checkpoint
from ganforge.config.schema import RunConfig
from ganforge.train.diagnostics import COLLAPSE_FRACTION, DIVERSITY_KEY, STARVED_D_FAKE, SURFACE_REAL_RGB, WON_D_LOSS, decision_surface, detect_failure_signs
from ganforge.runs.metrics_log import events, numeric_keys, read_metrics, training_history
from ganforge.errors import GanforgeError

try:  # which way each evaluation metric improves, from the evaluator when this ganforge has one
    from ganforge.evaluation.evaluator import HIGHER_IS_BETTER
except ImportError:  # pragma: no cover
    HIGHER_IS_BETTER = {}
from ganforge.runs.pictures import image_grid
from ganforge.models import build_models
from ganforge.sampling.generator import TrainedGenerator

REPORT_NAME = "report.html"  # written into the run folder when no --out is given
COMPARISON_NAME = "comparison.html"  # the same, in the first run's folder, for several runs
MAX_TIMELINE_FRAMES = 12  # sample grids shown per run; longer runs show this many, evenly spaced, first and last kept
INTERPOLATION_ROWS = 4  # latent walks in the interpolation strip
INTERPOLATION_STEPS = 10  # images per walk, end points included
SURFACE_POINTS = 1000  # generated points drawn on the decision surface (as many as the training previews)
MARKER_MAX_POINTS = 30  # series with at most this many points also get a dot per value (sparse metrics like FID)
CHART_WIDTH, CHART_HEIGHT = 760, 300  # SVG user units; the chart scales down with the page
SMALL_CHART_WIDTH = 540  # the other metrics, two side by side
CORE_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")  # the statistics every log row holds
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
DASHES = (None, "7 4", "2 3", "9 3 2 3")  # one per statistic when colours tell runs apart
METRIC_COLOURS = {"d_loss": PALETTE[0], "g_loss": PALETTE[1], "d_real": PALETTE[2], "d_fake": PALETTE[3]}
METRIC_TITLES = {
    "d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x), real", "d_fake": "D(G(z)), fake",
    "seconds_per_step": "seconds per step", DIVERSITY_KEY: "sample diversity",
}


# --------------------------------------------------------------------------- charts


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
    ids = _attributes(id=chart_id, aria_labelledby=f"{chart_id}-title" if chart_id else None)
    title_ids = _attributes(id=f"{chart_id}-title" if chart_id else None)
    return [f'<svg class="{css_class}"{ids} viewBox="0 0 {width} {height}" role="img">',
            f"<title{title_ids}>{html.escape(title)}</title>",
            f'<text class="chart-title" x="{title_x}" y="20">{html.escape(title)}</text>']


def _attributes(**values: str | None) -> str:
    """' name="value"' for each value given (escaped; underscores in names become dashes)."""
    return "".join(f' {name.replace("_", "-")}="{html.escape(value)}"'
                   for name, value in values.items() if value is not None)


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>' if text else ""


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


INTERVAL_ROW_HEIGHT = 28  # SVG user units per row of an interval chart


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


# --------------------------------------------------------------------------- reading runs


@dataclass
class RunRecord:
    """What the report reads from one run folder."""

    path: Path
    label: str
    config: dict[str, dict[str, Any]] | None  # config.yaml by section; None when absent
    rows: list[dict[str, Any]]  # metrics.jsonl as written (stat and event rows)
    history: list[dict[str, Any]] = field(default_factory=list)  # the stat rows the weights went through
    evaluation: dict[str, Any] | None = None  # eval.json
    grids: list[tuple[int, Path]] = field(default_factory=list)  # (step, samples/step_N.png)

    @property
    def run_config(self) -> RunConfig | None:
        try:
            return RunConfig.from_dict(self.config) if self.config else None
        except (GanforgeError, TypeError, ValueError):
            return None

    @property
    def is_points(self) -> bool:
        return bool(self.config) and self.config.get("model", {}).get("model") == "toy"

    def values(self, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of ``key`` over the history; non-numbers become NaN so lines break there."""
        rows = [row for row in self.history if key in row]
        return [float(row["step"]) for row in rows], [_as_float(row[key]) for row in rows]


def read_run(path: Path, label: str) -> RunRecord:
    if not path.is_dir():
        raise GanforgeError(f"{path} does not exist: pass a run folder written by 'ganforge train'")
    config_path, metrics_path = path / "config.yaml", path / "metrics.jsonl"
    if not config_path.is_file() and not metrics_path.is_file():
        raise GanforgeError(f"{path} is not a run folder (it has no config.yaml or metrics.jsonl): "
                            "pass the --out folder of 'ganforge train'")
    config = None
    if config_path.is_file():
        loaded = yaml.safe_load(config_path.read_text())
        config = loaded if isinstance(loaded, dict) else None
    rows = read_metrics(path)
    evaluation = None
    if (path / "eval.json").is_file():
        try:
            loaded = json.loads((path / "eval.json").read_text())
            evaluation = loaded if isinstance(loaded, dict) else None
        except json.JSONDecodeError:
            evaluation = None
    return RunRecord(path, label, config, rows, training_history(rows), evaluation, sample_grids(path))


def run_labels(paths: Sequence[Path]) -> list[str]:
    """Short distinct names: each folder's name, with parent folders added until they differ."""
    parts = [path.resolve().parts for path in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{'/'.join(p[-1:])} ({index + 1})" for index, p in enumerate(parts)]  # the same folder twice


# --------------------------------------------------------------------------- the page


def write_report(runs: Sequence[Path | str], out: Path | str | None = None) -> Path:
    """Write the HTML report of one run, a comparison of several, or of one experiment folder, and return its path.

    ``out`` defaults to ``RUN/report.html`` for one run and to ``comparison.html`` in the first
    run's folder for several; an existing folder as ``out`` receives ``report.html``.
    """
    paths = [Path(run) for run in runs]
    if not paths:
        raise GanforgeError("report needs at least one run folder")
    from ganforge.experiment import core as experiment  # here, not at the top: the experiment page is drawn with this module's charts

    if len(paths) == 1 and experiment.is_experiment(paths[0]):
        return experiment.write_experiment_report(paths[0], out)
    records = [read_run(path, label) for path, label in zip(paths, run_labels(paths))]
    if out is None:
        out = paths[0] / (REPORT_NAME if len(paths) == 1 else COMPARISON_NAME)
    out = Path(out)
    if out.is_dir():
        out = out / REPORT_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(records), encoding="utf-8")
    return out


SECTIONS = (
    ("warnings", "Warnings"),
    ("config", "Config"),
    ("losses", "Losses"),
    ("d-outputs", "D outputs"),
    ("metrics", "Other metrics"),
    ("samples", "Samples over training"),
    ("interpolation", "Generator at the last checkpoint"),
    ("evaluation", "Evaluation"),
)


def render_report(records: Sequence[RunRecord]) -> str:
    """The whole page as one string."""
    compare = len(records) > 1
    bodies = {
        "warnings": _warnings_section(records),
        "config": _config_section(records),
        "losses": _chart_section(records, [("d_loss", "D loss"), ("g_loss", "G loss")], "losses", "loss",
                                 note="At the equilibrium D = 1/2 the D loss is log 2 = 0.693 "
                                      "(2 log 2 with --d-loss-reduction sum)."),
        "d-outputs": _chart_section(records, [("d_real", "D(x)"), ("d_fake", "D(G(z))")], "d-outputs",
                                    "mean D output", y_range=(0.0, 1.0), guides=[(0.5, "D = 1/2")],
                                    note="Mean probability D gives real samples, D(x), and generated ones, D(G(z)), "
                                         "in each D update. At the equilibrium both are 1/2."),
        "metrics": _metrics_section(records),
        "samples": _samples_section(records),
        "interpolation": _generator_section(records),
        "evaluation": _evaluation_section(records),
    }
    title = "ganforge report: " + (" vs ".join(r.label for r in records) if compare else records[0].label)
    return html_page(title, _summary(records), [(key, name, bodies[key]) for key, name in SECTIONS])


def html_page(title: str, header: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """A self-contained page in the report's style: a header (``header`` is HTML) with links to the sections,
    then one ``<section id=key>`` per (key, heading, HTML body)."""
    esc = html.escape
    nav = "".join(f'<a href="#{key}">{esc(name)}</a>' for key, name, _ in sections)
    parts = "\n".join(f'<section id="{key}"><h2>{esc(name)}</h2>\n{body}\n</section>' for key, name, body in sections)
    generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header><div>
<h1>{esc(title)}</h1>
<p class="generated">generated {esc(generated)} by ganforge</p>
{header}
<nav>{nav}</nav>
</div></header>
<main>
{parts}
</main>
</body>
</html>
"""


def _summary(records: Sequence[RunRecord]) -> str:
    esc = html.escape
    cards = []
    for index, record in enumerate(records):
        train = (record.config or {}).get("train", {})
        model = (record.config or {}).get("model", {})
        data = (record.config or {}).get("data", {})
        last = record.history[-1] if record.history else {}
        facts = [
            ("model", f"{model.get('model', '?')} on {data.get('data', '?')}"),
            ("step", f"{last.get('step', 0)} of {train.get('steps') or '?'}"),
            ("loss", str(train.get("loss", "?"))),
            ("sample grids", str(len(record.grids))),
            ("checkpoints", str(len(list_checkpoints(record.path)))),
        ]
        if "seconds_per_step" in last:
            speeds = [row["seconds_per_step"] for row in record.history[1:] or record.history
                      if _finite(row.get("seconds_per_step"))]
            if speeds:
                facts.append(("seconds per step", f"{sorted(speeds)[len(speeds) // 2]:.3g} (median)"))
        colour = PALETTE[index % len(PALETTE)] if len(records) > 1 else "#444"
        rows = "".join(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in facts)
        cards.append(f'<div class="card" style="border-top-color: {colour}"><h3>{esc(record.label)}</h3>'
                     f'<p class="path">{esc(str(record.path.resolve()))}</p><dl>{rows}</dl></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _warnings_section(records: Sequence[RunRecord]) -> str:
    esc = html.escape
    items = []
    for record in records:
        prefix = f"<b>{esc(record.label)}</b>: " if len(records) > 1 else ""
        if not record.rows:
            items.append(f'<li class="warning">{prefix}no metrics.jsonl rows: the run logged nothing yet</li>')
        for sign in detect_failure_signs(record.rows, record.run_config):
            items.append(f'<li class="warning" data-kind="{esc(sign.kind)}">{prefix}{esc(sign.message)}</li>')
        for event in events(record.rows):
            details = ", ".join(f"{key} {value}" for key, value in event.items() if key not in ("step", "event"))
            items.append(f'<li class="event">{prefix}{esc(str(event["event"]))} at step {esc(str(event["step"]))}'
                         f'{": " + esc(details) if details else ""}</li>')
    checks = (f"Checked: the generator starved (D(G(z)) below {STARVED_D_FAKE}), the discriminator won "
              f"(D loss below {WON_D_LOSS}), each for many log rows in a row, and mode collapse (sample "
              f"diversity below {COLLAPSE_FRACTION:.0%} of its peak, where the run logs <code>{DIVERSITY_KEY}</code>).")
    if not items:
        return f'<p class="ok">No known failure signs.</p><p class="note">{checks}</p>'
    return f'<ul class="warnings">{"".join(items)}</ul><p class="note">{checks}</p>'


def _config_section(records: Sequence[RunRecord]) -> str:
    esc = html.escape
    flat = [_flatten_config(record.config) for record in records]
    keys: dict[tuple[str, str], None] = {}
    for values in flat:
        for key in values:
            keys.setdefault(key)
    if not keys:
        return '<p class="empty">No config.yaml in the run folder.</p>'
    if len(records) == 1:  # each section as a grid of key = value cells
        groups = []
        for section in dict.fromkeys(section for section, _ in keys):
            cells = "".join(f'<div><dt>{esc(key)}</dt><dd>{esc(_show(flat[0][(name, key)]))}</dd></div>'
                            for name, key in keys if name == section)
            groups.append(f'<h3>{esc(section or "other")}</h3><dl class="config">{cells}</dl>')
        return "".join(groups)
    missing = object()
    differs = [key for key in keys if len({_show(values.get(key, missing)) for values in flat}) > 1]
    same = [key for key in keys if key not in differs]
    head = "".join(f"<th>{esc(record.label)}</th>" for record in records)
    rows = []
    for key in differs + same:
        cells = "".join(f"<td>{esc(_show(values[key])) if key in values else '&mdash;'}</td>" for values in flat)
        rows.append(f"<tr{_attributes(**{'class': 'differs' if key in differs else None})}>"
                    f'<td class="section">{esc(key[0])}</td><th scope="row">{esc(key[1])}</th>{cells}</tr>')
    note = (f'<p class="note">{len(differs)} key{"s" if len(differs) != 1 else ""} differ (highlighted, first).</p>')
    return (f'{note}<table class="config"><thead><tr><th>section</th><th>key</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _flatten_config(config: dict[str, Any] | None) -> dict[tuple[str, str], Any]:
    flat: dict[tuple[str, str], Any] = {}
    for section, values in (config or {}).items():
        if isinstance(values, dict):
            for key, value in values.items():
                flat[(str(section), str(key))] = value
        else:
            flat[("", str(section))] = values
    return flat


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _run_marks(records: Sequence[RunRecord]) -> list[tuple[float, str]]:
    marks = []
    for record in records:
        for event in events(record.rows):
            label = str(event["event"]) + (f" ({record.label})" if len(records) > 1 else "")
            marks.append((float(event.get("to_step", event["step"])), label))  # where the history continues
    return marks


def _chart_section(records: Sequence[RunRecord], keys: Sequence[tuple[str, str]], chart_id: str, y_label: str,
                   y_range: tuple[float, float] | None = None, guides: Sequence[tuple[float, str]] = (),
                   note: str = "") -> str:
    series = []
    for run_index, record in enumerate(records):
        for key_index, (key, name) in enumerate(keys):
            xs, ys = record.values(key)
            if not xs:
                continue
            if len(records) == 1:
                series.append(Series(name, xs, ys, METRIC_COLOURS.get(key, PALETTE[key_index % len(PALETTE)])))
            else:
                series.append(Series(f"{record.label} \u00b7 {name}", xs, ys, PALETTE[run_index % len(PALETTE)],
                                     DASHES[key_index % len(DASHES)]))
    if not series:
        return '<p class="empty">No logged values yet (metrics.jsonl is empty).</p>'
    title = " and ".join(name for _, name in keys) + " over training steps"
    chart = line_chart(series, title, y_label=y_label, y_range=y_range, guides=guides, marks=_run_marks(records),
                       chart_id=f"chart-{chart_id}")
    return f'{_note(note)}<figure class="chart">{chart}</figure>'


def _metrics_section(records: Sequence[RunRecord]) -> str:
    keys: dict[str, None] = {}
    for record in records:
        for key in numeric_keys(record.history):
            if key not in CORE_KEYS and key != "seconds_per_step":
                keys.setdefault(key)
    keys.setdefault("seconds_per_step")
    charts = []
    for key in keys:
        series = []
        for index, record in enumerate(records):
            xs, ys = record.values(key)
            if xs:
                label = record.label if len(records) > 1 else METRIC_TITLES.get(key, key)
                colour = PALETTE[(index if len(records) > 1 else 4 + len(charts)) % len(PALETTE)]
                series.append(Series(label, xs, ys, colour))
        if series:
            name = METRIC_TITLES.get(key, key)
            chart = line_chart(series, name, marks=_run_marks(records), chart_id=f"chart-metric-{key}",
                               legend=len(records) > 1, width=SMALL_CHART_WIDTH)
            charts.append(f'<figure class="chart small">{chart}</figure>')
    if not charts:
        return '<p class="empty">No other numeric values in metrics.jsonl.</p>'
    return ('<p class="note">Every other number the run logged, against the training step.</p>'
            f'<div class="chart-grid">{"".join(charts)}</div>')


def _samples_section(records: Sequence[RunRecord]) -> str:
    esc = html.escape
    parts = ['<p class="note">G(the same fixed noise) at each saved step (<code>samples/step_N.png</code>): '
             "watch the samples form. 2-D runs show the generated points (blue) over the real modes (red).</p>"]
    for record in records:
        heading = f"<h3>{esc(record.label)}</h3>" if len(records) > 1 else ""
        if not record.grids:
            parts.append(f'{heading}<p class="empty">No sample grids: train with --sample-every N.</p>')
            continue
        shown = timeline_frames(record.grids)
        skipped = f"{len(shown)} of {len(record.grids)} grids, evenly spaced." if len(shown) < len(record.grids) else ""
        figures = "".join(
            f'<figure class="frame"><img class="sample-grid" src="{_file_data_uri(path)}" '
            f'alt="samples at step {step}"><figcaption>step {step}</figcaption></figure>' for step, path in shown)
        parts.append(f'{heading}<div class="timeline">{figures}</div>{_note(skipped)}')
    return "\n".join(parts)


def timeline_frames(grids: Sequence[tuple[int, Path]], limit: int = MAX_TIMELINE_FRAMES) -> list[tuple[int, Path]]:
    """At most ``limit`` of the grids, evenly spaced, the first and the last always kept."""
    if len(grids) <= limit:
        return list(grids)
    indices = sorted({round(i * (len(grids) - 1) / (limit - 1)) for i in range(limit)})
    return [grids[i] for i in indices]


def _generator_section(records: Sequence[RunRecord]) -> str:
    esc = html.escape
    parts = []
    for record in records:
        heading = f"<h3>{esc(record.label)}</h3>" if len(records) > 1 else ""
        try:
            figure = _decision_surface_figure(record) if record.is_points else _interpolation_figure(record)
        except GanforgeError as error:
            figure = f'<p class="empty">{esc(str(error))}</p>'
        parts.append(heading + figure)
    return "\n".join(parts)


def _interpolation_figure(record: RunRecord) -> str:
    if not list_checkpoints(record.path):
        return '<p class="empty">No checkpoint yet: the interpolation strip needs a trained generator.</p>'
    generator = TrainedGenerator.load(record.path, device="cpu")
    walks = generator.interpolate(INTERPOLATION_ROWS, INTERPOLATION_STEPS, seed=0)
    strip = image_grid(walks, columns=INTERPOLATION_STEPS)
    return (f'<figure class="wide"><img id="interpolation-strip" class="pixelated" src="{_image_data_uri(strip)}" '
            f'alt="latent interpolation at step {generator.step}">'
            f"<figcaption>Latent interpolation at step {generator.step}: {INTERPOLATION_ROWS} walks (one per row) "
            f"between random latents, {INTERPOLATION_STEPS} images each (spherical interpolation). "
            "Smooth changes mean G learned a continuous map rather than memorizing images.</figcaption></figure>")


def _decision_surface_figure(record: RunRecord) -> str:
    if not list_checkpoints(record.path):
        return '<p class="empty">No checkpoint yet: the decision surface needs trained networks.</p>'
    checkpoint = read_checkpoint(record.path)
    generator, discriminator = build_models(checkpoint.config.model)
    checkpoint.restore_models(generator, discriminator)
    trained = TrainedGenerator(generator, checkpoint.config, checkpoint.step, torch.device("cpu"))
    picture = decision_surface(trained.sample(SURFACE_POINTS, seed=0), trained.modes(), discriminator)
    return (f'<figure><img id="decision-surface" src="{_image_data_uri(picture)}" '
            f'alt="decision surface at step {checkpoint.step}">'
            f'<div class="scale"><span>D(x) = 0, fake</span><div class="bar" style="background: linear-gradient('
            f'to right, #fff, rgb{SURFACE_REAL_RGB})"></div><span>1, real</span></div>'
            f"<figcaption>Step {checkpoint.step}: {SURFACE_POINTS} generated points (blue) over the real modes "
            "(red crosses), on the discriminator's verdict D(x): white where D says fake, orange where it says "
            "real, a grey line at D(x) = 1/2. Modes with no blue points around them are modes the generator "
            "dropped (mode collapse).</figcaption></figure>")


def _evaluation_section(records: Sequence[RunRecord]) -> str:
    esc = html.escape
    evaluated = [record for record in records if record.evaluation]
    if not evaluated:
        return '<p class="empty">No eval.json in the run folder: evaluate the run to fill this table.</p>'
    metrics: dict[str, None] = {}  # a metric has a floor or a known direction; other keys are facts (step, samples)
    about: dict[str, None] = {}
    for record in evaluated:
        values = record.evaluation or {}
        for key, value in values.items():
            if key.endswith("_floor") and key[: -len("_floor")] in values:
                continue
            is_metric = _is_number(value) and (f"{key}_floor" in values or key in HIGHER_IS_BETTER)
            (metrics if is_metric else about).setdefault(key)
    head = "".join(f'<th colspan="2">{esc(record.label)}</th>' for record in evaluated) if len(evaluated) > 1 else ""
    sub = "".join("<th>value</th><th>real-data floor</th>" for _ in evaluated)
    rows = []
    for key in metrics:
        cells = ""
        for record in evaluated:
            values = record.evaluation or {}
            cells += (f"<td>{esc(_number(values.get(key)))}</td>"
                      f'<td class="floor">{esc(_number(values.get(key + "_floor")))}</td>')
        direction = HIGHER_IS_BETTER.get(key)
        better = "" if direction is None else "higher is better" if direction else "lower is better"
        rows.append(f'<tr><th scope="row">{esc(key)}</th>{cells}<td class="better">{better}</td></tr>')
    facts = []
    for key in about:
        values = [_show((record.evaluation or {}).get(key)) for record in evaluated]
        shown = "; ".join(f"{record.label}: {value}" for record, value in zip(evaluated, values)) \
            if len(evaluated) > 1 else values[0]
        facts.append(f"<dt>{esc(key)}</dt><dd>{esc(shown)}</dd>")
    table = (f'<table class="evaluation"><thead>{f"<tr><th></th>{head}<th></th></tr>" if head else ""}'
             f'<tr><th>metric</th>{sub}<th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    note = ('<p class="note">The real-data floor is what real samples score on the same metric (for metrics '
            "between two sets, two disjoint halves of the real data): the best to expect with this many samples "
            "and this feature extractor.</p>")
    return note + table + (f'<dl class="facts">{"".join(facts)}</dl>' if facts else "")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _as_float(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _number(value: Any) -> str:
    if value is None:
        return "\u2014"
    if not _is_number(value):
        return _show(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _file_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _image_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #e3e6ec; --bg: #f6f7f9; --accent: #1f77b4; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 20px 32px 0; }
header > div { max-width: 1116px; margin: 0 auto; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 18px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 16px 0 8px; }
.generated, .path, .note { color: var(--muted); font-size: 13px; }
.path { margin: 0 0 6px; word-break: break-all; }
nav { display: flex; flex-wrap: wrap; gap: 4px 18px; margin-top: 14px; }
nav a { color: var(--accent); text-decoration: none; padding: 8px 0; border-bottom: 2px solid transparent; font-size: 14px; }
nav a:hover { border-bottom-color: var(--accent); }
main { max-width: 1180px; margin: 0 auto; padding: 20px 32px 48px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 18px 22px; margin-bottom: 18px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 12px; }
.card { border: 1px solid var(--line); border-top: 3px solid #444; border-radius: 6px; padding: 8px 14px; min-width: 260px; }
.card h3 { margin: 4px 0 0; }
.card dl { display: grid; grid-template-columns: auto 1fr; gap: 0 12px; margin: 0; font-size: 13px; }
.card dt { color: var(--muted); }
.card dd { margin: 0; }
ul.warnings { margin: 0; padding: 0; list-style: none; }
li.warning { background: #fff4e5; border-left: 4px solid #f0883e; padding: 8px 12px; margin-bottom: 8px; border-radius: 4px; }
li.event { background: #eef4fb; border-left: 4px solid var(--accent); padding: 8px 12px; margin-bottom: 8px; border-radius: 4px; }
p.ok { color: #1a7f37; font-weight: 600; margin: 0 0 4px; }
.empty { color: var(--muted); font-style: italic; }
table { border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 4px 12px 4px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { color: var(--muted); font-weight: 600; }
tbody th { font-weight: 500; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
td.section { color: var(--muted); }
tr.differs { background: #fff8db; }
td.floor, td.better { color: var(--muted); }
dl.config { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 0 24px; margin: 0; font-size: 13px; }
dl.config div { display: flex; justify-content: space-between; gap: 12px; border-bottom: 1px solid var(--line); padding: 3px 0; }
dl.config dt { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
dl.config dd { margin: 0; text-align: right; word-break: break-all; }
#config h3 { color: var(--muted); font-size: 13px; margin: 12px 0 4px; }
.scale { display: flex; align-items: center; gap: 8px; font-size: 12px; color: var(--muted); margin: 6px 0; }
.scale .bar { width: 160px; height: 10px; border: 1px solid var(--line); border-radius: 2px; }
.chart-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 16px 24px; }
figure.chart.small { max-width: 540px; }
dl.facts { display: grid; grid-template-columns: auto 1fr; gap: 0 12px; font-size: 13px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
figure { margin: 0; }
figure.chart { max-width: 760px; }
svg.chart { width: 100%; height: auto; display: block; font-family: inherit; }
svg.chart text { fill: var(--ink); font-size: 12px; }
svg.chart .chart-title { font-size: 14px; font-weight: 600; }
svg.chart .tick { fill: var(--muted); font-size: 11px; }
svg.chart .axis-label { fill: var(--muted); }
svg.chart line.grid { stroke: #eceff3; }
svg.chart line.axis { stroke: #8a93a3; }
svg.chart line.guide { stroke: #9aa3b2; stroke-dasharray: 4 4; }
svg.chart .guide-label, svg.chart .mark-label { paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg.chart .guide-label { fill: var(--muted); font-size: 11px; }
svg.chart line.mark { stroke: #d62728; stroke-dasharray: 3 3; }
svg.chart .mark-label { fill: #d62728; font-size: 11px; }
svg.chart .row-label { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.timeline { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 12px; }
.frame img { width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 4px;
             image-rendering: pixelated; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
figure.wide img, #decision-surface { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
img.pixelated { image-rendering: pixelated; width: 100%; max-width: 760px; }
#decision-surface { width: 512px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;
       background: #f0f2f5; padding: 1px 4px; border-radius: 3px; }
"""
