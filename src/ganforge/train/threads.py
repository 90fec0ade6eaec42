"""How many threads torch computes with: a fixed ``--threads N``, or ``auto``: the cores this process may use
that no other process is busy on, checked at the start and again every few seconds while training.

On a 2-core machine beside one busy process, two intra-op threads run at a fraction of one thread's speed (each
parallel region waits for the thread that the busy process displaced), so the free cores, not all cores, decide.
``auto`` never uses more threads than torch had when the job started (``OMP_NUM_THREADS``, ``torch.set_num_threads``
or the experiment runner's share of the cores), and never fewer than one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

RECHECK_SECONDS = 3.0  # wall time between two looks at the other processes' load while training
MIN_PROBE_SECONDS = 0.05  # the shortest interval a decision is based on; shorter start-ups wait the rest
SPARE_CORE = 0.35  # another process using at most this much of a core leaves the core to us


def usable_cores() -> list[int]:
    """The CPUs this process may run on (its affinity)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class CpuSample:
    """Busy and total time of some CPUs (seconds), this process's CPU time, and the wall clock, at one moment."""

    busy: float
    total: float
    own: float
    wall: float


def sample_cpu(cores: list[int]) -> CpuSample | None:
    """Read ``/proc/stat`` for ``cores``; None where the system has no such file (then auto uses every core)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{core}" for core in cores}
    busy = total = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            ticks = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
    if total == 0:
        return None
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    return CpuSample(busy / ticks_per_second, total / ticks_per_second, time.process_time(), time.monotonic())


def others_load(before: CpuSample, after: CpuSample, cores: int) -> float:
    """Cores kept busy by other processes between two samples (steal time included: a core the hypervisor took
    is not ours either)."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    busy_cores = cores * (after.busy - before.busy) / total
    own_cores = (after.own - before.own) / max(after.wall - before.wall, 1e-9)
    return max(0.0, busy_cores - own_cores)


def free_core_threads(others: float, cores: int, ceiling: int) -> int:
    """Threads for the cores the others leave free, between 1 and ``ceiling``."""
    return max(1, min(ceiling, int(cores - others + SPARE_CORE)))


class ThreadBudget:
    """Sets torch's thread count for a job and gives the previous one back at the end.

    ``threads``: a fixed count, or None for auto. Create it when the job starts (the work before :meth:`begin`,
    loading data and building models, is the first measuring interval), call :meth:`begin` when the work starts,
    :meth:`recheck` as it goes (cheap: it looks at the load every ``RECHECK_SECONDS``), and :meth:`end`.
    """

    def __init__(self, threads: int | None) -> None:
        self.fixed = threads
        self.previous = torch.get_num_threads()
        self.ceiling = threads or self.previous
        self.cores = usable_cores()
        self.last = sample_cpu(self.cores) if threads is None and self.ceiling > 1 else None
        self.threads = self.ceiling

    @property
    def auto(self) -> bool:
        return self.last is not None

    def begin(self) -> int:
        """Choose the thread count for the start of the work; returns it."""
        if self.auto:
            assert self.last is not None
            waited = time.monotonic() - self.last.wall
            if waited < MIN_PROBE_SECONDS:
                time.sleep(MIN_PROBE_SECONDS - waited)
            self._look()
        else:
            self._use(self.ceiling)
        return self.threads

    def recheck(self) -> int:
        """Follow the other processes' load: fewer threads when another process got busy, more when it stopped."""
        if self.last is not None and time.monotonic() - self.last.wall >= RECHECK_SECONDS:
            self._look()
        return self.threads

    def end(self) -> None:
        torch.set_num_threads(self.previous)

    def __enter__(self) -> ThreadBudget:
        self.begin()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.end()

    def _look(self) -> None:
        now = sample_cpu(self.cores)
        if now is None or self.last is None:
            return
        others = others_load(self.last, now, len(self.cores))
        self.last = now
        self._use(free_core_threads(others, len(self.cores), self.ceiling))

    def _use(self, threads: int) -> None:
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self.threads = threads
