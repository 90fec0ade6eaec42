"""A small MLP pair for 2-D points: the Gaussian-mixture experiments of VEEGAN and PacGAN."""

from __future__ import annotations

from ganforge.models.layers import LayerSpec

POINT_DIM = 2


def generator_table(z_dim: int, width: int) -> list[LayerSpec]:
    return [
        LayerSpec("linear", z_dim, width, activation="relu"),
        LayerSpec("linear", width, width, activation="relu"),
        LayerSpec("linear", width, width, activation="relu"),
        LayerSpec("linear", width, POINT_DIM),
    ]


def discriminator_table(width: int) -> list[LayerSpec]:
    return [
        LayerSpec("linear", POINT_DIM, width, activation="lrelu"),
        LayerSpec("linear", width, width, activation="lrelu"),
        LayerSpec("linear", width, width, activation="lrelu"),
        LayerSpec("linear", width, 1),
    ]
