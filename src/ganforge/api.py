"""The Python API, in three lines::

    import ganforge
    run = ganforge.train(out="runs/digits", model="dcgan", data="digits", steps=2000)
    images = ganforge.load(run.run_dir).sample(64)  # (64, 1, 28, 28) in [-1, 1]

Keyword arguments are the config keys (the CLI flags with underscores); the
CLI is a thin layer over these functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganforge.config.io import load_yaml
from ganforge.config.schema import RunConfig, apply_overrides
from ganforge.config.validate import parse_threads
from ganforge.evaluation.hook import PeriodicEvaluation
from ganforge.sampling.generator import TrainedGenerator
from ganforge.sampling.write import write_sample_batches, write_samples
from ganforge.train import run as training
from ganforge.train.loop import TrainResult

if TYPE_CHECKING:
    from ganforge.experiment.scheduler import ExperimentResult

__all__ = ["TrainResult", "TrainedGenerator", "load", "resume", "run_experiment", "save_samples", "train", "write_report",
           "write_samples"]


def train(out: str | Path, *, config: RunConfig | str | Path | None = None, show_progress: bool = True,
          threads: int | str = "auto", **overrides: Any) -> TrainResult:
    """Train a new run into the folder ``out``.

    ``config`` is a base (a RunConfig or a YAML file); ``overrides`` are config
    keys such as ``model="dcgan"``, ``data="digits"``, ``steps=2000``, ``loss="minimax"``. ``threads``: torch
    threads, or ``"auto"``: the cores no other process is busy on (at most torch's count now), re-checked while
    training; torch's count is given back at the end.
    """
    if config is None:
        base = RunConfig()
    elif isinstance(config, RunConfig):
        base = config
    else:
        base = RunConfig.from_dict(load_yaml(Path(config)))
    return training.train(apply_overrides(base, overrides), out, show_progress=show_progress,
                          hooks=[PeriodicEvaluation.for_run], threads=parse_threads(threads))


def resume(run: str | Path, *, show_progress: bool = True, allow_data_change: bool = False,
           threads: int | str = "auto", **overrides: Any) -> TrainResult:
    """Continue the run in folder ``run`` from its latest checkpoint, e.g. ``resume("runs/digits", steps=4000)``;
    ``allow_data_change`` continues (with a warning) on data that changed since the checkpoint instead of refusing.
    ``threads`` as for :func:`train`."""
    return training.resume(run, overrides, show_progress=show_progress, hooks=[PeriodicEvaluation.for_run],
                           allow_data_change=allow_data_change, threads=parse_threads(threads))


def load(run: str | Path, device: str = "auto") -> TrainedGenerator:
    """The trained generator of a run folder (latest checkpoint) or of one checkpoint folder."""
    return TrainedGenerator.load(run, device=device)


def save_samples(generator: TrainedGenerator, out: str | Path, count: int, *, seed: int = 0,
                 class_index: int | None = None, overwrite: bool = False) -> Path:
    """Draw ``count`` samples into ``out`` (grid.png, samples.npy or folder/) a batch at a time, so any count that
    fits on the disk works; the same as ``write_samples(generator.sample(count, seed), out)``."""
    return write_sample_batches(generator.sample_batches(count, seed, class_index), count, generator.sample_shape(),
                                Path(out), generator.modes(), overwrite=overwrite)


def run_experiment(spec: str | Path | Mapping[str, Any], out: str | Path, *, jobs: int | None = None,
                   threads: int | None = None, show_progress: bool = True) -> ExperimentResult:
    """Train every variant of an experiment spec over its seeds into ``out``, evaluate each run and write
    ``table.md``, ``results.jsonl`` and ``summary.json``; done runs are kept when it is called again.

    ``spec`` is a YAML file (or its contents as a mapping): config keys, ``vary: {key: [values]}`` and
    ``seeds: 3``; see :mod:`ganforge.experiment`. ``jobs`` runs train at once, ``threads`` torch threads each.
    """
    from ganforge.experiment import scheduler as experiment  # imported when used: it pulls in evaluation

    return experiment.run_experiment(spec, out, jobs=jobs, threads=threads, show_progress=show_progress)


def write_report(runs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write the HTML page of one run, a comparison of several, or of one experiment folder, and return its path.

    ``out`` defaults to ``RUN/report.html`` for one run or an experiment, and to ``comparison.html`` in the
    first run's folder for several; an existing folder as ``out`` receives ``report.html``.
    """
    from ganforge.experiment.folder import is_experiment  # imported when used: the pages are not light
    from ganforge.report.experiment_page import write_experiment_report
    from ganforge.report.run_page import write_report as write_run_report

    paths = [Path(run) for run in runs]
    if len(paths) == 1 and is_experiment(paths[0]):
        return write_experiment_report(paths[0], out)
    return write_run_report(paths, out)
