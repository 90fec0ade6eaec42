"""The exponential moving average of G's weights (``--ema``), with a warm-up."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import Module
from torch.optim.swa_utils import AveragedModel


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


def averaging_step(average: AveragedModel, model: Module) -> Callable[[], None]:
    """``average.update_parameters(model)`` on tensor lists gathered once.

    AveragedModel walks both module trees and regroups their tensors by device and dtype on every call:
    161 against 52 us here, about 5% of a 2-D toy step (BENCHMARKS.md). This keeps the lists (loading a
    state copies into the same tensors, so they stay valid) and does the same arithmetic: the first update
    copies the model, later ones call the average's ``multi_avg_fn`` once per dtype, and every update
    counts one in ``n_averaged``. Needs a ``multi_avg_fn`` and ``use_buffers=True``, as the trainer builds it.
    """
    if average.multi_avg_fn is None or not average.use_buffers:
        raise ValueError("averaging_step needs an AveragedModel with multi_avg_fn and use_buffers=True")
    averaged = [tensor.detach() for tensor in (*average.module.parameters(), *average.module.buffers())]
    current = [tensor.detach() for tensor in (*model.parameters(), *model.buffers())]
    if [(t.shape, t.dtype, t.device) for t in averaged] != [(t.shape, t.dtype, t.device) for t in current]:
        raise ValueError("averaging_step needs the average and the model to hold the same tensors on one device")
    groups: dict[torch.dtype, tuple[list[Tensor], list[Tensor]]] = {}
    for mine, theirs in zip(averaged, current):
        group = groups.setdefault(mine.dtype, ([], []))
        group[0].append(mine)
        group[1].append(theirs)
    update = average.multi_avg_fn

    @torch.no_grad()
    def step() -> None:
        if bool(average.n_averaged == 0):
            torch._foreach_copy_(averaged, current)
        else:
            for mine, theirs in groups.values():
                update(mine, theirs, average.n_averaged)
        average.n_averaged += 1

    return step
