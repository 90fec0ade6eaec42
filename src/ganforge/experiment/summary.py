"""An experiment's results as data and text: results.jsonl, summary.json and table.md.

Each variant's metrics over its seeds (mean, standard deviation, min, max), mode coverage, and the results
table as text cells, which table.md lays out in Markdown and the report package's experiment page in HTML.
No HTML here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ganforge.errors import GanforgeError
from ganforge.evaluation.registry import HIGHER_IS_BETTER
from ganforge.experiment.folder import RESULTS_FILE, SPEC_FILE, SUMMARY_FILE, TABLE_FILE, read_result
from ganforge.experiment.plan import PlannedRun, coverage_target
from ganforge.experiment.spec import ExperimentSpec
from ganforge.runs.files import write_text_atomically
from ganforge.runs.metrics_log import is_number


def spread(values: Sequence[float]) -> dict[str, float | int]:
    """n, mean, standard deviation (n - 1 in the denominator; 0 for one value), min and max."""
    values = [float(v) for v in values]
    count = len(values)
    mean = sum(values) / count
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (count - 1)) if count > 1 else 0.0
    return {"n": count, "mean": mean, "std": std, "min": min(values), "max": max(values)}


def write_summary(spec: ExperimentSpec, runs: Sequence[PlannedRun], out: Path) -> dict[str, Any]:
    """Write results.jsonl, summary.json and table.md from the runs done so far; returns the summary."""
    rows: list[dict[str, Any]] = []
    variants: list[dict[str, Any]] = []
    for variant in spec.variants():
        variant_runs = [run for run in runs if run.variant == variant]
        done = [(run, row) for run in variant_runs if (row := read_result(run.run_dir)) is not None]
        for run, row in done:
            rows.append({"run": run.run_dir.relative_to(out).as_posix(), **row})
        finished = [(run, row) for run, row in done if row["status"] == "finished"]
        metrics = variant_runs[0].metrics
        entry: dict[str, Any] = {
            "name": variant.name, "values": variant.values, "seeds": spec.seeds, "planned": len(variant_runs),
            "finished": len(finished), "diverged": len(done) - len(finished),
            "diverged_seeds": [row["seed"] for _, row in done if row["status"] == "diverged"], "metrics": {},
        }
        for name in metrics:
            values = [row["metrics"][name] for _, row in finished if is_number(row["metrics"].get(name))]
            floors = [row["floors"][name] for _, row in finished if is_number(row["floors"].get(name))]
            entry["metrics"][name] = {**(spread(values) if values else {"n": 0}),
                                      "values": {str(row["seed"]): row["metrics"].get(name) for _, row in finished},
                                      "floor": sum(floors) / len(floors) if floors else None}
        target = coverage_target(variant_runs[0].config, metrics)
        if target is not None:
            entry["coverage"] = {
                "metric": target[0], "target": target[1],
                "all_covered": sum(bool(row.get("all_covered")) for _, row in finished),
                "first_full_coverage_step": {str(row["seed"]): row["first_full_coverage_step"]
                                             for _, row in finished if "first_full_coverage_step" in row},
                "full_coverage_evaluations": {str(row["seed"]): row["full_coverage_evaluations"]
                                              for _, row in finished if "full_coverage_evaluations" in row},
            }
        variants.append(entry)
    eval_every = {run.config.train.eval_every for run in runs}
    summary = {
        "description": spec.description, "spec": spec.path, "axes": spec.vary, "seeds": spec.seeds,
        "metrics": list(dict.fromkeys(name for run in runs for name in run.metrics)),
        "higher_is_better": {name: HIGHER_IS_BETTER.get(name) for run in runs for name in run.metrics},
        "eval_every": eval_every.pop() if len(eval_every) == 1 else None,
        "runs": {"planned": len(runs), "done": len(rows),
                 "finished": sum(row["status"] == "finished" for row in rows),
                 "diverged": sum(row["status"] == "diverged" for row in rows)},
        "variants": variants,
    }
    write_text_atomically(out / RESULTS_FILE, "".join(json.dumps(row) + "\n" for row in rows))
    write_text_atomically(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    write_text_atomically(out / TABLE_FILE, render_table_markdown(summary, out))
    return summary


def table_cells(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The results table as header cells and rows of text cells (the last row: the real-data floors)."""
    axes = list(summary["axes"]) or ["variant"]
    metrics = summary["metrics"]
    covered = any("coverage" in v for v in summary["variants"])
    steps = any(v.get("coverage", {}).get("first_full_coverage_step") for v in summary["variants"])
    arrows = {True: " \u2191", False: " \u2193", None: ""}
    headers = [*axes, "seeds done"] + [name + arrows[summary["higher_is_better"].get(name)] for name in metrics]
    if covered:
        headers.append("all modes covered at the end")
    if steps:
        headers.append("first step with all modes (evaluations with all modes), per seed")
    rows = []
    for variant in summary["variants"]:
        cells = [show_value(variant["values"].get(axis)) for axis in axes] if summary["axes"] else [variant["name"]]
        done = f"{variant['finished']}/{variant['planned']}"
        if variant["diverged"]:
            done += f" ({variant['diverged']} diverged)"
        cells.append(done)
        cells += [spread_cell(variant["metrics"].get(name, {"n": 0})) for name in metrics]
        coverage = variant.get("coverage")
        if covered:
            cells.append(f"{coverage['all_covered']}/{variant['finished']}" if coverage and variant["finished"]
                         else "\u2014")
        if steps:
            first = (coverage or {}).get("first_full_coverage_step", {})
            counts = (coverage or {}).get("full_coverage_evaluations", {})
            per_seed = []
            for seed in variant["seeds"]:
                if str(seed) in first:
                    step = "never" if first[str(seed)] is None else str(first[str(seed)])
                    per_seed.append(f"{step} ({counts[str(seed)][0]}/{counts[str(seed)][1]})"
                                    if str(seed) in counts else step)
                elif seed in variant["diverged_seeds"]:
                    per_seed.append("diverged")
                else:
                    per_seed.append("\u2014")
            cells.append(", ".join(per_seed))
        rows.append(cells)
    floors = []
    for name in metrics:
        values = [v["metrics"][name]["floor"] for v in summary["variants"]
                  if name in v["metrics"] and v["metrics"][name]["floor"] is not None]
        floors.append(format_value(sum(values) / len(values)) if values else "\u2014")
    rows.append(["real data (floor)", *[""] * len(axes), *floors, *[""] * (covered + steps)])
    return headers, rows


def render_table_markdown(summary: dict[str, Any], out: Path) -> str:
    """table.md: a title, the command that reproduces it, the table and how to read it."""
    headers, rows = table_cells(summary)
    lines = [f"# {summary['description'] or 'Experiment ' + out.name}", ""]
    if summary["spec"]:
        lines += [f"`ganforge experiment {summary['spec']} --out {out}`", ""]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    lines += ["", table_note(summary), ""]
    return "\n".join(lines)


def table_note(summary: dict[str, Any]) -> str:
    """How to read the table, in one paragraph."""
    seeds = ", ".join(map(str, summary["seeds"]))
    note = (f"Each metric: mean \u00b1 standard deviation [min, max] over the seeds that finished (seeds {seeds}; "
            f"standard deviation with n - 1). \u2191 higher is better, \u2193 lower is better; the last row is what "
            f"real data scores. {summary['runs']['done']} of {summary['runs']['planned']} runs done.")
    if any("coverage" in v for v in summary["variants"]):
        note += (" A mode is covered when at least one of the generated samples is a high-quality sample of it "
                 "(for digits: a class is generated).")
        if summary.get("eval_every"):
            note += (f" The first step with all modes is the first evaluation during training (every "
                     f"{summary['eval_every']} steps) at which every mode was covered (never: at none of them); "
                     "in brackets, at how many of the evaluations every mode was covered.")
    return note


def spread_cell(stats: dict[str, Any]) -> str:
    """One metric of one variant as a table cell: ``mean \u00b1 std [min, max]``, the mean alone for one seed."""
    if not stats.get("n"):
        return "\u2014"
    if stats["n"] == 1:
        return format_value(stats["mean"])
    return (f"{format_value(stats['mean'])} \u00b1 {format_value(stats['std'])} "
            f"[{format_value(stats['min'])}, {format_value(stats['max'])}]")


def format_value(value: Any) -> str:
    """Three significant digits; whole numbers as they are."""
    if not is_number(value):
        return "\u2014" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def show_value(value: Any) -> str:
    """A varied value as a table cell (true/false as YAML writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def read_experiment(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """An experiment folder read back: summary.json, the rows of results.jsonl and the spec as run."""
    summary_path = folder / SUMMARY_FILE
    if not summary_path.is_file():
        raise GanforgeError(f"{folder} has no {SUMMARY_FILE} yet: run 'ganforge experiment SPEC --out {folder}' first")
    summary = json.loads(summary_path.read_text())
    rows = [json.loads(line) for line in (folder / RESULTS_FILE).read_text().splitlines() if line.strip()] \
        if (folder / RESULTS_FILE).is_file() else []
    return summary, rows, (folder / SPEC_FILE).read_text()
