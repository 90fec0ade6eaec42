"""Penalties on the discriminator's input gradients, added to D's loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

GRADIENT_PENALTY_WEIGHT = 10.0  # lambda of WGAN-GP


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, generator: torch.Generator,
                     weight: float = GRADIENT_PENALTY_WEIGHT) -> Tensor:
    """lambda E[(||grad_x D(x_hat)||_2 - 1)^2] at x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per sample.

    The graph is kept (``create_graph``), so the penalty's own gradient reaches D's weights.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), generator=generator, device=real.device, dtype=real.dtype)
    between = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(between)
    (gradients,) = torch.autograd.grad(scores.sum(), between, create_graph=True)
    return weight * (gradients.flatten(1).norm(dim=1) - 1).square().mean()
