"""One planned run of an experiment: trained (or resumed) to its last step, evaluated, its result written last.

A run folder is held by one process at a time (:mod:`ganforge.runs.lock`), and what training prints goes to the
run's ``log.txt``. Both the experiment's own process and its worker processes (:mod:`ganforge.experiment.pool`)
train runs through :func:`run_one`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ganforge.config.resolve import total_steps
from ganforge.config.schema import RunConfig
from ganforge.data import load_data
from ganforge.errors import TrainingDivergedError
from ganforge.evaluation.evaluator import evaluate
from ganforge.evaluation.hook import PeriodicEvaluation
from ganforge.evaluation.results import write_results
from ganforge.experiment.folder import RUN_LOG_FILE, RUN_PLAN_FILE, RUN_RESULT_FILE
from ganforge.experiment.plan import PlannedRun, coverage_target
from ganforge.experiment.summary import format_value
from ganforge.runs.checkpoint import list_checkpoints, read_checkpoint
from ganforge.runs.files import write_text_atomically
from ganforge.runs.lock import hold_run_folder
from ganforge.runs.metrics_log import is_number, read_metrics, training_history
from ganforge.sampling.generator import TrainedGenerator
from ganforge.train import run as training


def run_one(run_dir: Path | str, threads: int | None = None) -> dict[str, Any]:
    """Train the planned run in ``run_dir`` to its last step (resuming from its checkpoint if it has one),
    evaluate it and write ``result.json`` last; returns that row (status ``stopped``, and no file, when a
    stop signal ended training early). ``threads``: torch threads, None = auto (see ganforge.train.threads)."""
    run_dir = Path(run_dir)
    plan = json.loads((run_dir / RUN_PLAN_FILE).read_text())
    config = RunConfig.from_dict(plan["config"])
    row: dict[str, Any] = {"variant": plan["variant"], "values": plan["values"], "seed": plan["seed"]}
    with hold_run_folder(run_dir), _output_to(run_dir / RUN_LOG_FILE):
        try:
            stopped = _train_to_end(run_dir, config, threads)
        except TrainingDivergedError as error:  # an outcome of the experiment: recorded, not retried
            row.update(status="diverged", step=error.step, error=str(error))
        else:
            if stopped:
                return {**row, "status": "stopped"}
            row.update(status="finished", **_evaluate(run_dir, config, plan["metrics"]))
        row["train_seconds"] = round(_train_seconds(run_dir), 1)
        write_text_atomically(run_dir / RUN_RESULT_FILE, json.dumps(row) + "\n")
    return row


def _train_to_end(run_dir: Path, config: RunConfig, threads: int | None) -> bool:
    """Train or resume to the last step; True when a stop signal ended training first (it saved a checkpoint)."""
    if list_checkpoints(run_dir):
        checkpoint = read_checkpoint(run_dir)
        if checkpoint.step >= _last_step(checkpoint.config):
            return False  # trained before; stopped before its evaluation
        result = training.resume(run_dir, show_progress=False, hooks=[PeriodicEvaluation.for_run], threads=threads)
    else:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # a best.json from an attempt with no checkpoint
        result = training.train(config, run_dir, show_progress=False, hooks=[PeriodicEvaluation.for_run],
                                threads=threads)
    return result.stopped_by is not None


def _last_step(config: RunConfig) -> int:
    """The step a resolved config trains to (``steps``, or ``epochs`` through the data's batches)."""
    if config.train.steps is not None:
        return config.train.steps
    data = load_data(config.data, config.model.image_size, config.model.channels, config.train.seed,
                     torch.device("cpu"))
    return total_steps(config, data)


def _evaluate(run_dir: Path, config: RunConfig, metrics: list[str]) -> dict[str, Any]:
    """The run's last checkpoint measured (eval.json written), and when it first covered every mode."""
    generator = TrainedGenerator.load(run_dir, device=config.train.device)
    weights = Path(config.train.inception_weights) if config.train.inception_weights else None
    results = evaluate(generator, metrics, config.train.eval_samples, config.train.feature_extractor,
                       seed=config.train.seed, inception_weights=weights)
    write_results(results, run_dir)
    row: dict[str, Any] = {"step": generator.step, "metrics": {name: results[name] for name in metrics},
                           "floors": {name: results[f"{name}_floor"] for name in metrics}}
    target = coverage_target(config, metrics)
    if target is not None:
        key, count = target
        row["all_covered"] = bool(results[key] >= count)
        logged = [r for r in training_history(read_metrics(run_dir)) if is_number(r.get(key))]
        if logged:  # the run evaluated itself while training (eval_every)
            row["first_full_coverage_step"] = next((r["step"] for r in logged if r[key] >= count), None)
            row["full_coverage_evaluations"] = [sum(r[key] >= count for r in logged), len(logged)]  # [all, of]
    return row


def _train_seconds(run_dir: Path) -> float:
    """Wall seconds of training (evaluations during it included) over the steps the weights went through."""
    total, previous = 0.0, 0
    for row in training_history(read_metrics(run_dir)):
        if is_number(row.get("seconds_per_step")):
            total += row["seconds_per_step"] * (row["step"] - previous)
        previous = row["step"]
    return total


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """What training prints (progress lines, warnings) goes to the run's log instead of the terminal."""
    with open(path, "a", encoding="utf-8") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield


def progress_line(index: int, total: int, run: PlannedRun, row: dict[str, Any], seconds: float) -> str:
    """The line printed when a run is done: its place in the queue, its numbers (or step of divergence), its time."""
    if row["status"] == "diverged":
        outcome = f"diverged at step {row.get('step')}"
    else:
        outcome = ", ".join(f"{name} {format_value(value)}" for name, value in row["metrics"].items())
        if "all_covered" in row:
            outcome += "; all modes covered" if row["all_covered"] else "; not all modes covered"
        if row.get("first_full_coverage_step") is not None:
            outcome += f" (first at step {row['first_full_coverage_step']})"
    return f"[{index}/{total}] {run.label}: {outcome} ({seconds:.0f} s)"
