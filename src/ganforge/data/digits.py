"""scikit-learn's 8x8 handwritten digits: 1,797 real images that ship inside the package."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor

from ganforge.errors import DataError

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


# Stacked digits: the offline twin of Stacked MNIST (Metz et al. 2017; VEEGAN, PacGAN): three digits drawn
# independently as the three channels of one image, so 10^3 = 1,000 modes. 26,000 images, the number of samples
# the papers count modes on, so the real-data floor of the mode metrics uses as many samples as the generator's.
STACKED_DIGITS_COUNT = 26_000
STACKED_DIGITS_MODES = 1000
STACKED_DIGITS_SIZE = 28  # natural image size; 3 channels


def stacked_mode_ids(digits: Tensor) -> Tensor:
    """Mode id 100 * d0 + 10 * d1 + d2 (0..999) from the digits (N, 3) of the three channels."""
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


def load_stacked_digits(image_size: int = STACKED_DIGITS_SIZE, count: int = STACKED_DIGITS_COUNT,
                        seed: int = 0) -> tuple[Tensor, Tensor]:
    """``count`` uint8 images (count, 3, S, S), each channel a digit drawn uniformly from the 1,797, and their mode ids.

    Channel c of image i is digit image ``index[i, c]`` of :func:`load_digit_images` (same resizing), with the
    indices drawn by a ``torch.Generator`` seeded with ``seed``, so the same seed gives the same data set. The
    labels (count,) int64 are ``100 * d0 + 10 * d1 + d2`` with d_c the class of channel c: modes 0..999.
    """
    if count < 1:
        raise DataError(f"stacked digits need a count of at least 1 image, got {count}")
    images, labels = load_digit_images(image_size, 1)  # (1797, 1, S, S), (1797,)
    index = torch.randint(len(images), (count, 3), generator=torch.Generator().manual_seed(seed))  # (count, 3)
    stacked = images[:, 0][index]  # (count, 3, S, S): channel c of image i is images[index[i, c]]
    return stacked, stacked_mode_ids(labels[index])
