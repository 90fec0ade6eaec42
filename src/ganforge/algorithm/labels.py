"""Class labels for the inputs of a conditional generator."""

from __future__ import annotations

import torch
from torch import Tensor


def balanced_labels(count: int, num_classes: int | None, device: torch.device | str = "cpu") -> Tensor | None:
    """Classes 0, 1, ..., K-1, 0, 1, ... for ``count`` samples (None for an unconditional model):
    every class equally often, so grids show each class and metrics see the classes in balance."""
    return None if num_classes is None else torch.arange(count, device=device) % num_classes

