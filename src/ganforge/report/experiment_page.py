"""The HTML page of an experiment folder (``ganforge report OUT`` after ``ganforge experiment --out OUT``).

The results table, a chart per metric of each variant's mean over seeds with error bars, each metric over
training, every run and the spec. The numbers and the table's text come from
:mod:`ganforge.experiment.summary` (report reads experiment's data; experiment never imports report).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ganforge.experiment import summary as experiment
from ganforge.report.page import REPORT_NAME, html_page, write_page
from ganforge.report.svg import PALETTE, SMALL_CHART_WIDTH, Interval, Series, interval_chart, line_chart
from ganforge.runs.metrics_log import is_number, read_metrics, training_history


def write_experiment_report(folder: Path | str, out: Path | str | None = None) -> Path:
    """Write the HTML page of an experiment folder (default ``FOLDER/report.html``) and return its path:
    the results table, a chart per metric of each variant's mean with error bars (standard deviation) and
    its seeds, each logged metric over training (mean over seeds), every run, and the spec."""
    folder = Path(folder)
    summary, rows, spec_text = experiment.read_experiment(folder)
    sections = [
        ("results", "Results", _results_section(summary)),
        ("metrics", "Metrics by variant", _metric_charts(summary)),
        ("training", "Over training", _training_charts(summary, rows, folder)),
        ("runs", "Runs", _runs_section(summary, rows)),
        ("spec", "Spec", f'<pre>{html.escape(spec_text)}</pre>'),
    ]
    esc = html.escape
    command = (f"; reproduce with <code>ganforge experiment {esc(summary['spec'])} --out {esc(str(folder))}</code>"
               if summary["spec"] else "")
    header = (f'<p class="path">{esc(str(folder.resolve()))}</p>'
              f'<p class="note">{summary["runs"]["done"]} of {summary["runs"]["planned"]} runs done{command}.</p>')
    page = html_page(f"ganforge experiment: {summary['description'] or folder.name}", header, sections)
    return write_page(folder / REPORT_NAME if out is None else Path(out), page)


def _results_section(summary: dict[str, Any]) -> str:
    esc = html.escape
    headers, rows = experiment.table_cells(summary)
    head = "".join(f"<th>{esc(cell)}</th>" for cell in headers)
    body = "".join("<tr" + (' class="floor"' if index == len(rows) - 1 else "") + ">"
                   + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for index, row in enumerate(rows))
    return (f'<table class="experiment"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            f'<p class="note">{esc(experiment.table_note(summary))}</p>')


def _metric_charts(summary: dict[str, Any]) -> str:
    charts = []
    for index, name in enumerate(summary["metrics"]):
        rows, floors = [], []
        for v_index, variant in enumerate(summary["variants"]):
            stats = variant["metrics"].get(name, {"n": 0})
            values = [float(x) for x in stats.get("values", {}).values() if is_number(x)]
            if stats.get("floor") is not None:
                floors.append(stats["floor"])
            if not stats.get("n"):
                continue
            rows.append(Interval(variant["name"], stats["mean"], stats["mean"] - stats["std"],
                                 stats["mean"] + stats["std"], values, PALETTE[v_index % len(PALETTE)],
                                 f"{variant['name']}: {experiment.spread_cell(stats)} over {stats['n']} seeds"))
        if not rows:
            continue
        direction = summary["higher_is_better"].get(name)
        better = "" if direction is None else " (higher is better)" if direction else " (lower is better)"
        guides = [(sum(floors) / len(floors), "real data")] if floors else []
        chart = interval_chart(rows, name + better, guides=guides, chart_id=f"chart-{name}", x_label=name)
        charts.append(f'<figure class="chart">{chart}</figure>')
    coverage_rows = []
    for v_index, variant in enumerate(summary["variants"]):
        steps = [s for s in variant.get("coverage", {}).get("first_full_coverage_step", {}).values() if s is not None]
        if steps:
            stats = experiment.spread(steps)
            coverage_rows.append(Interval(variant["name"], stats["mean"], stats["min"], stats["max"],
                                          [float(s) for s in steps], PALETTE[v_index % len(PALETTE)],
                                          f"{variant['name']}: {len(steps)} seeds covered every mode, first at "
                                          f"steps {', '.join(map(str, steps))}"))
    if coverage_rows:
        chart = interval_chart(coverage_rows, "first step with all modes covered (the seeds that got there; "
                               "bar: min to max)", chart_id="chart-coverage-step", x_label="step")
        charts.append(f'<figure class="chart">{chart}</figure>')
    if not charts:
        return '<p class="empty">No finished runs yet.</p>'
    return ('<p class="note">Each variant: its mean over seeds (filled dot), one standard deviation either side '
            '(bar) and each seed (hollow dots); the dashed line is what real data scores.</p>' + "".join(charts))


def _training_charts(summary: dict[str, Any], rows: Sequence[dict[str, Any]], folder: Path) -> str:
    """Each metric the runs evaluated while training, averaged over seeds at each step, one line per variant."""
    histories: dict[str, list[list[dict[str, Any]]]] = {}
    for row in rows:
        if row.get("status") == "finished":
            histories.setdefault(row["variant"], []).append(training_history(read_metrics(folder / row["run"])))
    charts = []
    for name in summary["metrics"]:
        series = []
        for index, variant in enumerate(summary["variants"]):
            by_step: dict[int, list[float]] = {}
            for history in histories.get(variant["name"], []):
                for entry in history:
                    if is_number(entry.get(name)):
                        by_step.setdefault(entry["step"], []).append(float(entry[name]))
            if by_step:
                steps = sorted(by_step)
                series.append(Series(variant["name"], [float(s) for s in steps],
                                     [sum(by_step[s]) / len(by_step[s]) for s in steps], PALETTE[index % len(PALETTE)]))
        if series:
            chart = line_chart(series, f"{name}, mean over seeds", chart_id=f"chart-training-{name}",
                               width=SMALL_CHART_WIDTH)
            charts.append(f'<figure class="chart small">{chart}</figure>')
    if not charts:
        return ('<p class="empty">The runs did not evaluate while training: set eval_every in the spec to follow '
                "the metrics over the steps.</p>")
    return f'<div class="chart-grid">{"".join(charts)}</div>'


def _runs_section(summary: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    esc = html.escape
    metrics = summary["metrics"]
    head = "".join(f"<th>{esc(cell)}</th>" for cell in ["run", "status", "step", *metrics, "train seconds"])
    body = []
    for row in rows:
        values = row.get("metrics", {})
        cells = [f'<td><a href="{esc(row["run"])}/">{esc(row["run"])}</a></td>', f"<td>{esc(row['status'])}</td>",
                 f"<td>{esc(experiment.format_value(row.get('step')))}</td>"]
        cells += [f"<td>{esc(experiment.format_value(values.get(name)))}</td>" for name in metrics]
        cells.append(f"<td>{esc(experiment.format_value(row.get('train_seconds')))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        return '<p class="empty">No run is done yet.</p>'
    return ('<p class="note">Each run is an ordinary run folder: <code>ganforge report RUN</code> shows its curves '
            f'and samples.</p><table class="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
