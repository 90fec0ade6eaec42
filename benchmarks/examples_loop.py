"""The second baseline: the loop of pytorch/examples' dcgan/main.py, the one most users start from.

It differs from the lectures' loop (benchmarks/textbook.py) in three ways: D ends in a Sigmoid and is trained
with nn.BCELoss on two separate backward passes (real, then fake); the G update reuses the fake batch the D
update made (one G forward per iteration instead of two); and every iteration reads five numbers to the host
with ``.item()`` (errD, errG, D(x), D(G(z)) before and after the D update), as its progress line does.
Same networks as ganforge (a Sigmoid is appended to D), same data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset


class ExamplesLoop:
    """One iteration of pytorch/examples' DCGAN loop per call of :meth:`step`."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, images: Tensor, batch_size: int,
                 z_dim: int, precision: str = "fp32") -> None:
        self.generator = generator
        self.discriminator = nn.Sequential(discriminator, nn.Sigmoid())
        self.z_dim = z_dim
        self.batch_size = batch_size
        self.loader = DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=True, drop_last=True)
        self.batches = self._forever()
        self.criterion = nn.BCELoss()
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" \
            else contextlib.nullcontext
        self.history: list[tuple[float, ...]] = []

    def _forever(self) -> Iterator[Tensor]:
        while True:
            for (batch,) in self.loader:
                yield batch

    def step(self) -> None:
        real = next(self.batches).float() / 127.5 - 1
        label = torch.full((self.batch_size,), 1.0)
        self.discriminator.zero_grad()
        with self.autocast():
            output = self.discriminator(real).view(-1).float()
        error_real = self.criterion(output, label)
        error_real.backward()
        d_x = output.mean().item()

        noise = torch.randn(self.batch_size, self.z_dim)
        with self.autocast():
            fake = self.generator(noise)
            output = self.discriminator(fake.detach()).view(-1).float()
        label.fill_(0.0)
        error_fake = self.criterion(output, label)
        error_fake.backward()
        d_g_z1 = output.mean().item()
        error_d = error_real + error_fake
        self.opt_d.step()

        self.generator.zero_grad()
        label.fill_(1.0)
        with self.autocast():
            output = self.discriminator(fake).view(-1).float()
        error_g = self.criterion(output, label)
        error_g.backward()
        d_g_z2 = output.mean().item()
        self.opt_g.step()
        self.history.append((error_d.item(), error_g.item(), d_x, d_g_z1, d_g_z2))
