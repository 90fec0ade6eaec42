"""Running an experiment: plan the grid, skip the runs already done, train the others, write the summary.

Runs train one after another in this process (one job) or in worker processes (:mod:`ganforge.experiment.pool`);
either way a stop signal ends the call with every run checkpointed, and the same call continues it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ganforge.errors import ConfigError, GanforgeError, shown
from ganforge.experiment.folder import RESULTS_FILE, RUN_PLAN_FILE, SPEC_FILE, SUMMARY_FILE, TABLE_FILE, read_result
from ganforge.experiment.plan import PlannedRun, plan_runs
from ganforge.experiment.pool import run_in_workers
from ganforge.experiment.runner import progress_line, run_one
from ganforge.experiment.spec import load_spec
from ganforge.experiment.summary import write_summary
from ganforge.runs.checkpoint import list_checkpoints
from ganforge.runs.files import write_text_atomically


@dataclass
class ExperimentResult:
    """What one call did and where the experiment's files are."""

    out_dir: Path
    table: Path  # table.md
    results: Path  # results.jsonl
    summary: Path  # summary.json
    planned: int  # runs in the grid: variants x seeds
    already_done: int  # done before this call, not redone
    completed: int  # runs this call brought to done (trained or resumed, then evaluated)
    resumed: int  # runs this call continued from a checkpoint
    stopped: bool  # a stop signal ended the call early; the same command continues


def available_cores() -> int:
    """CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def run_experiment(spec: str | Path | Mapping[str, Any], out: str | Path, *, jobs: int | None = None,
                   threads: int | None = None, show_progress: bool = True) -> ExperimentResult:
    """Run every variant of ``spec`` with every seed into ``out``, evaluate each, and write the tables.

    ``jobs``: runs trained at once, each in its own process (None = one per core, at most the runs left; 1 =
    in this process). ``threads``: torch threads per run; None = auto: each run's share of the cores (cores // jobs,
    at most torch's own thread count, which OMP_NUM_THREADS sets), fewer while other processes keep cores busy.
    Runs already done are not redone; interrupted ones continue from their last checkpoint.
    """
    for name, value in (("jobs", jobs), ("threads", threads)):
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    parsed = load_spec(spec)
    out = Path(out)
    if (out / "config.yaml").is_file() or list_checkpoints(out):
        raise ConfigError(f"{out} is the folder of a training run: choose a new --out folder for the experiment")
    runs = plan_runs(parsed, out)
    done = [run for run in runs if _is_done(run)]
    pending = [run for run in runs if run not in done]
    cores = available_cores()
    if jobs is None and torch.cuda.is_available() and any(r.config.train.device != "cpu" for r in pending):
        jobs = 1  # one GPU: the runs take turns on it rather than each holding memory there
    jobs = max(1, min(jobs or cores, len(pending)))
    share = threads or max(1, min(cores // jobs, torch.get_num_threads()))  # OMP_NUM_THREADS is a ceiling
    say: Callable[[str], None] = (lambda text: print(text, flush=True)) if show_progress else (lambda text: None)

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / SPEC_FILE, yaml.safe_dump(parsed.to_dict(), sort_keys=False))
    resumed = 0
    for run in pending:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(run.run_dir / RUN_PLAN_FILE, json.dumps(run.plan(), indent=2) + "\n")
        resumed += bool(list_checkpoints(run.run_dir))
    variants = len(runs) // len(parsed.seeds)
    say(f"experiment {out}: {variants} variant{'s' if variants != 1 else ''} x {len(parsed.seeds)} seed"
        f"{'s' if len(parsed.seeds) != 1 else ''} = {len(runs)} runs; {len(done)} done, {len(pending)} to run"
        + (f", {jobs} at a time with {share} torch thread{'s' if share != 1 else ''} each"
           + ("" if threads or share == 1 else " (fewer while other processes keep the cores busy)")
           if pending else ""))
    completed, stopped = 0, False
    try:
        if pending and jobs == 1:
            completed, stopped = _run_here(pending, share, threads, say)
        elif pending:
            completed, stopped = run_in_workers(pending, jobs, share, threads, say)
    finally:
        write_summary(parsed, runs, out)
    return ExperimentResult(out, out / TABLE_FILE, out / RESULTS_FILE, out / SUMMARY_FILE, len(runs), len(done),
                            completed, resumed, stopped)


def _is_done(run: PlannedRun) -> bool:
    """Whether the run has its result; a run folder planned with another config is refused."""
    plan_file = run.run_dir / RUN_PLAN_FILE
    if plan_file.is_file():
        try:
            previous = json.loads(plan_file.read_text())
        except json.JSONDecodeError:
            previous = None  # torn by a crash before it was renamed into place: it is rewritten
        wanted = run.defined_by()
        if isinstance(previous, dict) and {key: previous.get(key) for key in wanted} != wanted:
            raise ConfigError(f"{run.run_dir} was run with another config ({_first_difference(previous, wanted)}): "
                              "choose a new --out folder, or delete that run folder to run it again")
    return read_result(run.run_dir) is not None


def _first_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The first setting that differs, as 'steps 2000, now 3000'."""
    flat_old = {**old, **(old.get("settings") or {})}
    flat_new = {**new, **new["settings"]}
    for key in dict.fromkeys([*flat_new, *flat_old]):
        if key not in ("settings", "config", "values") and flat_old.get(key) != flat_new.get(key):
            return f"{key} {shown(flat_old.get(key))}, now {shown(flat_new.get(key))}"
    return "a different plan"


def _run_here(pending: list[PlannedRun], share: int, threads: int | None,
              say: Callable[[str], None]) -> tuple[int, bool]:
    """One run after another in this process, with at most ``share`` threads (``threads`` of them, or auto);
    returns (runs completed, whether a stop signal ended it)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(share)
    completed = 0
    try:
        for run in pending:
            start = time.monotonic()
            try:
                row = run_one(run.run_dir, threads)
            except GanforgeError as error:
                raise GanforgeError(f"{run.run_dir}: {error}") from None
            if row["status"] == "stopped":
                return completed, True
            completed += 1
            say(progress_line(completed, len(pending), run, row, time.monotonic() - start))
    except KeyboardInterrupt:  # between runs or during an evaluation: the run in hand is redone from its checkpoint
        return completed, True
    finally:
        torch.set_num_threads(previous)
    return completed, False
