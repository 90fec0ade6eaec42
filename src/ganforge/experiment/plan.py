"""The grid of runs an experiment trains: one planned run per variant and seed, each config built and checked.

Every config is checked before anything trains (the model/data pairing, the data source, the metrics and
their feature extractor), so a typo in the spec fails at once, not after hours of training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganforge.config.schema import RunConfig, apply_overrides
from ganforge.config.validate import validate
from ganforge.data import IMAGE_SETS, MIXTURES, builtin_names, mixture_modes
from ganforge.data.digits import STACKED_DIGITS_MODES
from ganforge.errors import ConfigError, GanforgeError
from ganforge.evaluation.metrics.classifier import NUM_CLASSES
from ganforge.evaluation.registry import DIGIT_DATA, FEATURE_METRICS, resolve_feature_extractor, resolve_metrics
from ganforge.experiment.folder import RUNS_FOLDER
from ganforge.experiment.spec import ExperimentSpec, Variant

PLAN_IDENTITY = ("variant", "seed", "settings", "metrics")  # what must match for an earlier result to count


@dataclass
class PlannedRun:
    """One run of the grid: a variant trained with one seed into ``run_dir``."""

    variant: Variant
    seed: int
    settings: dict[str, Any]  # the config keys the spec sets for this run (seed included), flat
    config: RunConfig  # those applied to the defaults
    metrics: list[str]  # what its evaluation measures
    run_dir: Path

    @property
    def label(self) -> str:
        return f"{self.variant.name} seed {self.seed}"

    def plan(self) -> dict[str, Any]:
        """What ``run.json`` holds: what defines the run, and its config for the worker process that trains it."""
        return json.loads(json.dumps({"variant": self.variant.name, "values": self.variant.values, "seed": self.seed,
                                      "settings": self.settings, "metrics": self.metrics,
                                      "config": self.config.to_dict()}))

    def defined_by(self) -> dict[str, Any]:
        """The parts of the plan that must match for an earlier result to count: the spec's keys, not the
        defaults (so a ganforge that adds a config key still continues an experiment it finds half done)."""
        plan = self.plan()
        return {key: plan[key] for key in PLAN_IDENTITY}


def plan_runs(spec: ExperimentSpec, out: Path | str) -> list[PlannedRun]:
    """Every run of the grid, each config built and checked before anything trains."""
    runs = []
    for variant in spec.variants():
        where = f"variant {variant.name}" if variant.values else "config"
        values = {**spec.base, **variant.values}
        values.setdefault("tensorboard", False)  # dozens of runs: TensorBoard logs only when the spec asks
        try:
            config = apply_overrides(RunConfig(), values)
            validate(config)
            _check_model_and_data(config)
            metrics = resolve_metrics(config, spec.metrics if spec.metrics is not None else config.train.eval_metrics)
            _check_feature_extractor(config, metrics)
            seeded = [apply_overrides(config, {"seed": seed}) for seed in spec.seeds]
            for run_config in seeded:
                validate(run_config)
        except GanforgeError as error:
            raise ConfigError(f"{spec.source}, {where}: {error}") from None
        for seed, run_config in zip(spec.seeds, seeded):
            runs.append(PlannedRun(variant, seed, {**values, "seed": seed}, run_config, metrics,
                                   Path(out) / RUNS_FOLDER / variant.name / f"seed-{seed}"))
    return runs


def _check_model_and_data(config: RunConfig) -> None:
    """The model/data mismatches training would find only after loading the data."""
    model, data = config.model.model, config.data.data
    if model == "toy" and data in IMAGE_SETS:
        raise ConfigError(f"the toy model learns 2-D points, but {data} holds images: "
                          "use data ring8 or grid25, or model mlp or dcgan")
    if model != "toy" and data in MIXTURES:
        raise ConfigError(f"model {model} learns images, but {data} holds 2-D points: use model toy")
    if data not in builtin_names() and not Path(data).expanduser().exists():
        raise ConfigError(f"data source '{data}' is neither a built-in ({', '.join(builtin_names())}) nor an "
                          "existing path: check the spelling or the path")


def _check_feature_extractor(config: RunConfig, metrics: Sequence[str]) -> None:
    extractor = resolve_feature_extractor(config, config.train.feature_extractor)
    if extractor == "classifier" and config.data.data not in DIGIT_DATA and any(m in FEATURE_METRICS for m in metrics):
        raise ConfigError(f"the classifier feature extractor knows only {' and '.join(DIGIT_DATA)}, not "
                          f"{config.data.data}: set feature_extractor: inception, or choose other metrics")


def coverage_target(config: RunConfig, metrics: Sequence[str]) -> tuple[str, int] | None:
    """(metric, its value when every mode is covered): mixtures' modes, the 10 digit classes, 1,000 stacked modes."""
    data = config.data.data
    if data in MIXTURES and "modes_covered" in metrics:
        return "modes_covered", len(mixture_modes(data)[0])
    if data == "stacked-digits" and "modes_covered" in metrics:
        return "modes_covered", STACKED_DIGITS_MODES
    if data == "digits" and "classes_covered" in metrics:
        return "classes_covered", NUM_CLASSES
