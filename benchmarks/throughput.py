"""Training throughput: ganforge's loop against the textbook loop, same networks, same data, same process.

    python benchmarks/throughput.py                       # all cases, fp32 and bf16
    python benchmarks/throughput.py --cases dcgan28 --precisions fp32 --windows 7
    python benchmarks/throughput.py --precisions fp32 --compile   # ganforge with torch.compile
    python benchmarks/throughput.py --processes                   # each loop in its own fresh process

Images per second count the real images consumed per D+G iteration, after
warm-up; each case alternates windows of the baseline and of ganforge and
reports the median of each; the ratio is the median over the back-to-back pairs of windows (with its
range), so slow drift of this shared machine cancels out of it. FLOPs
per iteration come from torch's flop counter (convolutions and matrix
products, forward and backward); the fraction of peak divides the achieved
FLOP/s by this machine's best matmul peak in the same precision, measured at
start and again after each case.
The start-up column is the wall time from building the trainer to the end of
its first step: with ``--compile`` it is torch.compile's cost, measured with
an empty inductor cache (a fresh folder per run), as a new user meets it.

In one process, two baselines run beside ganforge: the lectures' loop (benchmarks/textbook.py: fresh noise for
the G update, so two G forwards per iteration) and pytorch/examples' dcgan loop (benchmarks/examples_loop.py:
the D update's fake batch reused, one G forward). ``--processes`` instead times each loop as users run it, a
fresh process from the command line: `ganforge train` (and `ganforge train --reuse-fake`) against
benchmarks/loop_process.py, the best wall time of the long runs minus the best of the short ones (start-up, the
final checkpoint and sample grid cancel), over ``--repeats`` alternating rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from examples_loop import ExamplesLoop
from textbook import TextbookLoop
from torch.utils.flop_counter import FlopCounterMode

from ganforge.config.resolve import resolve_config
from ganforge.config.schema import RunConfig, apply_overrides
from ganforge.data import load_data
from ganforge.models import build_models
from ganforge.train.placement import cpu_has_native_bf16
from ganforge.train.step import train_step
from ganforge.train.trainer import Trainer


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    image_size: int
    channels: int
    batch_size: int


CASES = {
    "mlp28": Case("mlp 28x28x1", "mlp", 28, 1, 128),
    "dcgan28": Case("dcgan 28x28x1", "dcgan", 28, 1, 128),
    "dcgan64": Case("dcgan 64x64x3", "dcgan", 64, 3, 64),
}
PROCESS_STEPS = {"mlp28": (330, 30), "dcgan28": (180, 20), "dcgan64": (14, 2)}  # (long, short) runs per case
GANFORGE = Path(sys.executable).with_name("ganforge")
HERE = Path(__file__).resolve().parent


def cpu_name() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def matmul_peak(dtype: torch.dtype, size: int = 4096, repeats: int = 5) -> float:
    """Best-of-``repeats`` FLOP/s of one square matrix product."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def flops_per_iteration(trainer: Trainer) -> int:
    """The FLOPs of one iteration of the trainer's networks, run plain (a compiled step hides its ops from
    the counter)."""
    if trainer.config.train.compile:
        plain = replace(trainer.config, train=replace(trainer.config.train, compile=False))
        trainer = Trainer(plain, trainer.data, trainer.device)
    with FlopCounterMode(display=False) as counter:
        train_step(trainer)
    return counter.get_total_flops()


def time_window(step, iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    return time.perf_counter() - start


def measure(case: Case, precision: str, windows: int, window_steps: int, warmup: int, compile: bool) -> dict:
    config = apply_overrides(RunConfig(), {"model": case.model, "data": "digits", "image_size": case.image_size,
                                           "channels": case.channels, "batch_size": case.batch_size,
                                           "precision": precision, "seed": 0, "compile": compile,
                                           "preset": "lecture"})  # the lectures' algorithm, as the baselines run it
    data = load_data(config.data, case.image_size, case.channels, 0, torch.device("cpu"))
    config = resolve_config(config, data)
    start = time.perf_counter()
    trainer = Trainer(config, data, torch.device("cpu"))
    train_step(trainer)
    trainer.meter.read()
    startup = time.perf_counter() - start
    generator, discriminator = build_models(config.model, seed=0)
    baseline = TextbookLoop(generator, discriminator, data.samples, case.batch_size, generator.z_dim, precision)
    generator, discriminator = build_models(config.model, seed=0)
    examples = ExamplesLoop(generator, discriminator, data.samples, case.batch_size, generator.z_dim, precision)
    reusing = Trainer(replace(config, train=replace(config.train, reuse_fake=True)), data, torch.device("cpu"))

    def ganforge_window(runner: Trainer, iterations: int) -> float:
        elapsed = time_window(lambda: train_step(runner), iterations)
        start = time.perf_counter()
        runner.meter.read()  # the loop's periodic host sync, once per window
        runner.meter.reset()
        return elapsed + time.perf_counter() - start

    for _ in range(warmup):
        baseline.step()
        examples.step()
        train_step(trainer)
        train_step(reusing)
    flops = flops_per_iteration(trainer)
    baseline_rates, examples_rates, ganforge_rates, reusing_rates = [], [], [], []
    for _ in range(windows):
        baseline_rates.append(window_steps * case.batch_size / time_window(baseline.step, window_steps))
        examples_rates.append(window_steps * case.batch_size / time_window(examples.step, window_steps))
        ganforge_rates.append(window_steps * case.batch_size / ganforge_window(trainer, window_steps))
        reusing_rates.append(window_steps * case.batch_size / ganforge_window(reusing, window_steps))
    baseline_rate, ganforge_rate = statistics.median(baseline_rates), statistics.median(ganforge_rates)
    paired = [ours / theirs for theirs, ours in zip(baseline_rates, ganforge_rates)]
    paired_examples = [ours / theirs for theirs, ours in zip(examples_rates, ganforge_rates)]
    return {
        "case": case.name, "batch": case.batch_size, "precision": precision, "compile": compile,
        "ganforge_startup_seconds": startup,
        "gflop_per_iteration": flops / 1e9,
        "baseline_images_per_second": baseline_rate,
        "ganforge_images_per_second": ganforge_rate,
        "speedup": statistics.median(paired), "speedup_range": (min(paired), max(paired)),
        "examples_images_per_second": statistics.median(examples_rates),
        "speedup_vs_examples": statistics.median(paired_examples),
        "speedup_vs_examples_range": (min(paired_examples), max(paired_examples)),
        "reuse_fake_images_per_second": statistics.median(reusing_rates),
        "reuse_fake_vs_examples": statistics.median(ours / theirs for theirs, ours in zip(examples_rates, reusing_rates)),
        "baseline_gflops": flops / 1e9 * baseline_rate / case.batch_size,
        "ganforge_gflops": flops / 1e9 * ganforge_rate / case.batch_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--windows", type=int, default=5, help="alternating timing windows per loop")
    parser.add_argument("--seconds", type=float, default=4.0, help="target length of one window")
    parser.add_argument("--compile", action="store_true", help="run ganforge with torch.compile (the baseline stays plain)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--processes", action="store_true",
                        help="time each loop as its own fresh process from the command line instead")
    parser.add_argument("--repeats", type=int, default=3, help="--processes: alternating rounds, the best counts")
    args = parser.parse_args()
    if args.processes:
        main_processes(args)
        return
    if args.compile:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="ganforge-inductor-")

    native_bf16 = cpu_has_native_bf16()
    peaks = {"fp32": matmul_peak(torch.float32),
             "bf16": matmul_peak(torch.bfloat16, size=4096 if native_bf16 else 256, repeats=5 if native_bf16 else 1)}
    print(f"# {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"kernels: {torch.backends.cpu.get_cpu_capability()}")
    print(f"# matmul peak: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    if "bf16" in args.precisions and not native_bf16:
        print("# bf16 skipped: this CPU has no native bf16 arithmetic (no AVX-512 BF16 or AMX), so bf16 matrix "
              "products run at the rate above")
        args.precisions = [p for p in args.precisions if p != "bf16"]
    print("# each fraction of peak uses the best matmul peak measured so far (at start and after each case)")
    print("| model | batch | precision | ganforge start-up | GFLOP/iter | textbook img/s | pytorch/examples img/s "
          "| ganforge img/s | ganforge / textbook | paired range | ganforge / pytorch/examples | paired range "
          "| ganforge --reuse-fake / pytorch/examples | textbook % of fp32 peak | ganforge % of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.cases:
        case = CASES[name]
        for precision in args.precisions:
            probe = measure(case, precision, windows=1, window_steps=3, warmup=2, compile=args.compile)
            steps = max(3, round(args.seconds * probe["ganforge_images_per_second"] / case.batch_size))
            row = measure(case, precision, windows=args.windows, window_steps=steps, warmup=3, compile=args.compile)
            row["ganforge_startup_seconds"] = probe["ganforge_startup_seconds"]  # the first build: a cold cache
            # This shared machine's speed drifts: keep the best peak measured so far (at start, after each case).
            peaks[precision] = max(peaks[precision], matmul_peak(torch.float32) if precision == "fp32" else 0.0)
            row["baseline_peak_fraction"] = row["baseline_gflops"] * 1e9 / peaks["fp32"]
            row["ganforge_peak_fraction"] = row["ganforge_gflops"] * 1e9 / peaks[precision]
            rows.append(row)
            mode = f"{precision}, compiled" if args.compile else precision
            print(f"| {row['case']} | {row['batch']} | {mode} | {row['ganforge_startup_seconds']:.1f} s "
                  f"| {row['gflop_per_iteration']:.2f} "
                  f"| {row['baseline_images_per_second']:.0f} | {row['examples_images_per_second']:.0f} "
                  f"| {row['ganforge_images_per_second']:.0f} "
                  f"| {row['speedup']:.2f}x | {row['speedup_range'][0]:.2f}-{row['speedup_range'][1]:.2f} "
                  f"| {row['speedup_vs_examples']:.2f}x "
                  f"| {row['speedup_vs_examples_range'][0]:.2f}-{row['speedup_vs_examples_range'][1]:.2f} "
                  f"| {row['reuse_fake_vs_examples']:.2f}x "
                  f"| {100 * row['baseline_peak_fraction']:.0f}% "
                  f"| {100 * row['ganforge_peak_fraction']:.0f}% ({precision}) |", flush=True)
    print(f"# final fp32 matmul peak: {peaks['fp32'] / 1e9:.0f} GFLOP/s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"peaks_gflops": {k: v / 1e9 for k, v in peaks.items()}, "rows": rows}, handle, indent=1)


def process_seconds(command: list[str]) -> float:
    """Wall seconds of a command run as a fresh process, as a user runs it."""
    start = time.perf_counter()
    finished = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=HERE)
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {finished.stderr.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - start


def process_commands(name: str, case: Case, precision: str, steps: int, scratch: Path) -> dict[str, list[str]]:
    """The command line of each loop for ``steps`` iterations."""
    loop = [sys.executable, str(HERE / "loop_process.py")]
    train = [str(GANFORGE), "train", "--model", case.model, "--data", "digits", "--image-size", str(case.image_size),
             "--channels", str(case.channels), "--batch-size", str(case.batch_size), "--precision", precision,
             "--steps", str(steps), "--log-every", str(steps), "--sample-every", "0", "--checkpoint-every", "0",
             "--preset", "lecture", "--no-tensorboard", "-q"]
    return {
        "textbook": [*loop, "textbook", name, precision, str(steps)],
        "examples": [*loop, "examples", name, precision, str(steps)],
        "ganforge": [*train, "--out", str(scratch / f"run-{steps}")],
        "ganforge --reuse-fake": [*train, "--reuse-fake", "--out", str(scratch / f"reuse-{steps}")],
    }


def measure_processes(name: str, precision: str, repeats: int) -> dict[str, float]:
    """Images per second of each loop as fresh processes: (long - short) iterations over the difference of the
    best wall time of the long runs and the best of the short ones, the loops alternating in every round."""
    case = CASES[name]
    long_steps, short_steps = PROCESS_STEPS[name]
    best_long: dict[str, float] = {}
    best_short: dict[str, float] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as scratch:
            long_commands = process_commands(name, case, precision, long_steps, Path(scratch))
            short_commands = process_commands(name, case, precision, short_steps, Path(scratch))
            for loop in long_commands:
                best_long[loop] = min(best_long.get(loop, float("inf")), process_seconds(long_commands[loop]))
                best_short[loop] = min(best_short.get(loop, float("inf")), process_seconds(short_commands[loop]))
    return {loop: (long_steps - short_steps) * case.batch_size / (best_long[loop] - best_short[loop])
            for loop in best_long}


def main_processes(args: argparse.Namespace) -> None:
    """The table of --processes."""
    if "bf16" in args.precisions and not cpu_has_native_bf16():
        print("# bf16 skipped: this CPU has no native bf16 arithmetic (no AVX-512 BF16 or AMX)")
        args.precisions = [p for p in args.precisions if p != "bf16"]
    print(f"# {cpu_name()}, torch {torch.__version__}, kernels {torch.backends.cpu.get_cpu_capability()}, "
          f"each loop a fresh process, (best long run - best short run) over {args.repeats} alternating rounds")
    print("| model | batch | precision | iterations | textbook img/s | pytorch/examples img/s | ganforge img/s "
          "| ganforge --reuse-fake img/s | ganforge / textbook | ganforge / pytorch/examples "
          "| --reuse-fake / pytorch/examples |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.cases:
        for precision in args.precisions:
            rates = measure_processes(name, precision, args.repeats)
            long_steps, short_steps = PROCESS_STEPS[name]
            rows.append({"case": name, "precision": precision, "images_per_second": rates})
            print(f"| {CASES[name].name} | {CASES[name].batch_size} | {precision} | {long_steps} - {short_steps} "
                  f"| {rates['textbook']:.0f} | {rates['examples']:.0f} | {rates['ganforge']:.0f} "
                  f"| {rates['ganforge --reuse-fake']:.0f} | {rates['ganforge'] / rates['textbook']:.2f}x "
                  f"| {rates['ganforge'] / rates['examples']:.2f}x "
                  f"| {rates['ganforge --reuse-fake'] / rates['examples']:.2f}x |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
