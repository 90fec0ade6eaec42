"""Penalties on the discriminator's input gradients, added to D's loss.

- WGAN-GP's two-sided penalty at points between real and fake (Gulrajani et al. 2017);
- the zero-centred penalties R1 on real data (Mescheder et al. 2018) and R2 on generated data
  (R3GAN, Huang et al. 2024): gamma/2 E[||grad_x D(x)||^2], which push D to be flat where the
  data are, so that the game converges to G = p_data instead of circling it.
"""

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


def zero_centred_penalty(critic: Callable[[Tensor], Tensor], samples: Tensor, gamma: float) -> Tensor:
    """gamma/2 E[||grad_x D(x)||_2^2] at the given samples (R1 on real ones, R2 on generated ones).

    The samples are detached first, so the penalty trains D only; the graph is kept (``create_graph``),
    so its gradient reaches D's weights.
    """
    inputs = samples.detach().requires_grad_(True)
    (gradients,) = torch.autograd.grad(critic(inputs).sum(), inputs, create_graph=True)
    return 0.5 * gamma * gradients.flatten(1).square().sum(dim=1).mean()
