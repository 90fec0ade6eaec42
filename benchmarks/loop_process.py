"""One baseline loop as its own process, for benchmarks/throughput.py --processes:

    python benchmarks/loop_process.py examples dcgan28 fp32 330

builds ganforge's networks for the case, loads the digits at its size, and runs the loop (``textbook``: the
lectures' loop; ``examples``: pytorch/examples' loop) for the given number of iterations. The caller times the
whole process, start-up included, as a user running a script would.
"""

from __future__ import annotations

import sys

import torch
from examples_loop import ExamplesLoop
from textbook import TextbookLoop
from throughput import CASES

from ganforge.config.resolve import resolve_config
from ganforge.config.schema import RunConfig, apply_overrides
from ganforge.data import load_data
from ganforge.models import build_models

LOOPS = {"textbook": TextbookLoop, "examples": ExamplesLoop}


def main() -> None:
    loop_name, case_name, precision, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    case = CASES[case_name]
    config = apply_overrides(RunConfig(), {"model": case.model, "data": "digits", "image_size": case.image_size,
                                           "channels": case.channels, "preset": "lecture"})
    data = load_data(config.data, case.image_size, case.channels, 0, torch.device("cpu"))
    config = resolve_config(config, data)
    generator, discriminator = build_models(config.model, seed=0)
    loop = LOOPS[loop_name](generator, discriminator, data.samples, case.batch_size, generator.z_dim, precision)
    for _ in range(steps):
        loop.step()


if __name__ == "__main__":
    main()
