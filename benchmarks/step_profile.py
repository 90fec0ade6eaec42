"""Where one ganforge iteration of DCGAN goes: the share of the D update's extra G forward (the one
pytorch/examples' loop saves by reusing the fake batch) and the top ops by self CPU time.

    python benchmarks/step_profile.py

The lectures' algorithm (``--preset lecture``), fp32, torch's thread count; time it with nothing else running.
"""

from __future__ import annotations

import time

import torch
from torch.profiler import ProfilerActivity, profile

from ganforge.config.resolve import resolve_config
from ganforge.config.schema import RunConfig, apply_overrides
from ganforge.data import load_data
from ganforge.train.step import train_step
from ganforge.train.trainer import Trainer

CASES = ((28, 1, 128, 20), (64, 3, 64, 4))  # image size, channels, batch, iterations timed


def main() -> None:
    for size, channels, batch, iterations in CASES:
        config = apply_overrides(RunConfig(), {"model": "dcgan", "data": "digits", "image_size": size,
                                               "channels": channels, "batch_size": batch, "preset": "lecture"})
        data = load_data(config.data, size, channels, 0, torch.device("cpu"))
        trainer = Trainer(resolve_config(config, data), data, torch.device("cpu"))
        for _ in range(3):
            train_step(trainer)
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            for _ in range(iterations):
                train_step(trainer)
        events = profiler.key_averages()
        total = sum(event.self_cpu_time_total for event in events)
        start = time.perf_counter()
        for _ in range(iterations):
            train_step(trainer)
        step = (time.perf_counter() - start) / iterations
        noise = trainer.sample_noise(batch)
        with torch.no_grad():
            start = time.perf_counter()
            for _ in range(iterations):
                trainer.run_generator(noise, None)
            forward = (time.perf_counter() - start) / iterations
        top = sorted(events, key=lambda event: -event.self_cpu_time_total)[:6]
        print(f"dcgan {size}x{size}, batch {batch}: iteration {step * 1e3:.1f} ms, the D update's G forward "
              f"{forward * 1e3:.1f} ms ({100 * forward / step:.0f}%); top ops: "
              + ", ".join(f"{event.key} {100 * event.self_cpu_time_total / total:.0f}%" for event in top))


if __name__ == "__main__":
    main()
