"""Speed on a shared CPU: `ganforge train` alone, beside a busy process, and two trainings at once.

    python benchmarks/sharing.py             # every case, DCGAN 28x28 on the digits, batch 64, fp32
    python benchmarks/sharing.py --steps 100 # shorter

Each case runs the installed `ganforge train` as a fresh process, as users run it. Images per second is the
median of the run's metrics.jsonl rows after the first (warm-up) row. The busy process is
`python -c "while True: pass"`. "Two at once" starts two trainings together and compares the wall time until
both finished with the wall time of the same two trainings one after the other; the issue's target is <= 1.15x.
`--threads 2` is what ganforge did before --threads existed (torch's default: one thread per core).
Time this with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GANFORGE = Path(sys.executable).with_name("ganforge")
BUSY = [sys.executable, "-c", "while True: pass"]


def train_command(out: Path, threads: str, steps: int) -> list[str]:
    return [str(GANFORGE), "train", "--model", "dcgan", "--data", "digits", "--image-size", "28", "--batch-size", "64",
            "--steps", str(steps), "--log-every", str(max(steps // 10, 1)), "--sample-every", "0",
            "--checkpoint-every", "0", "--no-tensorboard", "--preset", "lecture", "--threads", threads, "-q",
            "--out", str(out)]


def images_per_second(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [row["images_per_second"] for row in rows if "images_per_second" in row][1:]
    return statistics.median(rates)


def start(out: Path, threads: str, steps: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(train_command(out, threads, steps), env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"ganforge train failed: {stderr.decode(errors='replace')}")


def one_training(folder: Path, name: str, threads: str, steps: int, busy: bool = False,
                 env: dict[str, str] | None = None) -> float:
    """Images per second of one training, beside a busy process if ``busy``."""
    neighbour = subprocess.Popen(BUSY) if busy else None
    try:
        if neighbour is not None:
            time.sleep(1.0)  # the busy process is running when training starts, as on a shared machine
        process = start(folder / name, threads, steps, env)
        finish(process)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    return images_per_second(folder / name)


def two_at_once(folder: Path, threads: str, steps: int) -> dict[str, float]:
    """Wall seconds of two trainings one after the other, then started together."""
    began = time.perf_counter()
    for index in range(2):
        finish(start(folder / f"sequential-{threads}-{index}", threads, steps))
    sequential = time.perf_counter() - began
    began = time.perf_counter()
    processes = [start(folder / f"together-{threads}-{index}", threads, steps) for index in range(2)]
    for process in processes:
        finish(process)
    together = time.perf_counter() - began
    return {"sequential_s": round(sequential, 1), "together_s": round(together, 1),
            "ratio": round(together / sequential, 3)}


def cpu_description() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), "?")
    wanted = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {flag}" in flags]
    return f"{name}, {os.cpu_count()} cores, flags {' '.join(wanted)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="steps per training")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    print(f"# {cpu_description()}", flush=True)
    results: dict[str, object] = {"cpu": cpu_description(), "steps": args.steps}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        rows = [
            ("alone, --threads 2 (before: torch's default)", "alone-2", "2", False, None),
            ("alone, --threads 1", "alone-1", "1", False, None),
            ("alone, --threads auto", "alone-auto", "auto", False, None),
            ("beside a busy process, --threads 2 (before)", "busy-2", "2", True, None),
            ("beside a busy process, --threads 1", "busy-1", "1", True, None),
            ("beside a busy process, --threads 2, OMP_WAIT_POLICY=PASSIVE", "busy-passive", "2", True,
             {"OMP_WAIT_POLICY": "PASSIVE"}),
            ("beside a busy process, --threads auto", "busy-auto", "auto", True, None),
        ]
        print("| situation | images/s |\n|---|---|", flush=True)
        for label, name, threads, busy, env in rows:
            rate = one_training(folder, name, threads, args.steps, busy, env)
            results[name] = round(rate, 1)
            print(f"| {label} | {rate:,.0f} |", flush=True)
        print("\n| two trainings | one after the other | started together | ratio |\n|---|---|---|---|", flush=True)
        for threads in ("2", "auto"):
            timing = two_at_once(folder, threads, args.steps)
            results[f"two-{threads}"] = timing
            print(f"| --threads {threads} | {timing['sequential_s']} s | {timing['together_s']} s | "
                  f"{timing['ratio']:.2f}x |", flush=True)
    best_busy = max(results["busy-1"], results["busy-2"], results["busy-passive"])  # type: ignore[type-var]
    print(f"\nbeside a busy process, auto reaches {results['busy-auto'] / best_busy:.2f}x of the best fixed setting; "
          f"alone, {results['alone-auto'] / max(results['alone-1'], results['alone-2']):.2f}x of the best",
          flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
