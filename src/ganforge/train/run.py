"""Start a new run or resume one: read the data, resolve the config, build the trainer, and fit.

``hooks`` are made for the run once its trainer exists (see :mod:`ganforge.train.loop`); the Python
API hands in the periodic evaluation this way, so training never imports the evaluation code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from ganforge.config.io import to_yaml
from ganforge.config.resolve import check_model_fits_data, resolve_config, resolve_model, total_steps
from ganforge.config.schema import DataConfig, RunConfig, apply_overrides
from ganforge.config.validate import validate
from ganforge.data import RealData, TensorData, builtin_kind, load_data, with_absolute_path
from ganforge.errors import ConfigError, DataError, GanforgeError
from ganforge.runs.checkpoint import Checkpoint, list_checkpoints, read_checkpoint
from ganforge.runs.files import write_text_atomically
from ganforge.runs.lock import hold_run_folder
from ganforge.runs.metrics_log import CONFIG_FILE, METRICS_FILE, SAMPLES_FOLDER, append_row, forget_rows_after
from ganforge.train import distributed
from ganforge.train.loop import HookFactory, TrainResult, fit
from ganforge.train.monitor import TENSORBOARD_FOLDER
from ganforge.train.placement import automatic_precision, cpu_has_native_bf16, resolve_device
from ganforge.train.threads import ThreadBudget
from ganforge.train.trainer import Trainer


def train(config: RunConfig, out: Path | str, *, show_progress: bool = True,
          hooks: Sequence[HookFactory] = (), threads: int | None = None) -> TrainResult:
    """Train a GAN from scratch and write the run folder ``out``.

    The folder receives ``config.yaml``, ``metrics.jsonl``, ``samples/step_N.png``
    (a fixed-noise grid every ``sample_every`` steps) and ``checkpoints/step_N/``.
    A folder that already holds checkpoints is refused, never overwritten.
    """
    run_dir = Path(out)
    with _held(run_dir, unchanged="nothing was written"):
        if list_checkpoints(run_dir):
            raise ConfigError(
                f"{run_dir} already holds a run with checkpoints: continue it with --resume {run_dir}, "
                "or choose a new --out folder"
            )
        return _start(config, run_dir, resume_from=None, show_progress=show_progress, hooks=hooks, threads=threads)


def resume(run_dir: Path | str, overrides: dict[str, Any] | None = None, *, show_progress: bool = True,
           hooks: Sequence[HookFactory] = (), allow_data_change: bool = False,
           threads: int | None = None) -> TrainResult:
    """Continue a run from its latest checkpoint, exactly as if it had never stopped.

    ``overrides`` may change training keys (most often ``steps``, the new total);
    model and data keys must equal the run's own. Data that changed since the
    checkpoint (another count, shape or content) is an error, or with
    ``allow_data_change`` a warning and a ``data_changed`` event in metrics.jsonl.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise GanforgeError(f"cannot resume {run_dir}: it does not exist (pass the --out folder of an earlier run)")
    checkpoint = read_checkpoint(run_dir)
    # The model as it trained: keys added since the run was saved take their plain defaults, never a data preset.
    saved = dataclasses.replace(checkpoint.config, model=resolve_model(checkpoint.config.model))
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    if "data" in overrides:  # the run's path given again, relative to here, names the same (absolute) data
        overrides["data"] = with_absolute_path(DataConfig(data=str(overrides["data"]))).data
    for section in ("model", "data"):
        for key, saved_value in dataclasses.asdict(getattr(saved, section)).items():
            if key in overrides and overrides[key] != saved_value:
                raise ConfigError(
                    f"--resume {run_dir}: {key} {overrides[key]!r} differs from the run's {saved_value!r}; "
                    "a run resumes with its own model and data (start a new run with a new --out)"
                )
    for key in FIXED_ON_RESUME:
        if key in overrides and overrides[key] != getattr(saved.train, key):
            raise ConfigError(
                f"--resume {run_dir}: {key} {overrides[key]!r} differs from the run's {getattr(saved.train, key)!r}; "
                f"{FIXED_ON_RESUME[key]} (start a new run with a new --out to change it)"
            )
    config = apply_overrides(saved, overrides)
    if "steps" in overrides:
        config.train.epochs = None
    if config.train.preset is None:  # saved before presets existed: its unset keys keep the lectures' values
        config.train.preset = "lecture"
    with _held(run_dir, unchanged=f"{run_dir} is as it was"):
        return _start(config, run_dir, resume_from=checkpoint, show_progress=show_progress, hooks=hooks,
                      allow_data_change=allow_data_change, threads=threads)


# Training keys a resume cannot change, and why: the checkpoint's state already holds what they decided.
FIXED_ON_RESUME = {
    "seed": "the noise and data streams continue from the checkpoint's state",
    "preset": "a preset fills a new run's unset keys, and a saved run has them all set",
}


def resume_changes(saved: RunConfig, config: RunConfig) -> dict[str, list[Any]]:
    """The training keys whose value a resume changes, ``{key: [the run's, the new]}``; the length of the run
    (``steps``/``epochs``), which every longer resume changes, is not one of them."""
    before, after = dataclasses.asdict(saved.train), dataclasses.asdict(config.train)
    return {key: [before[key], after[key]] for key in after
            if key not in ("steps", "epochs") and before.get(key) != after[key]}


@contextlib.contextmanager
def _held(run_dir: Path, unchanged: str) -> Iterator[None]:
    """The run folder locked for this run (by rank 0 under torchrun); a Ctrl-C before training started says
    what it left (``unchanged``) in one line."""
    try:
        with hold_run_folder(run_dir) if distributed.is_main() else contextlib.nullcontext():
            yield
    except KeyboardInterrupt as interrupt:
        if str(interrupt):  # the training loop's own account of an abort
            raise
        raise KeyboardInterrupt(f"interrupted before training started; {unchanged}") from None


def _start(config: RunConfig, run_dir: Path, *, resume_from: Checkpoint | None, show_progress: bool,
           hooks: Sequence[HookFactory], threads: int | None, allow_data_change: bool = False) -> TrainResult:
    validate(config)
    budget = ThreadBudget(threads)  # auto: the start-up from here on is its first look at the other processes
    # One process, or one of torchrun's: then a process group for the run and this process's device.
    with distributed.session(resolve_device(config.train.device)) as device:
        return _start_on(device, config, run_dir, resume_from=resume_from, show_progress=show_progress,
                         hooks=hooks, threads=budget, allow_data_change=allow_data_change)


def _start_on(device: torch.device, config: RunConfig, run_dir: Path, *, resume_from: Checkpoint | None,
              show_progress: bool, hooks: Sequence[HookFactory], threads: ThreadBudget,
              allow_data_change: bool) -> TrainResult:
    if config.train.precision == "fp16" and device.type != "cuda":
        raise ConfigError("--precision fp16 needs a CUDA GPU (its loss scaling is for GPUs): use --precision bf16 on CPU")
    if config.train.precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        logging.getLogger("ganforge").warning(
            "this CPU has no native bf16 arithmetic (AVX-512 BF16 or AMX): --precision bf16 will run much slower "
            "than fp32 here; use --precision fp32")
    config = dataclasses.replace(config, data=with_absolute_path(config.data))
    check_model_fits_data(config.model.model, builtin_kind(config.data.data), config.data.data)
    with distributed.local_main_first():  # a download happens once per machine, not once per process
        data = load_data(config.data, config.model.image_size, config.model.channels, config.train.seed, device)
    data.shard(distributed.rank(), distributed.world_size())  # before total_steps: an epoch is of global batches
    config = resolve_config(config, data)
    if config.train.precision == "auto":  # decided for this device, and saved so: a resume keeps the arithmetic
        config = apply_overrides(config, {"precision": automatic_precision(device)})
    validate(config)  # again: a preset may have set a key (pack) that a value the user gave (batch_size) must fit
    steps = total_steps(config, data)
    trainer = Trainer(config, data, device, total_steps=steps)
    data_change = None
    if resume_from is not None:
        data_change = _data_change(data, resume_from, run_dir, allow_data_change)
        trainer.restore(resume_from)
        if trainer.step >= steps:
            raise ConfigError(f"{run_dir} is already at step {trainer.step}: pass --steps larger than {trainer.step}")
    distributed.require_same({"the steps to train": steps, "the step to start from": trainer.step,
                              "the real samples": len(data) if isinstance(data, TensorData) else 0})
    if not distributed.is_main():  # the run folder is rank 0's to write
        with threads:
            return fit(trainer, run_dir, steps, hooks=hooks, show_progress=show_progress, threads=threads)
    with _undone_unless_started(run_dir) as started:
        if resume_from is None:
            (run_dir / METRICS_FILE).unlink(missing_ok=True)  # of an earlier attempt that saved no checkpoint
        else:
            forget_rows_after(run_dir / METRICS_FILE, trainer.step)
            changes = resume_changes(resume_from.config, config)
            if changes:  # each as [the run's value, the new one]
                append_row(run_dir / METRICS_FILE, {"step": trainer.step, "event": "resume_override", **changes})
                logging.getLogger("ganforge").info("resuming at step %d with %s", trainer.step, ", ".join(
                    f"{key} {old} -> {new}" for key, (old, new) in changes.items()))
        if data_change is not None:
            append_row(run_dir / METRICS_FILE, {"step": trainer.step, "event": "data_changed", "change": data_change,
                                                "data": data.description})
        write_text_atomically(run_dir / CONFIG_FILE, to_yaml(config))
        with threads:  # chosen now, given back at the end
            return fit(trainer, run_dir, steps, hooks=hooks, show_progress=show_progress, threads=threads,
                       on_first_step=started)


@contextlib.contextmanager
def _undone_unless_started(run_dir: Path) -> Iterator[Callable[[], None]]:
    """Put the start-up files (config.yaml, metrics.jsonl, tensorboard/, samples/) back as they were when the
    block fails before training's first step is done, which the yielded function marks: a start that failed
    leaves the folder as it found it, and an earlier run's files are never lost."""
    files = {name: _read_text(run_dir / name) for name in (CONFIG_FILE, METRICS_FILE)}
    folders = {name: (run_dir / name).exists() for name in (TENSORBOARD_FOLDER, SAMPLES_FOLDER)}
    started = False

    def mark_started() -> None:
        nonlocal started
        started = True

    try:
        yield mark_started
    except BaseException:
        if not started:
            for name, content in files.items():
                if content is None:
                    (run_dir / name).unlink(missing_ok=True)
                else:
                    write_text_atomically(run_dir / name, content)
            for name, existed in folders.items():
                if not existed:
                    shutil.rmtree(run_dir / name, ignore_errors=True)
        raise


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _data_change(data: RealData, checkpoint: Checkpoint, run_dir: Path, allowed: bool) -> str | None:
    """How the data differs from what the checkpoint trained on (None: the same); an error unless ``allowed``."""
    change = data.change_since(checkpoint.section("data"))
    if change is None:
        return None
    if not allowed:
        raise DataError(f"--resume {run_dir}: {change} ({data.description}): resume on the run's own data, or pass "
                        "--allow-data-change to continue on this data (its order restarts with a new epoch)")
    logging.getLogger("ganforge").warning("resuming %s on changed data: %s; its order restarts with a new epoch",
                                          run_dir, change)
    return change
