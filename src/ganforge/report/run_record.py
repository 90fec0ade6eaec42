"""A run folder as the report reads it: its config, log rows, evaluation and sample grids, and short labels
that tell several runs apart on one page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ganforge.config.schema import RunConfig
from ganforge.errors import GanforgeError
from ganforge.report.animate import sample_grids
from ganforge.runs.metrics_log import is_number, read_metrics, training_history


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
    """Read a run folder; a GanforgeError says what is missing when ``path`` is not one."""
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


def _as_float(value: Any) -> float:
    return float(value) if is_number(value) else math.nan
