"""The 2-D Gaussian mixtures of the VEEGAN and PacGAN papers, sampled on the fly."""

from __future__ import annotations

import math

import torch
from torch import Tensor

RING8_RADIUS, RING8_STD = 1.0, 0.01
GRID25_SPACING, GRID25_STD = 2.0, 0.05


def mixture_modes(name: str) -> tuple[Tensor, float]:
    """The mode centres (M, 2) and the shared standard deviation of a named mixture.

    ``ring8``: 8 modes evenly spaced on a circle of radius 1, std 0.01.
    ``grid25``: 25 modes on the grid {-4, -2, 0, 2, 4}^2, std 0.05.
    """
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        modes = RING8_RADIUS * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
        return modes.float(), RING8_STD
    if name == "grid25":
        ticks = torch.arange(-2, 3, dtype=torch.float32) * GRID25_SPACING
        xs, ys = torch.meshgrid(ticks, ticks, indexing="ij")
        return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), GRID25_STD
    raise ValueError(f"unknown mixture {name!r}")


def sample_mixture(modes: Tensor, std: float, count: int, generator: torch.Generator) -> Tensor:
    """``count`` points (count, 2): a uniformly chosen mode plus isotropic Gaussian noise."""
    index = torch.randint(len(modes), (count,), generator=generator, device=generator.device)
    noise = torch.randn(count, 2, generator=generator, device=generator.device)
    return modes.to(generator.device)[index] + std * noise
