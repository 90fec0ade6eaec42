"""An evaluation's results: the table ``ganforge eval`` prints and the run's eval.json."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from ganforge.evaluation.registry import HIGHER_IS_BETTER, Results

EVAL_FILE = "eval.json"

def format_results(results: Results) -> str:
    """A two-column table: ``fid  3.104  (floor 1.198)``, one metric a line, then the extractor and sample count."""
    lines = []
    names = [key for key in results if key in HIGHER_IS_BETTER]
    width = max([len(name) for name in names] + [len("feature extractor")])

    def show(value: float | int | str) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, float):
            return f"{value:.4g}" if math.isfinite(value) else str(value)
        return str(value)

    for name in names:
        arrow = "higher is better" if HIGHER_IS_BETTER[name] else "lower is better"
        floor = f"  (floor {show(results[f'{name}_floor'])})" if f"{name}_floor" in results else ""
        lines.append(f"{name:<{width}}  {show(results[name]):>8}{floor}  [{arrow}]")
    if "feature_extractor" in results:
        lines.append(f"{'feature extractor':<{width}}  {results['feature_extractor']}")
    if "num_samples" in results:
        lines.append(f"{'samples':<{width}}  {results['num_samples']:,}")
    return "\n".join(lines)


def write_results(results: Results, run_dir: Path | str) -> Path:
    """Write ``results`` to ``<run_dir>/eval.json`` atomically (a temporary file renamed over it)."""
    path = Path(run_dir) / EVAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{EVAL_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(results, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
