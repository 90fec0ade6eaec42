"""GAN losses as pure functions of the discriminator's raw outputs (logits, or critic scores).

The seed losses (SPEC.md section 2) read D's output as a logit, D(x) = sigmoid(l):
log D(x) = -softplus(-l) and log(1 - D(x)) = -softplus(l), which stay finite for
any logit, unlike log(sigmoid(l)). The later losses read it as a raw score:

- ``lsgan`` (Mao et al. 2017, a=0, b=c=1): least squares towards 1 for real, 0 for fake;
- ``hinge`` (Lim & Ye 2017; Miyato et al. 2018): D's margin loss, G maximizes D's score;
- ``wgan-gp`` (Gulrajani et al. 2017): D is a critic estimating the Wasserstein-1 distance,
  kept 1-Lipschitz by a penalty on its input gradient's norm at points between real and fake;
- ``rpgan``, the relativistic pairing loss (Jolicoeur-Martineau 2019; Huang et al. 2024, R3GAN):
  D's loss is the softplus of the difference of paired fake and real logits, and G's the mirror
  image, so each fake sample is judged against a real one; R3GAN pairs it with the R1 and R2
  penalties (``--r1``, ``--r2``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, reduction: str = "average") -> Tensor:
    """-(E[log D(x)] + E[log(1 - D(G(z)))]), the negated objective D ascends.

    ``average`` halves the sum of the real and fake terms (binary cross-entropy
    over the combined batch, the course notebook's choice); ``sum`` adds them
    (as in lecture 004), which doubles D's gradient.
    """
    return _reduce(F.softplus(-real_logits).mean(), F.softplus(fake_logits).mean(), reduction)


def minimax_generator_loss(fake_logits: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))], which G minimizes: the textbook objective, flat where D(G(z)) ~ 0."""
    return -F.softplus(fake_logits).mean()


def nonsaturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """-E[log D(G(z))]: G maximizes log D(G(z)), strong gradients early in training."""
    return F.softplus(-fake_logits).mean()


def lsgan_discriminator_loss(real_scores: Tensor, fake_scores: Tensor, reduction: str = "average") -> Tensor:
    """E[(D(x) - 1)^2] and E[D(G(z))^2], averaged (Mao et al.'s 1/2 factor) or summed."""
    return _reduce((real_scores - 1).square().mean(), fake_scores.square().mean(), reduction)


def lsgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """1/2 E[(D(G(z)) - 1)^2]: G pulls its samples' scores to the real target."""
    return 0.5 * (fake_scores - 1).square().mean()


def hinge_discriminator_loss(real_scores: Tensor, fake_scores: Tensor, reduction: str = "sum") -> Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]: no gradient from samples already past the margin."""
    return _reduce(F.relu(1 - real_scores).mean(), F.relu(1 + fake_scores).mean(), reduction)


def critic_loss(real_scores: Tensor, fake_scores: Tensor, reduction: str = "sum") -> Tensor:
    """E[D(G(z))] - E[D(x)]: the negated Wasserstein estimate the critic maximizes (penalty added apart)."""
    return _reduce(-real_scores.mean(), fake_scores.mean(), reduction)


def score_generator_loss(fake_scores: Tensor) -> Tensor:
    """-E[D(G(z))]: the generator loss of hinge and WGAN-GP, raising the critic's score of its samples."""
    return -fake_scores.mean()


def relativistic_discriminator_loss(real_logits: Tensor, fake_logits: Tensor, reduction: str = "sum") -> Tensor:
    """E[softplus(-(D(x_i) - D(G(z_i))))]: each real sample should score above the fake it is paired with."""
    return F.softplus(fake_logits - real_logits).mean()


def relativistic_generator_loss(fake_logits: Tensor, real_logits: Tensor) -> Tensor:
    """E[softplus(-(D(G(z_i)) - D(x_i)))]: each fake sample should score above its real partner."""
    return F.softplus(real_logits - fake_logits).mean()


def _reduce(real_term: Tensor, fake_term: Tensor, reduction: str) -> Tensor:
    if reduction == "average":
        return 0.5 * (real_term + fake_term)
    if reduction == "sum":
        return real_term + fake_term
    raise ValueError(f"unknown reduction {reduction!r}")


@dataclass(frozen=True)
class GanLoss:
    """One loss family: D's loss, G's loss, and whether D's output is a probability's logit."""

    discriminator: Callable[[Tensor, Tensor, str], Tensor]
    generator: Callable[..., Tensor]  # (fake scores) -> loss, or (fake scores, real scores) when pairs_real
    outputs_probability: bool  # sigmoid(D) is the probability of "real" (the seed losses); else a raw score
    gradient_penalty: bool = False  # D's loss adds ganforge.algorithm.penalties.gradient_penalty
    reduction: str | None = None  # the paper's fixed real/fake reduction; None = the d_loss_reduction key
    pairs_real: bool = False  # G's loss also reads D's scores of a real batch (the relativistic loss)


LOSS_FAMILIES: dict[str, GanLoss] = {  # keyed by the names of ganforge.config.schema.LOSSES
    "nonsaturating": GanLoss(discriminator_loss, nonsaturating_generator_loss, outputs_probability=True),
    "minimax": GanLoss(discriminator_loss, minimax_generator_loss, outputs_probability=True),
    "lsgan": GanLoss(lsgan_discriminator_loss, lsgan_generator_loss, outputs_probability=False),
    "hinge": GanLoss(hinge_discriminator_loss, score_generator_loss, outputs_probability=False, reduction="sum"),
    "wgan-gp": GanLoss(critic_loss, score_generator_loss, outputs_probability=False, gradient_penalty=True,
                       reduction="sum"),
    "rpgan": GanLoss(relativistic_discriminator_loss, relativistic_generator_loss, outputs_probability=False,
                     reduction="sum", pairs_real=True),
}
