"""The experiment folder's layout: the names of its files and of each run folder's extra files.

Every other module of the experiment reads or writes these; the report page reads them back through
:func:`ganforge.experiment.summary.read_experiment`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPEC_FILE = "experiment.yaml"  # the spec as run, in OUT; marks OUT as an experiment folder
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
TABLE_FILE = "table.md"
RUNS_FOLDER = "runs"
RUN_PLAN_FILE = "run.json"  # in each run folder: its variant, seed, config and metrics, written before it starts
RUN_RESULT_FILE = "result.json"  # in each run folder, written last: the run is done
RUN_LOG_FILE = "log.txt"  # in each run folder: what training printed
DONE_STATUSES = ("finished", "diverged")  # a diverged run is an outcome of the experiment, not redone


def is_experiment(path: Path | str) -> bool:
    """Whether ``path`` is a folder written by ``ganforge experiment``."""
    return (Path(path) / SPEC_FILE).is_file()


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``result.json`` row when the run is done (finished or diverged), else None."""
    path = run_dir / RUN_RESULT_FILE
    try:
        row = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return row if isinstance(row, dict) and row.get("status") in DONE_STATUSES else None
