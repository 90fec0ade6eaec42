"""Watching a run: statistics summed on the device, read every ``log_every`` steps.

Between reads nothing leaves the device, so a GPU never waits for the host.
Each read appends one JSON object to ``metrics.jsonl`` and refreshes the
progress bar (or prints a line where the output is not a terminal).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor

from ganforge.errors import GanforgeError
from ganforge.runs.metrics_log import METRICS_FILE, append_row
from ganforge.train import distributed

TENSORBOARD_FOLDER = "tensorboard"  # RUN/tensorboard: the TensorBoard logs (--tensorboard)

# d_real = mean D(x), d_fake = mean D(G(z)) in the D step (probabilities for the seed losses, raw scores for
# lsgan/hinge/wgan-gp/rpgan); *_grad_norm = L2 norm of all of a network's gradients; gradient_penalty: wgan-gp's
# term; r1_penalty, r2_penalty: the zero-centred penalties on real and generated samples (--r1, --r2), when applied;
# info_loss: the cross-entropy of D's prediction of each fake sample's latent component (--info-weight), before
# its weight, in the D step; feature_matching: the distance between the fake and real batches' mean D features
# (--feature-matching), before its weight, in the G step
STATISTICS = ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "gradient_penalty",
              "r1_penalty", "r2_penalty", "info_loss", "feature_matching")


class Meter:
    """Running sums of the training statistics, kept on the device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._slots: dict[tuple[str, ...], tuple[Tensor, Tensor]] = {}  # names -> (their indices, ones to count)
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(STATISTICS), device=self.device)
        self.counts = torch.zeros(len(STATISTICS), device=self.device)
        self.first_bad_step = torch.full((), -1, dtype=torch.int64, device=self.device)

    def add(self, step: int, **values: Tensor) -> None:
        """Accumulate scalar tensors by name; remember the first step any of them was NaN or infinite.

        A handful of device ops per call, whatever the number of values: on CPU each op costs microseconds,
        and the loop calls this twice per step.
        """
        names = tuple(values)
        if names not in self._slots:
            self._slots[names] = (torch.tensor([STATISTICS.index(name) for name in names], device=self.device),
                                  torch.ones(len(names), device=self.device))
        slots, ones = self._slots[names]
        stacked = torch.stack([value.detach().float().reshape(()) for value in values.values()])
        self.sums.index_add_(0, slots, stacked)
        self.counts.index_add_(0, slots, ones)
        bad = stacked.isfinite().all().logical_not() & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(bad, step, self.first_bad_step)

    def read(self) -> tuple[dict[str, float], int | None]:
        """Means since the last reset (one host sync), and the first non-finite step or None.

        Under torchrun: means over all processes' values, and the first non-finite step of any process,
        so every process reads the same numbers and takes the same decision (a collective: all call it).
        """
        sums, counts = distributed.sum_over_ranks(self.sums), distributed.sum_over_ranks(self.counts)
        means = (sums / counts.clamp(min=1)).tolist()
        counted = counts.tolist()
        bad_step = int(distributed.first_step_over_ranks(self.first_bad_step))
        values = {name: mean for name, mean, count in zip(STATISTICS, means, counted) if count}
        return values, (bad_step if bad_step >= 0 else None)


class RunLog:
    """``metrics.jsonl`` plus what the user sees: a progress bar, or plain lines when piped."""

    def __init__(self, run_dir: Path, start_step: int, total_steps: int, images_per_step: int, show: bool = True,
                 tensorboard: bool | None = None, writes: bool = True) -> None:
        self.path = run_dir / METRICS_FILE
        self.images_per_step = images_per_step  # real images consumed per step (batch size x D steps x processes)
        self.writes = writes  # False on torchrun's ranks other than 0: no files, no terminal output
        self.tensorboard = _tensorboard_writer(run_dir, tensorboard) if writes else None
        self.console = Console(stderr=True)
        show = show and writes
        self.interactive = show and self.console.is_terminal
        self.show = show
        self.show_lines = show and not self.interactive
        self.total_steps = total_steps
        self.last_time = time.perf_counter()
        self.last_step = start_step
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.interactive,
        )
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step, stats="")

    def __enter__(self) -> RunLog:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()
        if self.tensorboard is not None:
            self.tensorboard.close()

    def advance(self, step: int) -> None:
        self.progress.update(self.task, completed=step)

    def record(self, step: int, values: dict[str, float], **extra: Any) -> dict[str, Any]:
        """Append one row; ``values`` were just read from the device, so the clock is honest."""
        now = time.perf_counter()
        seconds_per_step = (now - self.last_time) / max(step - self.last_step, 1)
        self.last_time, self.last_step = now, step
        row = {"step": step, **{k: round(v, 6) for k, v in values.items()},
               "seconds_per_step": round(seconds_per_step, 6),
               "images_per_second": round(self.images_per_step / max(seconds_per_step, 1e-9), 2), **extra}
        if self.writes:
            append_row(self.path, row)
        if self.tensorboard is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(_TENSORBOARD_TAGS.get(key, f"metrics/{key}"), value, step)
        stats = "  ".join(f"{label} {values[key]:.3f}" for key, label in
                          (("d_loss", "D"), ("g_loss", "G"), ("d_real", "D(x)"), ("d_fake", "D(G(z))")) if key in values)
        stats += f"  {seconds_per_step:.3f} s/step"
        self.progress.update(self.task, completed=step, stats=stats)
        if self.show_lines:
            self.console.print(f"step {step}/{self.total_steps}  {stats}", highlight=False)
        return row

    def images(self, step: int, grid: Any) -> None:
        """The fixed-noise sample picture (a PIL image) in TensorBoard."""
        if self.tensorboard is not None:
            self.tensorboard.add_image("samples", np.asarray(grid.convert("RGB")), step, dataformats="HWC")

    def event(self, step: int, name: str, **details: Any) -> None:
        """Record something that happened (e.g. a rollback) in metrics.jsonl and tell the user."""
        if not self.writes:
            return
        append_row(self.path, {"step": step, "event": name, **details})
        self.progress.update(self.task, completed=details.get("to_step", step))
        self.last_step = details.get("to_step", step)
        if self.show:
            described = ", ".join(f"{key} {value}" for key, value in details.items())
            self.console.print(f"[yellow]{name}[/] at step {step}: {described}", highlight=False)

    def warning(self, text: str) -> None:
        """A warning in the terminal (also shown with --quiet) and in metrics.jsonl for the report."""
        if not self.writes:
            return
        append_row(self.path, {"step": self.last_step, "event": "warning", "message": text})
        self.console.print(f"[yellow]warning:[/] {text}", highlight=False, soft_wrap=True)

    def message(self, text: str, always: bool = False) -> None:
        """A line for the user; ``always`` prints it with --quiet too."""
        if self.show or (always and self.writes):
            self.console.print(text, highlight=False, soft_wrap=True)


_TENSORBOARD_TAGS = {  # metrics.jsonl key -> TensorBoard tag; others go under metrics/
    "d_loss": "loss/discriminator",
    "g_loss": "loss/generator",
    "d_real": "D/real D(x)",
    "d_fake": "D/fake D(G(z))",
    "d_grad_norm": "gradient_norm/discriminator",
    "g_grad_norm": "gradient_norm/generator",
    "lr_d": "learning_rate/discriminator",
    "lr_g": "learning_rate/generator",
    "seconds_per_step": "speed/seconds_per_step",
    "images_per_second": "speed/images_per_second",
}


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _tensorboard_writer(run_dir: Path, wanted: bool | None) -> Any:
    """A SummaryWriter in RUN/tensorboard, or None when not wanted (None = when tensorboard is installed)."""
    if wanted is False or (wanted is None and not tensorboard_available()):
        return None
    if not tensorboard_available():
        raise GanforgeError("--tensorboard needs the tensorboard package: pip install 'ganforge[tensorboard]'")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(run_dir / TENSORBOARD_FOLDER))
