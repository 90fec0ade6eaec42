"""A discrete latent for data in separate clusters: z's last coordinate picks one of K equally likely components.

A generator is a continuous map, so from one connected latent space (a single Gaussian) it cannot reach separate
modes without leaving some samples on the paths between them; how many depends only on how steep G is at the
borders between its modes' latent regions (Khayatkhoei et al. 2018; Tanielian et al. 2020). With K components,
each with its own learned bias on G's first layer, G is a mixture of K generators that share every other weight
(as in MGAN, Hoang et al. 2018), and it can send each component to one mode with nothing in between.

The component is read from z itself, through the Gaussian's quantiles, so z stays one N(0, I) vector: sampling,
seeds, checkpoints and interpolation work unchanged.

Nothing in the adversarial loss alone stops two components settling on one mode while another mode stays empty
(D's gradient cannot carry a component across the empty space between modes). InfoGAN's mutual-information term
(Chen et al. 2016), which MGAN uses for the same purpose, does: D gets a second head, :class:`ComponentClassifier`,
that predicts each fake sample's component, and G is trained to make that prediction easy, so the components
must make samples that tell them apart.
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


class ComponentClassifier(nn.Module):
    """InfoGAN's Q for the components: K logits per sample from D's last hidden features.

    D judges ``pack`` samples at once under PacGAN's packing; the head then gives K logits for each of them,
    in the order the pack holds them.
    """

    def __init__(self, features: int, components: int, pack: int = 1) -> None:
        super().__init__()
        self.components = components
        self.linear = nn.Linear(features, pack * components)

    def forward(self, features: Tensor) -> Tensor:  # (P, features) -> (P * pack, K)
        return self.linear(features).view(-1, self.components)
