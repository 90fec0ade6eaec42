"""Mode statistics for Gaussian-mixture toy data, and a mean with its standard error.

This is the evaluation protocol of VEEGAN (Srivastava et al. 2017) and PacGAN
(Lin et al. 2018): generated 2-D points are assigned to their nearest mixture
mode; a point is *high quality* when it lies within 3 standard deviations of
that mode. From the per-mode counts of high-quality points we report how many
modes are covered and how far the mode histogram is from uniform. Papers run
the protocol over several seeds and report mean +- standard error, hence
`mean_and_stderr`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ganforge.errors import GanforgeError

# Points further than this many standard deviations from their nearest mode are not high quality.
HIGH_QUALITY_STDS = 3.0
# A mode is covered under the strict rule when it holds this fraction of its fair share N / M.
STRICT_SHARE = 0.25


def _check_modes(modes: Tensor, std: float) -> None:
    """Raise GanforgeError unless modes are (M, D) with M >= 1 and std > 0."""
    if modes.dim() != 2 or modes.shape[0] == 0:
        raise GanforgeError(f"modes have shape {tuple(modes.shape)}; expected (M, 2) with M >= 1")
    if not std > 0:
        raise GanforgeError(f"mixture std {std} is not positive; pass the standard deviation of each mixture component")


def _check_points(points: Tensor, modes: Tensor, std: float) -> None:
    """Raise GanforgeError unless points (N, D) and modes (M, D) are non-empty and std > 0."""
    _check_modes(modes, std)
    if points.dim() != 2 or points.shape[0] == 0:
        raise GanforgeError(f"points have shape {tuple(points.shape)}; expected (N, 2) with N >= 1")
    if points.shape[1] != modes.shape[1]:
        raise GanforgeError(
            f"points have {points.shape[1]} coordinates but modes have {modes.shape[1]}; pass both as (N, 2) and (M, 2)"
        )


def high_quality_counts(points: Tensor, modes: Tensor, std: float) -> Tensor:
    """Count, per mode, the points within 3 * std of it that have it as their nearest mode.

    points: (N, D), modes: (M, D) -> (M,) int64 counts. Distances are Euclidean.
    """
    _check_points(points, modes, std)
    dist = torch.cdist(points.double(), modes.double().to(points.device))  # (N, M)
    nearest_dist, nearest = dist.min(dim=1)  # (N,), (N,)
    high_quality = nearest_dist <= HIGH_QUALITY_STDS * std
    return torch.bincount(nearest[high_quality], minlength=modes.shape[0]).cpu()


def mode_stats_from_counts(counts: Tensor, num_points: int) -> dict[str, float]:
    """Turn per-mode high-quality counts (M,) over `num_points` generated points into the mode statistics.

    See `mixture_mode_stats` for the definitions; split out so that counts can be summed over batches.
    """
    num_modes = counts.numel()
    if num_points < 1 or num_modes < 1:
        raise GanforgeError(f"got {num_points} points and {num_modes} modes; need at least one of each")
    counts = counts.double()
    total_hq = float(counts.sum())
    if total_hq > 0:
        p = counts / total_hq
        nonzero = p > 0  # 0 log 0 = 0
        reverse_kl = float((p[nonzero] * torch.log(p[nonzero] * num_modes)).sum())
    else:
        reverse_kl = math.log(num_modes)  # no high-quality points: report the worst case, all mass on one mode
    return {
        "high_quality": total_hq / num_points,
        "modes_covered": int((counts >= 1).sum()),
        "modes_covered_strict": int((counts >= STRICT_SHARE * num_points / num_modes).sum()),
        "reverse_kl": max(reverse_kl, 0.0),  # clamp float rounding below zero
    }


def mixture_mode_stats(points: Tensor, modes: Tensor, std: float) -> dict[str, float]:
    """Score generated points (N, 2) against the mixture modes (M, 2) whose components have standard deviation `std`.

    Each point is assigned to its nearest mode (Euclidean); it is high quality when that distance is <= 3 * std.
    With c_m the number of high-quality points nearest to mode m:

    - ``high_quality``: sum_m c_m / N, in [0, 1].
    - ``modes_covered``: #{m : c_m >= 1}, the papers' rule.
    - ``modes_covered_strict``: #{m : c_m >= 0.25 * N / M}, i.e. a mode counts only if it holds a quarter of the
      share N / M a perfect generator would give it (N counts all points, not just the high-quality ones), so a
      handful of stray points does not make a mode "covered".
    - ``reverse_kl``: KL(p || u) = sum_m p_m log(p_m * M) in nats, with p_m = c_m / sum_m c_m the histogram of
      high-quality points over modes and u uniform; 0 log 0 = 0. It is 0 for a perfectly balanced histogram and
      log M when all mass is on one mode. With no high-quality points at all p is undefined and we return the
      worst case, log M.
    """
    counts = high_quality_counts(points, modes, std)
    return mode_stats_from_counts(counts, points.shape[0])


class MixtureModeStats:
    """Accumulate `mixture_mode_stats` over batches of generated points: update(points) then compute()."""

    higher_is_better: ClassVar[dict[str, bool]] = {
        "high_quality": True,
        "modes_covered": True,
        "modes_covered_strict": True,
        "reverse_kl": False,
    }

    def __init__(self, modes: Tensor, std: float) -> None:
        _check_modes(modes, std)
        self.modes = modes.detach()
        self.std = std
        self.reset()

    def reset(self) -> None:
        """Forget all points seen so far."""
        self.counts = torch.zeros(self.modes.shape[0], dtype=torch.int64)
        self.num_points = 0

    def update(self, points: Tensor) -> None:
        """Add a batch of generated points (B, 2)."""
        self.counts += high_quality_counts(points.detach(), self.modes, self.std)
        self.num_points += points.shape[0]

    def compute(self) -> dict[str, float]:
        """Mode statistics over every point passed to update()."""
        if self.num_points == 0:
            raise GanforgeError("MixtureModeStats.compute() called before any points; call update(points) first")
        return mode_stats_from_counts(self.counts, self.num_points)


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean, sample std (ddof=1) / sqrt(S), over S runs; one run gives stderr 0."""
    values = [float(v) for v in values]
    if not values:
        raise GanforgeError("mean_and_stderr got no values; pass one value per run (seed)")
    num = len(values)
    mean = sum(values) / num
    if num == 1:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (num - 1)
    return mean, math.sqrt(variance / num)
