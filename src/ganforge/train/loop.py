"""The training loop: ``fit`` repeats the algorithm's step and, on their schedules, logs, previews,
checkpoints, guards against divergence, stops on a signal and runs its hooks.

A hook is work that others hand to the loop, such as the periodic evaluation of
:mod:`ganforge.evaluation.hook`: it measures at the ``--eval-every`` steps, adds its values to the log
row, and may ask for a checkpoint (a new best one). Only the process that writes the run folder makes
hooks; every process follows the same schedule, so their collectives stay in step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image
from torch import Tensor

from ganforge.config.schema import RunConfig, TrainConfig
from ganforge.errors import TrainingDivergedError
from ganforge.runs.checkpoint import checkpoint_path, list_checkpoints
from ganforge.runs.metrics_log import SAMPLES_FOLDER
from ganforge.train import distributed
from ganforge.train.diagnostics import detect_failure_signs, diversity
from ganforge.train.divergence import DivergenceGuard, diverged
from ganforge.train.monitor import RunLog
from ganforge.train.signals import StopRequest
from ganforge.train.step import train_step
from ganforge.train.threads import ThreadBudget
from ganforge.train.trainer import Trainer


class TrainingHook(Protocol):
    """Work done at the evaluation steps, on the process that writes the run folder."""

    def measure(self, step: int) -> dict[str, float]: ...  # values for this step's log row

    def wants_checkpoint(self) -> bool: ...  # whether the last measurement deserves a checkpoint (a new best)

    def checkpointed(self, checkpoint: Path) -> None: ...  # the checkpoint written at a measured step


HookFactory = Callable[[Trainer, Path], "TrainingHook | None"]  # (trainer, run folder) -> hook; None: nothing to do


@dataclass
class TrainResult:
    """Where a finished run left its files."""

    run_dir: Path
    step: int
    checkpoint: Path
    samples: Path
    metrics: dict[str, Any]  # the last log row
    stopped_by: str | None = None  # "SIGINT"/"SIGTERM" when a signal ended the run early (it is checkpointed)


@dataclass(frozen=True)
class Due:
    """What the loop does after one step."""

    log: bool  # read the losses and write a log row (with the hooks' values when ``hooks``)
    hooks: bool  # an evaluation step: the hooks measure
    check_finite: bool  # check losses and weights before a checkpoint may be written
    checkpoint: bool  # write a checkpoint (a hook may ask for one too)
    samples: bool  # write the fixed-noise preview picture


def due_at(train: TrainConfig, step: int, final: bool) -> Due:
    """The loop's schedule: every N steps of each kind, and everything at the last step."""
    def every(interval: int) -> bool:
        return bool(interval) and step % interval == 0

    evaluating = every(train.eval_every) or (final and bool(train.eval_every))
    checkpoint = every(train.checkpoint_every) or final
    return Due(log=every(train.log_every) or final or evaluating, hooks=evaluating,
               check_finite=checkpoint or evaluating, checkpoint=checkpoint, samples=every(train.sample_every) or final)


def fit(trainer: Trainer, run_dir: Path, steps: int, *, hooks: Sequence[HookFactory] = (),
        show_progress: bool = True, threads: ThreadBudget | None = None,
        on_first_step: Callable[[], None] | None = None) -> TrainResult:
    """Train until ``steps`` (or a stop signal), writing the run folder as the schedule says; an auto ``threads``
    budget follows the other processes' load as the steps go.

    ``on_first_step`` is called once the first step is done: from then on a failure is one of training, not
    of its start. After a stop signal a second Ctrl-C does not abort the checkpoint; a third raises
    KeyboardInterrupt saying which checkpoint is the last good one.
    """
    train = trainer.config.train
    main = distributed.is_main()  # under torchrun only rank 0 measures and writes; the others train alongside
    active = [hook for hook in (make(trainer, run_dir) for make in hooks) if hook is not None] if main else []
    images_per_step = train.batch_size * train.d_steps * distributed.world_size()
    last_checkpoint: Path | None = None
    last_samples: Path | None = None
    row: dict[str, Any] = {}
    with RunLog(run_dir, trainer.step, steps, images_per_step, show=show_progress,
                tensorboard=train.tensorboard, writes=main) as log, StopRequest() as stop:
        guard = DivergenceGuard(trainer, run_dir)
        watch = FailureWatch(trainer.config, log)
        stopping = False
        try:
            while trainer.step < steps and not stopping:
                train_step(trainer)
                if threads is not None:
                    threads.recheck()
                if on_first_step is not None:
                    on_first_step()
                    on_first_step = None
                step = trainer.step
                log.advance(step)
                # Read once (and alike on every process), so the step that sees it is handled as the last.
                stopping = distributed.any_rank(stop.requested is not None)
                due = due_at(train, step, final=step == steps or stopping)
                preview: Tensor | None = None  # G(fixed noise) at this step, made at most once
                try:
                    if due.log:
                        preview, row = _record(trainer, run_dir, log, step, active if due.hooks else [])
                        watch.add(row, final=step == steps or stopping)
                    if due.check_finite:
                        guard.check(step)
                except TrainingDivergedError as error:
                    log.event(step, "rollback", **guard.roll_back(error))
                    continue
                if main and due.samples:
                    last_samples = trainer.save_preview(run_dir / SAMPLES_FOLDER / f"step_{step:07d}.png", preview)
                    log.images(step, Image.open(last_samples))
                best = due.hooks and any(hook.wants_checkpoint() for hook in active)
                if main and (due.checkpoint or best):
                    last_checkpoint = trainer.save(run_dir)
                if best:
                    for hook in active:
                        hook.checkpointed(last_checkpoint)
        except KeyboardInterrupt:
            if stop.requested is None:  # not the third Ctrl-C of a stop (not the main thread, or a Python caller's)
                raise
            raise KeyboardInterrupt(_aborted(run_dir, trainer.step, steps)) from None
        log.message(f"samples: {last_samples}")
        log.message(f"checkpoint: {last_checkpoint}")
        stopped_by = (stop.requested or "a signal to another process") if trainer.step < steps else None
        if stopped_by:
            log.message(f"stopped by {stopped_by} at step {trainer.step} of {steps}; continue with: "
                        f"ganforge train --resume {run_dir} --steps {steps}", always=True)
    if not main:  # rank 0 wrote the run folder; its last files are those of the final step
        last_checkpoint = checkpoint_path(run_dir, trainer.step)
        last_samples = run_dir / SAMPLES_FOLDER / f"step_{trainer.step:07d}.png"
    assert last_checkpoint is not None and last_samples is not None
    return TrainResult(run_dir, trainer.step, last_checkpoint, last_samples, row, stopped_by=stopped_by)


def _aborted(run_dir: Path, step: int, steps: int) -> str:
    """What a Ctrl-C that aborted the checkpoint of a stop leaves: the last good checkpoint, if any."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        return f"aborted at step {step}: no checkpoint was written, so this run cannot be resumed"
    newest = checkpoints[-1]
    unsaved = "" if newest == checkpoint_path(run_dir, step) else " without saving a checkpoint"
    return (f"aborted at step {step}{unsaved}; the last good checkpoint is {newest}: continue with "
            f"ganforge train --resume {run_dir} --steps {steps}")


def _record(trainer: Trainer, run_dir: Path, log: RunLog, step: int,
            hooks: Sequence[TrainingHook]) -> tuple[Tensor, dict[str, Any]]:
    """Read the losses since the last row, let the hooks measure, and write the log row; the preview made for
    its diversity is returned for the sample picture. A non-finite loss is logged, then raised."""
    values, bad_step = trainer.meter.read()
    trainer.meter.reset()
    if bad_step is not None:
        log.record(step, values, **trainer.learning_rates())
        raise diverged(run_dir, bad_step, values)
    scores = {key: value for hook in hooks for key, value in hook.measure(step).items()}
    preview = trainer.preview()
    row = log.record(step, values, **trainer.learning_rates(), diversity=round(diversity(preview), 6),
                     threads=torch.get_num_threads(), **scores)
    return preview, row


class FailureWatch:
    """Tells the user once per kind when a known failure sign (starved G, D won, collapse) shows up."""

    def __init__(self, config: RunConfig, log: RunLog) -> None:
        self.config = config
        self.log = log
        self.rows: list[dict[str, Any]] = []  # this session's log rows
        self.warned: set[str] = set()

    def add(self, row: dict[str, Any], final: bool) -> None:
        """Add a log row; the evaluations' signs (modes lost, blurred modes, FID rising) are judged at the end,
        since early in training every run still misses modes."""
        self.rows.append(row)
        for sign in detect_failure_signs(self.rows, self.config, evaluations=final):
            if sign.ongoing and sign.kind not in self.warned:
                self.warned.add(sign.kind)
                self.log.warning(sign.message)
