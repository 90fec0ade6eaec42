"""An MLP pair for 2-D points: the Gaussian-mixture experiments of VEEGAN and PacGAN.

``depth`` hidden layers of ``width`` units in each network (PacGAN used 4 of 400); D's input is
``pack`` points side by side.
"""

from __future__ import annotations

from ganforge.models.layers import LayerSpec

POINT_DIM = 2


def generator_table(z_dim: int, width: int, depth: int) -> list[LayerSpec]:
    hidden = [LayerSpec("linear", z_dim if row == 0 else width, width, activation="relu") for row in range(depth)]
    return [*hidden, LayerSpec("linear", width, POINT_DIM)]


def discriminator_table(width: int, depth: int, pack: int = 1) -> list[LayerSpec]:
    inputs = pack * POINT_DIM
    hidden = [LayerSpec("linear", inputs if row == 0 else width, width, activation="lrelu") for row in range(depth)]
    return [*hidden, LayerSpec("linear", width, 1)]
