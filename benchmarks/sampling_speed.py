"""`ganforge sample -n N --out folder/` against its parts: generation alone and PNG writing alone.

    python benchmarks/sampling_speed.py runs/digits -n 10000

Disk speed here means: the time to encode and write N PNG files of random pixels
of the same size with the same threaded writer. The sampler is at disk speed when
its total is close to that plus the (batched) generation time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ganforge.runs.pictures import save_image_files
from ganforge.sampling.generator import TrainedGenerator
from ganforge.sampling.write import write_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("-n", type=int, default=10000)
    args = parser.parse_args()
    generator = TrainedGenerator.load(args.run, device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        samples = generator.sample(args.n)
        generation = time.perf_counter() - start
        noise = torch.rand_like(samples) * 2 - 1
        start = time.perf_counter()
        save_image_files(noise, Path(scratch) / "disk")
        disk = time.perf_counter() - start
        start = time.perf_counter()
        write_samples(generator.sample(args.n), Path(scratch) / "samples")
        total = time.perf_counter() - start
    shape = "x".join(map(str, samples.shape[1:]))
    print(f"{args.n} images {shape}: generation {generation:.2f} s ({args.n / generation:.0f}/s), "
          f"PNG writing alone {disk:.2f} s ({args.n / disk:.0f}/s), sample to folder {total:.2f} s "
          f"({args.n / total:.0f}/s)")


if __name__ == "__main__":
    main()
