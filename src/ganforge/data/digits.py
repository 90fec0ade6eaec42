"""scikit-learn's 8x8 handwritten digits: 1,797 real images that ship inside the package."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor

DIGITS_MAX_VALUE = 16  # each pixel counts the inked pixels (0..16) of a 4x4 block of a 32x32 scan


def load_digit_images(image_size: int, channels: int) -> tuple[Tensor, Tensor]:
    """The digits as uint8 images (1797, C, S, S) in [0, 255] (white ink on black, like MNIST) and their labels."""
    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) * (255.0 / DIGITS_MAX_VALUE)
    if image_size != images.shape[-1]:
        images = F.interpolate(images, size=(image_size, image_size), mode="bicubic", align_corners=False, antialias=True)
    images = images.round().clamp(0, 255).to(torch.uint8)
    if channels == 3:
        images = images.expand(-1, 3, -1, -1).contiguous()
    return images, torch.as_tensor(bunch.target, dtype=torch.int64)
