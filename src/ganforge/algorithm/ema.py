"""The exponential moving average of G's weights (``--ema``), with a warm-up."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def ema_with_warmup(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """The EMA update for torch's AveragedModel, with the warm-up of TensorFlow's ExponentialMovingAverage:
    after t updates the decay is min(decay, (1 + t) / (10 + t)), so the first weights of G, which make noise,
    are forgotten within tens of steps instead of lingering (0.999^1500 = 22% of the average at step 1,500).
    Integer buffers (BatchNorm's batch counter) are copied, not averaged. The decay stays a device tensor."""

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], updates: Tensor) -> None:
        if not (torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0])):
            torch._foreach_copy_(averaged, current)
            return
        step_decay = torch.clamp((1 + updates) / (10 + updates), max=decay).to(averaged[0].dtype)
        torch._foreach_lerp_(averaged, current, 1 - step_decay)

    return update

