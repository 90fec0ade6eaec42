"""The MLP GAN of the lectures (SPEC.md section 3), generalised from 784 pixels to any C x H x W.

At width 256 and 28x28x1: G 100 -> 256 -> 512 -> 1024 -> 784 with BatchNorm and
LeakyReLU(0.2), tanh output; D 784 -> 512 -> 256 -> 1 with LeakyReLU(0.2). The
generator is deliberately the stronger network.
"""

from __future__ import annotations

from ganforge.models.layers import LayerSpec


def generator_table(pixels: int, z_dim: int, width: int) -> list[LayerSpec]:
    return [
        LayerSpec("linear", z_dim, width, batch_norm=True, activation="lrelu"),
        LayerSpec("linear", width, 2 * width, batch_norm=True, activation="lrelu"),
        LayerSpec("linear", 2 * width, 4 * width, batch_norm=True, activation="lrelu"),
        LayerSpec("linear", 4 * width, pixels, activation="tanh"),
    ]


def discriminator_table(pixels: int, width: int) -> list[LayerSpec]:
    return [
        LayerSpec("linear", pixels, 2 * width, activation="lrelu"),
        LayerSpec("linear", 2 * width, width, activation="lrelu"),
        LayerSpec("linear", width, 1),
    ]
