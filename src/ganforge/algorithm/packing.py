"""PacGAN's packing (Lin et al. 2018): D judges m samples at once, concatenated, all real or all fake.

A generator that drops modes makes packs whose members are alike far more often than real packs
are, which a packed discriminator can see; so packing penalizes mode collapse. Samples are packed
in the order they come: rows 0..m-1 form the first pack, m..2m-1 the second, and so on.
"""

from __future__ import annotations

from torch import Tensor, nn


def pack(samples: Tensor, m: int) -> Tensor:
    """(B, F) -> (B/m, m*F) for points; (B, C, H, W) -> (B/m, m*C, H, W) for images (along channels)."""
    if m == 1:
        return samples
    batch = samples.shape[0]
    if batch % m:
        raise ValueError(f"a batch of {batch} samples cannot be split into packs of {m}")
    return samples.reshape(batch // m, m * samples.shape[1], *samples.shape[2:])


class SingleSampleJudge(nn.Module):
    """A packed D as a judge of single samples, for pictures of D's verdict: each sample is judged as a
    pack of m copies of itself."""

    def __init__(self, discriminator: nn.Module, m: int) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.m = m

    def forward(self, samples: Tensor) -> Tensor:  # (B, F) -> (B,) scores
        return self.discriminator(samples.repeat_interleave(self.m, dim=0).reshape(samples.shape[0], -1))


def judge_single_samples(discriminator: nn.Module, m: int) -> nn.Module:
    """D itself when it judges single samples (m = 1), else :class:`SingleSampleJudge`."""
    return discriminator if m == 1 else SingleSampleJudge(discriminator, m)
