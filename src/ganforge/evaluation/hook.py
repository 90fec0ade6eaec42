"""``--eval-every`` as a training hook: the metrics of the generator in training, and checkpoints/best."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ganforge.config.resolve import learns_points
from ganforge.errors import ConfigError
from ganforge.evaluation.evaluator import Evaluator
from ganforge.evaluation.registry import HIGHER_IS_BETTER
from ganforge.evaluation.results import write_results
from ganforge.runs.files import write_text_atomically
from ganforge.sampling.generator import TrainedGenerator
from ganforge.train.trainer import Trainer


class PeriodicEvaluation:
    """``--eval-every``: metrics of the generator in training, eval.json, and checkpoints/best by one metric.

    The real data, the feature extractor and the real-data floors are prepared once. The best checkpoint is a
    copy outside the pruned step folders, so ``--keep N`` keeps the last N plus the best.
    """

    @classmethod
    def for_run(cls, trainer: Trainer, run_dir: Path) -> PeriodicEvaluation | None:
        """The hook :func:`ganforge.train.loop.fit` takes: one when the run evaluates (``--eval-every``)."""
        return cls(trainer, run_dir) if trainer.config.train.eval_every else None

    def __init__(self, trainer: Trainer, run_dir: Path) -> None:
        train = trainer.config.train
        self.trainer = trainer
        self.run_dir = run_dir
        weights = Path(train.inception_weights) if train.inception_weights else None
        self.evaluator = Evaluator(trainer.config, train.eval_metrics, train.eval_samples, train.feature_extractor,
                                   seed=train.seed, inception_weights=weights, device=trainer.device)
        self.metric = train.best_metric or self._default_metric()
        if self.metric not in HIGHER_IS_BETTER:
            raise ConfigError(f"best_metric '{self.metric}' is not a metric: use one of {', '.join(HIGHER_IS_BETTER)}")
        if self.metric not in self.evaluator.metrics:  # checked now, not after the first --eval-every steps
            raise ConfigError(f"best_metric '{self.metric}' is not among this run's metrics "
                              f"({', '.join(self.evaluator.metrics)}): add it to --eval-metrics or choose one of those")
        self.higher_is_better = HIGHER_IS_BETTER[self.metric]
        self.record_path = run_dir / "checkpoints" / "best.json"
        self.best = json.loads(self.record_path.read_text()) if self.record_path.is_file() else None
        self.improved = False

    def _default_metric(self) -> str:
        """fid for images and reverse_kl for points, or the first metric the run measures without it."""
        preferred = "reverse_kl" if learns_points(self.trainer.config) else "fid"
        return preferred if preferred in self.evaluator.metrics else self.evaluator.metrics[0]

    def measure(self, step: int) -> dict[str, float]:
        """Evaluate now; returns the metrics for the log row and notes whether the chosen one improved."""
        generator = self.trainer.sampling_generator
        results = self.evaluator(TrainedGenerator(generator, self.trainer.config, step, self.trainer.device))
        generator.train()  # TrainedGenerator switched it to eval mode
        write_results(results, self.run_dir)
        value = float(results[self.metric])
        previous = None if self.best is None else self.best["value"]
        self.improved = previous is None or (value > previous if self.higher_is_better else value < previous)
        if self.improved:
            self.best = {"metric": self.metric, "value": value, "step": step}
        return {key: value for key, value in results.items() if isinstance(value, (int, float))
                and not isinstance(value, bool) and not key.endswith("_floor") and key not in ("num_samples", "step")}

    def wants_checkpoint(self) -> bool:
        return self.improved

    def checkpointed(self, checkpoint: Path) -> None:
        """Copy the checkpoint just written at a new best to checkpoints/best (replaced atomically) and record why."""
        if not self.improved:
            return
        best = checkpoint.parent / "best"
        staging = checkpoint.parent / f".best.tmp-{os.getpid()}"
        retired = checkpoint.parent / f".best.old-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(checkpoint, staging)
        if best.exists():
            os.replace(best, retired)
        os.replace(staging, best)
        shutil.rmtree(retired, ignore_errors=True)
        write_text_atomically(self.record_path, json.dumps(self.best))
