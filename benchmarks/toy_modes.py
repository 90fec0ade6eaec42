"""Does the default toy run cover the mixture's modes, and how fast? Several seeds, measured end to end.

    python benchmarks/toy_modes.py --data ring8 --seeds 0 1 2 3 4 [--preset lecture]

For each seed: `ganforge.train(model="toy", data=...)` with the model's default
presets, then 2,500 samples scored by the VEEGAN/PacGAN protocol
(ganforge.evaluation.metrics.mixtures.mixture_mode_stats). Wall time covers the whole training call.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ganforge
from ganforge.data import mixture_modes
from ganforge.evaluation.metrics import mean_and_stderr, mixture_mode_stats

SAMPLES = 2500  # points per evaluation, as in the papers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="ring8", choices=["ring8", "grid25"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--preset", default="auto", choices=["auto", "lecture"],
                        help="auto: the data's tuned preset (the default of ganforge train); lecture: the seed GAN's")
    args = parser.parse_args()
    modes, std = mixture_modes(args.data)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            start = time.perf_counter()
            result = ganforge.train(out=Path(scratch) / f"seed{seed}", model="toy", data=args.data, seed=seed,
                                    steps=args.steps, preset=args.preset, show_progress=False)
            seconds = time.perf_counter() - start
            points = ganforge.load(result.run_dir, device="cpu").sample(SAMPLES, seed=seed)
            stats = mixture_mode_stats(points, modes, std)
            rows.append({"seed": seed, "steps": result.step, "seconds": seconds, **stats})
            print(f"seed {seed}: {result.step} steps in {seconds:.1f} s, modes {stats['modes_covered']}/{len(modes)}, "
                  f"high quality {100 * stats['high_quality']:.1f}%, reverse KL {stats['reverse_kl']:.3f}", flush=True)
    for key in ("seconds", "modes_covered", "high_quality", "reverse_kl"):
        mean, stderr = mean_and_stderr([row[key] for row in rows])
        print(f"{key}: {mean:.3f} +- {stderr:.3f} (mean +- standard error over {len(rows)} seeds)")


if __name__ == "__main__":
    main()
