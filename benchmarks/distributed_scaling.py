"""Images per second of `ganforge train` on 1 process and on N processes under torchrun, one thread each.

    python benchmarks/distributed_scaling.py --processes 1 2 --steps 200

Each case runs the real command line (DCGAN 28x28 on the embedded digits, the defaults: batch 64 per
process, width 32), `ganforge train` alone for 1 process and `torchrun --standalone --nproc-per-node N
-m ganforge train` for more, with OMP_NUM_THREADS=1. Images per second are the real images of all
processes per second (batch x processes / seconds per step), the median of the log rows after the first
(which holds the start-up). `--threads 1 2` adds the single process on 2 threads for comparison;
`--threads` alone skips the 1-process cases.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MODEL_FLAGS = ["--model", "dcgan", "--data", "digits", "--image-size", "28", "--sample-every", "0",
               "--checkpoint-every", "0", "--no-tensorboard", "--quiet", "--preset", "lecture"]  # as measured


def run(processes: int, threads: int, steps: int, log_every: int, out: Path) -> dict[str, float]:
    """One training run; the median images/s and s/step of its log rows after the first."""
    flags = [*MODEL_FLAGS, "--steps", str(steps), "--log-every", str(log_every), "--out", str(out)]
    if processes == 1:
        command = [sys.executable, "-m", "ganforge", "train", *flags]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
                   "-m", "ganforge", "train", *flags]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:]
    return {"images_per_second": statistics.median(row["images_per_second"] for row in rows),
            "seconds_per_step": statistics.median(row["seconds_per_step"] for row in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, nargs="*", default=[1],
                        help="threads of the 1-process cases (none: skip them)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args()
    cases = [(1, threads) for threads in args.threads] + [(n, 1) for n in args.processes if n > 1]
    with tempfile.TemporaryDirectory() as scratch:
        results = {case: run(*case, args.steps, args.log_every, Path(scratch) / f"p{case[0]}t{case[1]}")
                   for case in cases}
    base = results.get((1, 1))
    print("| processes x threads | global batch | s/step | images/s | vs 1 x 1 |")
    print("|---|---|---|---|---|")
    for (processes, threads), result in results.items():
        speedup = f"{result['images_per_second'] / base['images_per_second']:.2f}x" if base else "-"
        print(f"| {processes} x {threads} | {64 * processes} | {result['seconds_per_step']:.3f} | "
              f"{result['images_per_second']:.0f} | {speedup} |")


if __name__ == "__main__":
    main()
