"""DCGAN (Radford et al. 2016) as one family with per-size layer tables.

28x28 is the lecture's exact table (SPEC.md section 4, latent 50); powers of
two follow the 64x64 rule: project z to 4x4 maps, then stride-2 transposed
convolutions that halve the filters until the image, and a mirror-image
discriminator of stride-2 convolutions ending in a 4x4 valid convolution.
BatchNorm everywhere except the generator's output and the discriminator's
input layer; ReLU/tanh in G, LeakyReLU(0.2) in D; no pooling.
"""

from __future__ import annotations

from ganforge.config.resolve import check_dcgan_size
from ganforge.models.layers import LayerSpec


def generator_table(image_size: int, z_dim: int, width: int, channels: int) -> list[LayerSpec]:
    check_dcgan_size(image_size)
    w = width
    if image_size == 28:
        return [
            LayerSpec("convT", z_dim, 4 * w, 4, 1, 0, batch_norm=True, activation="relu"),  # 4x4
            LayerSpec("convT", 4 * w, 2 * w, 3, 2, 1, batch_norm=True, activation="relu"),  # 7x7
            LayerSpec("convT", 2 * w, w, 4, 2, 1, batch_norm=True, activation="relu"),  # 14x14
            LayerSpec("convT", w, channels, 4, 2, 1, activation="tanh"),  # 28x28
        ]

    def filters(side: int) -> int:  # 64x64 at width 64: 1024 at 4x4, 512 at 8x8, ..., 128 at 32x32
        return w * image_size // side

    table = [LayerSpec("project", z_dim, filters(4), batch_norm=True, activation="relu")]
    side = 4
    while side * 2 < image_size:
        table.append(LayerSpec("convT", filters(side), filters(2 * side), 4, 2, 1, batch_norm=True, activation="relu"))
        side *= 2
    table.append(LayerSpec("convT", filters(side), channels, 4, 2, 1, activation="tanh"))
    return table


def discriminator_table(image_size: int, width: int, channels: int) -> list[LayerSpec]:
    check_dcgan_size(image_size)
    w = width
    if image_size == 28:
        return [
            LayerSpec("conv", channels, w, 4, 2, 1, activation="lrelu"),  # 14x14
            LayerSpec("conv", w, 2 * w, 4, 2, 1, batch_norm=True, activation="lrelu"),  # 7x7
            LayerSpec("conv", 2 * w, 4 * w, 3, 2, 1, batch_norm=True, activation="lrelu"),  # 4x4
            LayerSpec("conv", 4 * w, 1, 4, 1, 0),  # 1x1 logit
        ]

    def filters(side: int) -> int:  # 64x64 at width 64: 64 at 32x32, 128 at 16x16, ..., 512 at 4x4
        return w * image_size // (2 * side)

    side = image_size // 2
    table = [LayerSpec("conv", channels, filters(side), 4, 2, 1, activation="lrelu")]
    while side > 4:
        table.append(LayerSpec("conv", filters(side), filters(side // 2), 4, 2, 1, batch_norm=True, activation="lrelu"))
        side //= 2
    table.append(LayerSpec("conv", filters(4), 1, 4, 1, 0))
    return table


def generator_input_shape(image_size: int, z_dim: int) -> tuple[int, ...]:
    """28x28 takes z as a z_dim x 1 x 1 map (a transposed conv); the others project a flat z."""
    return (z_dim, 1, 1) if image_size == 28 else (z_dim,)
