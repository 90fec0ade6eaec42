"""``ganforge report``: one self-contained HTML page about a run, or comparing several.

The page holds the config, the losses and D's outputs over the steps, any other
logged metric, the timeline of fixed-noise sample grids, the evaluation table
beside the real-data floor, the generator at its last checkpoint (a latent
interpolation strip, or for 2-D data the decision-surface picture) and the
failure signs :mod:`ganforge.train.diagnostics` finds. Run folders are read by
:mod:`ganforge.report.run_record`, charts drawn by :mod:`ganforge.report.svg` and
the page framed by :mod:`ganforge.report.page`; an experiment folder's page is
:mod:`ganforge.report.experiment_page`.
"""

from __future__ import annotations

import html
import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ganforge.algorithm.packing import judge_single_samples
from ganforge.errors import GanforgeError
from ganforge.evaluation.registry import HIGHER_IS_BETTER
from ganforge.models import build_models
from ganforge.report.page import (
    REPORT_NAME,
    attributes,
    file_data_uri,
    format_number,
    html_page,
    image_data_uri,
    note_html,
    show_value,
    write_page,
)
from ganforge.report.run_record import RunRecord, read_run, run_labels
from ganforge.report.svg import PALETTE, SMALL_CHART_WIDTH, Series, line_chart
from ganforge.report.warnings_section import warnings_section
from ganforge.runs.checkpoint import list_checkpoints, read_checkpoint
from ganforge.runs.metrics_log import events, is_number, numeric_keys
from ganforge.runs.pictures import image_grid
from ganforge.sampling.generator import TrainedGenerator
from ganforge.train.diagnostics import (
    DIVERSITY_KEY,
    SURFACE_REAL_RGB,
    decision_surface,
)

COMPARISON_NAME = "comparison.html"  # written in the first run's folder for several runs when no --out is given
MAX_TIMELINE_FRAMES = 12  # sample grids shown per run; longer runs show this many, evenly spaced, first and last kept
INTERPOLATION_ROWS = 4  # latent walks in the interpolation strip
INTERPOLATION_STEPS = 10  # images per walk, end points included
SURFACE_POINTS = 1000  # generated points drawn on the decision surface (as many as the training previews)
CORE_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")  # the statistics every log row holds
DASHES = (None, "7 4", "2 3", "9 3 2 3")  # one per statistic when colours tell runs apart
METRIC_COLOURS = {"d_loss": PALETTE[0], "g_loss": PALETTE[1], "d_real": PALETTE[2], "d_fake": PALETTE[3]}
METRIC_TITLES = {
    "d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x), real", "d_fake": "D(G(z)), fake",
    "seconds_per_step": "seconds per step", DIVERSITY_KEY: "sample diversity",
}


def write_report(runs: Sequence[Path | str], out: Path | str | None = None) -> Path:
    """Write the HTML report of one run or a comparison of several, and return its path (an experiment
    folder's page is :func:`ganforge.report.experiment_page.write_experiment_report`; :func:`ganforge.api.write_report`
    picks the page a folder needs).

    ``out`` defaults to ``RUN/report.html`` for one run and to ``comparison.html`` in the first
    run's folder for several; an existing folder as ``out`` receives ``report.html``.
    """
    paths = [Path(run) for run in runs]
    if not paths:
        raise GanforgeError("report needs at least one run folder")
    records = [read_run(path, label) for path, label in zip(paths, run_labels(paths))]
    if out is None:
        out = paths[0] / (REPORT_NAME if len(paths) == 1 else COMPARISON_NAME)
    return write_page(Path(out), render_report(records))


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
        "warnings": warnings_section(records),
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
                      if is_number(row.get("seconds_per_step")) and math.isfinite(row["seconds_per_step"])]
            if speeds:
                facts.append(("seconds per step", f"{sorted(speeds)[len(speeds) // 2]:.3g} (median)"))
        colour = PALETTE[index % len(PALETTE)] if len(records) > 1 else "#444"
        rows = "".join(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in facts)
        cards.append(f'<div class="card" style="border-top-color: {colour}"><h3>{esc(record.label)}</h3>'
                     f'<p class="path">{esc(str(record.path.resolve()))}</p><dl>{rows}</dl></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


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
            cells = "".join(f'<div><dt>{esc(key)}</dt><dd>{esc(show_value(flat[0][(name, key)]))}</dd></div>'
                            for name, key in keys if name == section)
            groups.append(f'<h3>{esc(section or "other")}</h3><dl class="config">{cells}</dl>')
        return "".join(groups)
    missing = object()
    differs = [key for key in keys if len({show_value(values.get(key, missing)) for values in flat}) > 1]
    same = [key for key in keys if key not in differs]
    head = "".join(f"<th>{esc(record.label)}</th>" for record in records)
    rows = []
    for key in differs + same:
        cells = "".join(f"<td>{esc(show_value(values[key])) if key in values else '&mdash;'}</td>" for values in flat)
        rows.append(f"<tr{attributes(**{'class': 'differs' if key in differs else None})}>"
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
    return f'{note_html(note)}<figure class="chart">{chart}</figure>'


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
            f'<figure class="frame"><img class="sample-grid" src="{file_data_uri(path)}" '
            f'alt="samples at step {step}"><figcaption>step {step}</figcaption></figure>' for step, path in shown)
        parts.append(f'{heading}<div class="timeline">{figures}</div>{note_html(skipped)}')
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
    return (f'<figure class="wide"><img id="interpolation-strip" class="pixelated" src="{image_data_uri(strip)}" '
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
    judge = judge_single_samples(discriminator, checkpoint.config.model.pack)  # a packed D judges packs of copies
    picture = decision_surface(trained.sample(SURFACE_POINTS, seed=0), trained.modes(), judge)
    return (f'<figure><img id="decision-surface" src="{image_data_uri(picture)}" '
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
        commands = " ".join(f"<code>ganforge eval {esc(shlex.quote(str(record.path)))}</code>" for record in records)
        return (f'<p class="empty">No eval.json in the run folder: measure the samples with {commands} '
                "(or train with <code>--eval-every N</code>) to fill this table.</p>")
    metrics: dict[str, None] = {}  # a metric has a floor or a known direction; other keys are facts (step, samples)
    about: dict[str, None] = {}
    for record in evaluated:
        values = record.evaluation or {}
        for key, value in values.items():
            if key.endswith("_floor") and key[: -len("_floor")] in values:
                continue
            is_metric = is_number(value) and (f"{key}_floor" in values or key in HIGHER_IS_BETTER)
            (metrics if is_metric else about).setdefault(key)
    head = "".join(f'<th colspan="2">{esc(record.label)}</th>' for record in evaluated) if len(evaluated) > 1 else ""
    sub = "".join("<th>value</th><th>real-data floor</th>" for _ in evaluated)
    rows = []
    for key in metrics:
        cells = ""
        for record in evaluated:
            values = record.evaluation or {}
            cells += (f"<td>{esc(format_number(values.get(key)))}</td>"
                      f'<td class="floor">{esc(format_number(values.get(key + "_floor")))}</td>')
        direction = HIGHER_IS_BETTER.get(key)
        better = "" if direction is None else "higher is better" if direction else "lower is better"
        rows.append(f'<tr><th scope="row">{esc(key)}</th>{cells}<td class="better">{better}</td></tr>')
    facts = []
    for key in about:
        values = [show_value((record.evaluation or {}).get(key)) for record in evaluated]
        shown = "; ".join(f"{record.label}: {value}" for record, value in zip(evaluated, values)) \
            if len(evaluated) > 1 else values[0]
        facts.append(f"<dt>{esc(key)}</dt><dd>{esc(shown)}</dd>")
    table = (f'<table class="evaluation"><thead>{f"<tr><th></th>{head}<th></th></tr>" if head else ""}'
             f'<tr><th>metric</th>{sub}<th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    note = ('<p class="note">The real-data floor is what real samples score on the same metric (for metrics '
            "between two sets, two disjoint halves of the real data): the best to expect with this many samples "
            "and this feature extractor.</p>")
    return note + table + (f'<dl class="facts">{"".join(facts)}</dl>' if facts else "")
