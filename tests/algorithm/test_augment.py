"""DiffAugment: shapes, determinism, what each transform does, and that gradients pass through."""

from __future__ import annotations

import pytest
import torch

from ganforge.algorithm.augment import CUTOUT_RATIO, DiffAugment, color, cutout, translation


def images(count: int = 8, size: int = 16) -> torch.Tensor:
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_the_same_seed_gives_the_same_augmentation_and_shapes_are_kept():
    x = images()
    first = DiffAugment("color,translation,cutout", torch.Generator().manual_seed(3))(x)
    second = DiffAugment("color,translation,cutout", torch.Generator().manual_seed(3))(x)
    other = DiffAugment("color,translation,cutout", torch.Generator().manual_seed(4))(x)
    assert first.shape == x.shape and torch.equal(first, second) and not torch.equal(first, other)


def test_translation_shifts_whole_pixels_within_an_eighth_and_fills_with_zeros():
    x = images(count=32)
    shifted = translation(x, torch.Generator().manual_seed(1))
    limit = 2  # 16 * 0.125
    for original, moved in zip(x, shifted):
        matches = [(dy, dx) for dy in range(-limit, limit + 1) for dx in range(-limit, limit + 1)
                   if torch.equal(moved, _shift(original, dy, dx))]
        assert len(matches) == 1
    assert not torch.equal(shifted, x)


def _shift(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[y, x] = image[y + dy, x + dx], zero outside."""
    out = torch.zeros_like(image)
    size = image.shape[-1]
    for y in range(size):
        for x in range(size):
            if 0 <= y + dy < size and 0 <= x + dx < size:
                out[:, y, x] = image[:, y + dy, x + dx]
    return out


def test_cutout_zeroes_one_square_of_half_the_side_at_most():
    x = torch.ones(64, 1, 16, 16)
    out = cutout(x, torch.Generator().manual_seed(2))
    zeroed = (out == 0).flatten(1).sum(1)
    side = int(16 * CUTOUT_RATIO)
    assert zeroed.max().item() == side * side  # a whole square where it is not clipped by a border
    assert zeroed.min().item() > 0 and ((out == 0) | (out == 1)).all()


def test_color_changes_brightness_saturation_and_contrast_per_image():
    x = images()
    out = color(x, torch.Generator().manual_seed(5))
    assert out.shape == x.shape
    shifts = (out - x).mean(dim=(1, 2, 3))
    assert shifts.std() > 0.05  # each image its own change


def test_gradients_flow_through_every_transform():
    x = images().requires_grad_(True)
    DiffAugment("color,translation,cutout", torch.Generator().manual_seed(0))(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_an_unknown_transform_is_refused():
    with pytest.raises(ValueError, match="flip"):
        DiffAugment("color,flip", torch.Generator())
