"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for training on small data sets.

With few real images D memorises them and training collapses. DiffAugment applies
the same random transforms to every image D sees, real and generated, in both
phases; the transforms are differentiable, so G still gets gradients through
them. D never sees an unaugmented image, and G learns the unaugmented data
because each transform is applied equally to both sides.

Transforms (the paper's, at its ratios): ``color`` (brightness, saturation,
contrast), ``translation`` (shift by up to 1/8 of the side, zero-padded) and
``cutout`` (a zeroed square of half the side). Images are in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


class DiffAugment:
    """The transforms of a policy (e.g. ``"color,translation,cutout"``), drawn from their own random stream."""

    def __init__(self, policy: str, generator: torch.Generator) -> None:
        self.transforms = [name.strip() for name in policy.split(",") if name.strip()]
        unknown = [name for name in self.transforms if name not in TRANSFORMS]
        if unknown:
            raise ValueError(f"unknown DiffAugment transform(s) {unknown}: use {', '.join(TRANSFORMS)}")
        self.generator = generator

    def __call__(self, images: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H, W)
        for name in self.transforms:
            images = TRANSFORMS[name](images, self.generator)
        return images


def _uniform(images: Tensor, generator: torch.Generator) -> Tensor:  # one U[0, 1) value per image, (B, 1, 1, 1)
    return torch.rand(images.shape[0], 1, 1, 1, generator=generator, device=images.device, dtype=images.dtype)


def color(images: Tensor, generator: torch.Generator) -> Tensor:
    """Brightness +U[-0.5, 0.5], saturation x U[0, 2], contrast x U[0.5, 1.5], each per image."""
    images = images + (_uniform(images, generator) - 0.5)
    mean = images.mean(dim=1, keepdim=True)
    images = (images - mean) * (_uniform(images, generator) * 2) + mean
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform(images, generator) + 0.5) + mean


def translation(images: Tensor, generator: torch.Generator, ratio: float = TRANSLATION_RATIO) -> Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of its side each way, filling with zeros."""
    batch, _, height, width = images.shape
    limit_y, limit_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    shift_y = torch.randint(-limit_y, limit_y + 1, (batch, 1, 1), generator=generator, device=images.device)
    shift_x = torch.randint(-limit_x, limit_x + 1, (batch, 1, 1), generator=generator, device=images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1) + shift_y + limit_y  # in padded coordinates
    columns = torch.arange(width, device=images.device).view(1, 1, width) + shift_x + limit_x
    padded = F.pad(images, [limit_x, limit_x, limit_y, limit_y]).permute(0, 2, 3, 1)  # (B, H', W', C)
    picked = padded[torch.arange(batch, device=images.device).view(batch, 1, 1), rows, columns]  # (B, H, W, C)
    return picked.permute(0, 3, 1, 2).contiguous(memory_format=_format_of(images))


def cutout(images: Tensor, generator: torch.Generator, ratio: float = CUTOUT_RATIO) -> Tensor:
    """Zero a square of ``ratio`` of the side per image, centred anywhere (clipped at the borders)."""
    batch, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    centre_y = torch.randint(0, height + (1 - size_y % 2), (batch, 1, 1), generator=generator, device=images.device)
    centre_x = torch.randint(0, width + (1 - size_x % 2), (batch, 1, 1), generator=generator, device=images.device)
    top, left = centre_y - size_y // 2, centre_x - size_x // 2
    rows = torch.arange(height, device=images.device).view(1, height, 1)
    columns = torch.arange(width, device=images.device).view(1, 1, width)
    inside = (rows >= top) & (rows < top + size_y) & (columns >= left) & (columns < left + size_x)  # (B, H, W)
    return images * (~inside).unsqueeze(1).to(images.dtype)


def _format_of(images: Tensor) -> torch.memory_format:
    return torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) and \
        not images.is_contiguous() else torch.contiguous_format


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}
