"""GAN losses as pure functions of the discriminator's logits.

With D(x) = sigmoid(l): log D(x) = -softplus(-l) and log(1 - D(x)) = -softplus(l),
which stay finite for any logit, unlike log(sigmoid(l)).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, reduction: str = "average") -> Tensor:
    """-(E[log D(x)] + E[log(1 - D(G(z)))]), the negated objective D ascends.

    ``average`` halves the sum of the real and fake terms (binary cross-entropy
    over the combined batch, the course notebook's choice); ``sum`` adds them
    (as in lecture 004), which doubles D's gradient.
    """
    total = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if reduction == "average":
        return 0.5 * total
    if reduction == "sum":
        return total
    raise ValueError(f"unknown reduction {reduction!r}")


def minimax_generator_loss(fake_logits: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))], which G minimizes: the textbook objective, flat where D(G(z)) ~ 0."""
    return -F.softplus(fake_logits).mean()


def nonsaturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """-E[log D(G(z))]: G maximizes log D(G(z)), strong gradients early in training."""
    return F.softplus(-fake_logits).mean()


GENERATOR_LOSSES: dict[str, Callable[[Tensor], Tensor]] = {
    "nonsaturating": nonsaturating_generator_loss,
    "minimax": minimax_generator_loss,
}
