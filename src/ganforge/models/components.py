"""A discrete latent for data in separate clusters: z's last coordinate picks one of K equally likely components.

A generator is a continuous map, so from one connected latent space (a single Gaussian) it cannot reach separate
modes without leaving some samples on the paths between them; how many depends only on how steep G is at the
borders between its modes' latent regions (Khayatkhoei et al. 2018; Tanielian et al. 2020). With K components,
each with its own learned bias on G's first layer, G is a mixture of K generators that share every other weight
(as in MGAN, Hoang et al. 2018), and it can send each component to one mode with nothing in between.

The component is read from z itself, through the Gaussian's quantiles, so z stays one N(0, I) vector: sampling,
seeds, checkpoints and interpolation work unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def component_of(coordinate: Tensor, components: int) -> Tensor:
    """The component 0..K-1 of N(0, 1) draws: the K-quantile bin each falls in, so every component is equally likely."""
    quantile = torch.special.ndtr(coordinate.float())
    return (quantile * components).long().clamp_(0, components - 1)


class ComponentBias(nn.Module):
    """A learned bias per component on G's first layer, chosen by z's last coordinate."""

    def __init__(self, components: int, features: int) -> None:
        super().__init__()
        self.components = components
        self.bias = nn.Embedding(components, features)  # N(0, 1) rows: the components start apart

    def forward(self, coordinate: Tensor) -> Tensor:  # (B,) N(0, 1) -> (B, features)
        return self.bias(component_of(coordinate, self.components))
