"""The run folder's names, and its log ``metrics.jsonl``: one JSON object per log step or event."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ganforge.runs.files import write_text_atomically

CONFIG_FILE = "config.yaml"  # the resolved config of the run
METRICS_FILE = "metrics.jsonl"
SAMPLES_FOLDER = "samples"  # samples/step_NNNNNNN.png: G(fixed noise) every --sample-every steps


def read_metrics(run: Path | str) -> list[dict[str, Any]]:
    """The rows of ``RUN/metrics.jsonl`` (stat rows and event rows), skipping a torn last line; [] when absent."""
    path = Path(run) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a run killed mid-write leaves at most a partial line
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def append_row(metrics: Path, row: dict[str, Any]) -> None:
    """Add one row (a log step or an event) at the end of ``metrics.jsonl``."""
    with open(metrics, "a") as handle:
        handle.write(json.dumps(row) + "\n")


def training_history(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statistic rows of the history the weights actually went through, in step order.

    A rollback event returns to an earlier step, and a resumed run may log steps
    again that a crashed run had logged after its last checkpoint: in both
    cases the rows after the step returned to are dropped. Event rows are left out.
    """
    history: list[dict[str, Any]] = []
    for row in rows:
        if "event" in row:
            to_step = row.get("to_step")
            if isinstance(to_step, int):
                history = [kept for kept in history if kept["step"] <= to_step]
            continue
        history = [kept for kept in history if kept["step"] < row["step"]]
        history.append(row)
    return history


def events(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The event rows (``{"step", "event", ...}``, e.g. rollbacks)."""
    return [row for row in rows if "event" in row]


def numeric_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Keys holding numbers in any statistic row, in first-seen order, ``step`` excluded."""
    keys: dict[str, None] = {}
    for row in rows:
        if "event" in row:
            continue
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                keys.setdefault(key)
    return list(keys)


def forget_rows_after(metrics: Path, step: int) -> None:
    """Drop log rows past ``step`` (written after the checkpoint a run resumes from), atomically."""
    if not metrics.is_file():
        return
    kept = []
    for line in metrics.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a crash
    write_text_atomically(metrics, "".join(f"{line}\n" for line in kept))


def is_number(value: Any) -> bool:
    """Whether a logged value is a number (an int or a float, not a bool): what tables and charts draw."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
