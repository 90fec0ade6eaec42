"""Sample quality of ganforge's defaults on the published benchmarks, over several seeds.

Each benchmark trains the defaults (``ganforge train --model M --data D --seed S``, nothing else set, so
the data's preset applies) into a scratch folder, times the training call, evaluates the final generator
with ganforge's own metrics (``ganforge eval``) and prints one JSON line per run. The table gives, per
metric, mean +- standard error [min, max] over the seeds, beside the real-data floor (the same metric
between two halves of real data), the best published result and the target of issue 16.

    python benchmarks/quality.py                  # every benchmark, full seeds (about an hour on 2 cores)
    python benchmarks/quality.py --quick          # ring8 and grid25 on 3 seeds, digits on 1 (a few minutes)
    python benchmarks/quality.py --benchmarks ring8 --seeds 10 --out quality.md

Run it with nothing else on the machine: the training seconds are part of the result.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import ganforge
from ganforge.evaluation.evaluator import evaluate


@dataclass(frozen=True)
class Benchmark:
    """One row of the table: what trains, how it is measured, and what it is compared with."""

    name: str
    model: str
    data: str
    seeds: int  # seeds of the full run
    quick_seeds: int  # seeds under --quick; 0 = left out
    metrics: tuple[str, ...]  # the metrics shown, in order
    coverage: tuple[str, int] | None  # (metric, total): "every mode in k of n seeds"
    published: str
    target: str
    time_limit_s: float  # the training time the target allows
    keys: dict[str, Any] = field(default_factory=dict)  # config keys beyond model, data and seed


BENCHMARKS = (
    Benchmark("ring8", "toy", "ring8", 10, 3, ("modes_covered", "high_quality", "reverse_kl"), ("modes_covered", 8),
              "PacGAN2: 7.9/8 modes, 95.6% HQ, rKL 0.07; plain GAN 98.2% HQ but 6.3 modes (PacGAN Table 1)",
              "8/8 in every seed, HQ >= 98.5%, rKL <= 0.02 (means)", 60),
    Benchmark("grid25", "toy", "grid25", 10, 3, ("modes_covered", "high_quality", "reverse_kl"), ("modes_covered", 25),
              "PacGAN4: 24.8/25 modes, 93.6% HQ, rKL 0.04; ALI 95.7% HQ",
              "25/25 in every seed, HQ >= 96%, rKL <= 0.03 (means)", 60),
    Benchmark("digits", "dcgan", "digits", 3, 1, ("fid", "classes_covered"), ("classes_covered", 10),
              "-", "classifier FID <= 2x its floor, all 10 classes, in every seed", 300),
    Benchmark("stacked-digits", "dcgan", "stacked-digits", 3, 0, ("modes_covered", "reverse_kl"),
              ("modes_covered", 1000), "R3GAN: 1000 modes, KL 0.029 (R3GAN Table 3); PacDCGAN2: 1000, KL 0.06",
              "1000/1000 in every seed, KL <= 0.029", 900),
)


def cpu_name() -> str:
    """The CPU's model name and whether it has AVX-512 (bf16), as every speed figure must say."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = "AVX-512 BF16" if "avx512_bf16" in info else "AVX-512" if "avx512f" in info else "AVX2" if "avx2" in info \
        else "no AVX2"
    return f"{name} ({flags}), {torch.get_num_threads()} threads"


def run_one(benchmark: Benchmark, seed: int, folder: Path) -> dict[str, Any]:
    """Train the defaults with one seed and evaluate the final generator."""
    started = time.perf_counter()
    result = ganforge.train(out=folder / f"{benchmark.name}-seed{seed}", model=benchmark.model, data=benchmark.data,
                            seed=seed, show_progress=False, tensorboard=False, **benchmark.keys)
    seconds = time.perf_counter() - started
    values = evaluate(ganforge.load(result.run_dir, device="cpu"), metrics=list(benchmark.metrics))
    return {"benchmark": benchmark.name, "seed": seed, "train_seconds": round(seconds, 1), "steps": result.step,
            **{key: values[key] for key in values if key in benchmark.metrics or key.removesuffix("_floor") in
               benchmark.metrics}}


def spread(values: list[float]) -> str:
    """mean +- standard error [min, max]."""
    mean = statistics.fmean(values)
    error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{_number(mean)} ± {_number(error)} [{_number(min(values))}, {_number(max(values))}]"


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of every benchmark that has rows."""
    lines = ["| benchmark | seeds | metric | ganforge defaults: mean ± s.e. [min, max] | real floor | training s |",
             "|---|---|---|---|---|---|"]
    notes = []
    for benchmark in BENCHMARKS:
        mine = [row for row in rows if row["benchmark"] == benchmark.name]
        if not mine:
            continue
        seconds = spread([row["train_seconds"] for row in mine])
        for metric in benchmark.metrics:
            floor = spread([row[f"{metric}_floor"] for row in mine if f"{metric}_floor" in row]) \
                if any(f"{metric}_floor" in row for row in mine) else "-"
            lines.append(f"| {benchmark.name} | {len(mine)} | {metric} | {spread([row[metric] for row in mine])} "
                         f"| {floor} | {seconds} |")
        if benchmark.coverage:
            metric, total = benchmark.coverage
            full = sum(row[metric] >= total for row in mine)
            lines.append(f"| {benchmark.name} | {len(mine)} | all {total} covered | {full} of {len(mine)} seeds | | |")
        notes.append(f"- {benchmark.name}: published {benchmark.published}; target {benchmark.target}, "
                     f"training <= {benchmark.time_limit_s:.0f} s.")
    return "\n".join(lines + [""] + notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and no stacked digits: a few minutes")
    parser.add_argument("--benchmarks", nargs="+", choices=[b.name for b in BENCHMARKS], help="default: all")
    parser.add_argument("--seeds", type=int, help="seeds per benchmark (default: the benchmark's own)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the table (markdown) and the rows (.jsonl) here")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHMARKS if args.benchmarks is None or b.name in args.benchmarks]
    print(f"# {cpu_name()}, torch {torch.__version__}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ganforge-quality-") as scratch:
        for benchmark in chosen:
            count = args.seeds or (benchmark.quick_seeds if args.quick else benchmark.seeds)
            for seed in range(args.first_seed, args.first_seed + count):
                row = run_one(benchmark, seed, Path(scratch))
                rows.append(row)
                print(json.dumps(row), flush=True)
    text = table(rows)
    print(text)
    if args.out:
        args.out.write_text(f"{cpu_name()}, torch {torch.__version__}\n\n{text}\n")
        args.out.with_suffix(".jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
