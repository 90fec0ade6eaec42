"""Time to quality: training seconds until a run reaches a quality target, ganforge against the textbook loop.

    python benchmarks/time_to_quality.py toy --seeds 0 1 2
    python benchmarks/time_to_quality.py dcgan --seeds 0 1 --fid 3.0

``toy``: the toy model on ring8 with its presets until all 8 modes are covered with
at least 90% high-quality samples (2,500 points, the VEEGAN/PacGAN protocol).
``dcgan``: DCGAN 28x28 on the embedded digits (batch 64) until the classifier FID
(2,000 generated images against the digits) is at or below ``--fid``; the textbook
loop of ``benchmarks/textbook.py`` trains the same networks from the same initial
weights alongside, so the two columns differ only in engineering.

The clock runs only while training: each check (every ``--check-every`` steps)
is timed apart and left out. A run that misses the target within ``--max-steps``
is reported as such, never as a time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from textbook import TextbookLoop

from ganforge.config.resolve import resolve_config
from ganforge.config.schema import RunConfig, apply_overrides
from ganforge.data import TensorData, load_data
from ganforge.evaluation.evaluator import Evaluator
from ganforge.models import build_models
from ganforge.sampling.generator import TrainedGenerator
from ganforge.train.step import train_step
from ganforge.train.trainer import Trainer

HIGH_QUALITY_TARGET = 0.9
FID_SAMPLES = 2000


@dataclass
class Outcome:
    seconds: float | None  # training seconds to the target; None when it was not reached
    steps: int
    value: dict[str, float]  # the metrics at the last check


def race(step: Callable[[], None], check: Callable[[int], tuple[bool, dict[str, float]]], check_every: int,
         max_steps: int) -> Outcome:
    """Train by ``step`` until ``check`` says the target is met; only the training time counts."""
    seconds, steps, values = 0.0, 0, {}
    while steps < max_steps:
        start = time.perf_counter()
        for _ in range(check_every):
            step()
        seconds += time.perf_counter() - start
        steps += check_every
        reached, values = check(steps)
        if reached:
            return Outcome(seconds, steps, values)
    return Outcome(None, steps, values)


def run_config(kind: str, seed: int) -> RunConfig:
    keys = ({"model": "toy", "data": "ring8", "preset": "lecture"} if kind == "toy"  # the loop it was measured with
            else {"model": "dcgan", "data": "digits", "image_size": 28, "batch_size": 64, "preset": "lecture"})
    return apply_overrides(RunConfig(), {**keys, "seed": seed, "device": "cpu", "tensorboard": False})


def ganforge_outcome(config: RunConfig, target: Callable[[dict[str, float]], bool], evaluator: Evaluator,
                     check_every: int, max_steps: int) -> tuple[Outcome, Trainer]:
    device = torch.device("cpu")
    data = load_data(config.data, config.model.image_size, config.model.channels, config.train.seed, device)
    config = resolve_config(config, data)
    trainer = Trainer(config, data, device)

    def check(steps: int) -> tuple[bool, dict[str, float]]:
        results = evaluator(TrainedGenerator(trainer.sampling_generator, config, steps, device))
        trainer.generator.train()
        return target(results), results

    return race(lambda: train_step(trainer), check, check_every, max_steps), trainer


def textbook_outcome(trainer: Trainer, target: Callable[[dict[str, float]], bool], evaluator: Evaluator,
                     check_every: int, max_steps: int) -> Outcome:
    """The textbook loop on the same model config and the same initial weights as ganforge's run."""
    config = trainer.config
    generator, discriminator = build_models(config.model, seed=config.train.seed)
    data = trainer.data
    assert isinstance(data, TensorData)
    loop = TextbookLoop(generator, discriminator, data.samples.cpu(), config.train.batch_size, generator.z_dim)

    def check(steps: int) -> tuple[bool, dict[str, float]]:
        results = evaluator(TrainedGenerator(generator, config, steps, torch.device("cpu")))
        generator.train()
        return target(results), results

    return race(loop.step, check, check_every, max_steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["toy", "dcgan"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fid", type=float, default=3.0, help="dcgan: the classifier-FID target")
    parser.add_argument("--check-every", type=int, default=None, help="default: toy 250, dcgan 250")
    parser.add_argument("--max-steps", type=int, default=None, help="default: toy 6000, dcgan 4000")
    parser.add_argument("--no-textbook", action="store_true", help="dcgan: time ganforge alone")
    args = parser.parse_args()
    torch.set_num_threads(2)
    check_every = args.check_every or 250
    max_steps = args.max_steps or (6000 if args.kind == "toy" else 4000)
    rows: list[tuple[int, Outcome, Outcome | None]] = []
    for seed in args.seeds:
        config = run_config(args.kind, seed)
        if args.kind == "toy":
            evaluator = Evaluator(config, ["modes_covered", "high_quality"], seed=seed)

            def target(results: dict[str, float]) -> bool:
                return results["modes_covered"] == 8 and results["high_quality"] >= HIGH_QUALITY_TARGET
        else:
            evaluator = Evaluator(config, ["fid"], num_samples=FID_SAMPLES, seed=seed)

            def target(results: dict[str, float]) -> bool:
                return results["fid"] <= args.fid
        ours, trainer = ganforge_outcome(config, target, evaluator, check_every, max_steps)
        theirs = None if args.kind == "toy" or args.no_textbook else textbook_outcome(
            trainer, target, evaluator, check_every, max_steps)
        rows.append((seed, ours, theirs))
        print(f"seed {seed}: ganforge {_shown(ours)}" + (f"; textbook {_shown(theirs)}" if theirs else ""), flush=True)
    reached = [ours.seconds for _, ours, _ in rows if ours.seconds is not None]
    if reached:
        print(f"ganforge: target reached in {len(reached)}/{len(rows)} seeds, median {statistics.median(reached):.1f} s")
    textbook = [theirs.seconds for _, _, theirs in rows if theirs is not None and theirs.seconds is not None]
    if textbook:
        print(f"textbook: target reached in {len(textbook)}/{len(rows)} seeds, median {statistics.median(textbook):.1f} s")


def _shown(outcome: Outcome) -> str:
    metrics = ", ".join(f"{key} {value:.3g}" for key, value in outcome.value.items()
                        if key in ("fid", "modes_covered", "high_quality"))
    if outcome.seconds is None:
        return f"target not reached in {outcome.steps} steps ({metrics})"
    return f"{outcome.seconds:.1f} s, {outcome.steps} steps ({metrics})"


if __name__ == "__main__":
    main()
