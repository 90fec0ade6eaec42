"""The baseline: the textbook PyTorch GAN loop of lecture 002 and PyTorch's DCGAN example.

A per-sample DataLoader over the real images, nn.BCEWithLogitsLoss against
label tensors, two Adam optimizers with default settings, and one ``.item()``
per loss per step. It runs the same algorithm as ganforge (one D update on a
real and a fake batch with the losses averaged, then one G update on fresh
noise with the non-saturating loss) on the same networks, so only the
engineering differs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset


class TextbookLoop:
    """One training iteration per call of :meth:`step`, written the way tutorials write it."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, images: Tensor, batch_size: int,
                 z_dim: int, precision: str = "fp32") -> None:
        self.generator, self.discriminator = generator, discriminator
        self.z_dim = z_dim
        self.batch_size = batch_size
        self.loader = DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=True, drop_last=True)
        self.batches = self._forever()
        self.criterion = nn.BCEWithLogitsLoss()
        self.opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.ones = torch.ones(batch_size)
        self.zeros = torch.zeros(batch_size)
        self.losses: list[tuple[float, float]] = []
        self.autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" \
            else contextlib.nullcontext

    def _forever(self) -> Iterator[Tensor]:
        while True:
            for (batch,) in self.loader:
                yield batch

    def step(self) -> None:
        real = next(self.batches).float() / 127.5 - 1
        with self.autocast():
            fake = self.generator(torch.randn(self.batch_size, self.z_dim))
            real_scores, fake_scores = self.discriminator(real), self.discriminator(fake.detach())
        d_loss = 0.5 * (self.criterion(real_scores.float(), self.ones) + self.criterion(fake_scores.float(), self.zeros))
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()

        with self.autocast():
            fake_scores = self.discriminator(self.generator(torch.randn(self.batch_size, self.z_dim)))
        g_loss = self.criterion(fake_scores.float(), self.ones)
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        self.losses.append((d_loss.item(), g_loss.item()))
