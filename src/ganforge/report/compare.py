"""``ganforge compare``: several runs' configs and metrics side by side, what differs first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ganforge.errors import GanforgeError
from ganforge.evaluation.results import EVAL_FILE
from ganforge.runs.metrics_log import read_metrics, training_history

LAST_ROW_KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "images_per_second")  # the last log row's statistics


@dataclass(frozen=True)
class Comparison:
    """Rows of (name, one value per run), in three groups."""

    runs: list[str]
    config_differs: list[tuple[str, list[Any]]]
    config_same: list[tuple[str, list[Any]]]
    metrics: list[tuple[str, list[Any]]]  # eval.json keys, then the last logged training statistics


def compare_runs(runs: list[Path]) -> Comparison:
    configs, metrics = [], []
    for run in runs:
        config_file = run / "config.yaml"
        if not config_file.is_file():
            raise GanforgeError(f"{run} is not a run folder (no config.yaml): pass folders written by 'ganforge train'")
        sections = yaml.safe_load(config_file.read_text()) or {}
        configs.append({key: value for section in sections.values() for key, value in section.items()})
        evaluation = json.loads((run / EVAL_FILE).read_text()) if (run / EVAL_FILE).is_file() else {}
        history = training_history(read_metrics(run))
        last = {f"last {key}": history[-1][key] for key in LAST_ROW_KEYS if history and key in history[-1]}
        metrics.append({**evaluation, **({"step": history[-1]["step"]} if history else {}), **last})
    config_keys = list(dict.fromkeys(key for config in configs for key in config))
    rows = [(key, [config.get(key) for config in configs]) for key in config_keys]
    metric_keys = list(dict.fromkeys(key for values in metrics for key in values))
    return Comparison(
        runs=[str(run) for run in runs],
        config_differs=[row for row in rows if len({json.dumps(v) for v in row[1]}) > 1],
        config_same=[row for row in rows if len({json.dumps(v) for v in row[1]}) == 1],
        metrics=[(key, [values.get(key) for values in metrics]) for key in metric_keys],
    )
