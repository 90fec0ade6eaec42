"""The divergence guard: a NaN or infinite loss or weight stops the run, or rolls it back (``--on-nan``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ganforge.errors import TrainingDivergedError
from ganforge.runs.checkpoint import latest_good_checkpoint
from ganforge.train import distributed
from ganforge.train.trainer import Trainer


def diverged(run_dir: Path, step: int, values: dict[str, float]) -> TrainingDivergedError:
    """The error for a divergence first seen at ``step``, naming the values that went bad and the last good checkpoint."""
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    what = ", ".join(bad) if bad else "a loss or weight"
    good = latest_good_checkpoint(run_dir)  # not a newer one that a resume skipped as damaged
    if good:
        advice = (f"the last good checkpoint is {good}; continue from it with lower rates: "
                  f"ganforge train --resume {run_dir} --lr-d R --lr-g R")
    else:
        advice = ("no checkpoint had been written yet, so start again with lower --lr-d/--lr-g "
                  "(or --on-nan rollback and a smaller --checkpoint-every)")
    error = TrainingDivergedError(f"training diverged: {what} became NaN or infinite at step {step}; {advice}")
    error.step = step
    return error


class DivergenceGuard:
    """Checks that the losses and weights are finite before a checkpoint, and handles a divergence:
    re-raised under ``--on-nan stop``, else a rollback to the last checkpoint (up to ``--max-rollbacks``)."""

    def __init__(self, trainer: Trainer, run_dir: Path) -> None:
        self.trainer = trainer
        self.run_dir = run_dir
        self.rollbacks = 0

    def check(self, step: int) -> None:
        """Raise if a loss since the last read or a weight is not finite (a checkpoint is written only when finite)."""
        _, bad_step = self.trainer.meter.read()
        if bad_step is not None or not distributed.all_ranks(self.trainer.weights_are_finite()):
            raise diverged(self.run_dir, bad_step or step, {})

    def roll_back(self, error: TrainingDivergedError) -> dict[str, Any]:
        """Return to the last checkpoint with halved learning rates, or re-raise when that is not allowed."""
        train = self.trainer.config.train
        if train.on_nan != "rollback" or self.rollbacks >= train.max_rollbacks:
            if self.rollbacks:
                raise TrainingDivergedError(f"{error} (after {self.rollbacks} rollbacks)") from None
            raise error
        self.rollbacks += 1
        return {"diverged_at": error.step, **self.trainer.roll_back(self.run_dir), "rollback": self.rollbacks}
