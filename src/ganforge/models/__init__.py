"""The model registry: a resolved :class:`ModelConfig` -> generator and discriminator.

Families: ``mlp`` (the lectures' MLP GAN), ``dcgan`` (per-size layer tables),
``toy`` (2-D points). Each family gives layer tables; this module turns them
into a :class:`Generator` / :class:`Discriminator` pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganforge.config.resolve import resolve_model
from ganforge.config.schema import ModelConfig
from ganforge.models import dcgan, mlp, toy
from ganforge.models.layers import (
    Discriminator,
    Generator,
    LayerSpec,
    Shape,
    apply_spectral_norm,
    count_parameters,
    init_dcgan_weights,
    shapes_through,
)

__all__ = [
    "Architecture",
    "Discriminator",
    "Generator",
    "LayerSpec",
    "architecture",
    "build_models",
    "count_parameters",
    "shapes_through",
]


@dataclass(frozen=True)
class Architecture:
    """Both networks' layer tables and the shapes they connect."""

    generator: list[LayerSpec]
    generator_input: Shape  # how z enters G's first layer
    discriminator: list[LayerSpec]
    discriminator_input: Shape  # how a sample enters D's first layer
    sample_shape: Shape  # (C, H, W) for images, (2,) for points
    dcgan_init: bool  # weights from N(0, 0.02), as DCGAN prescribes


def architecture(config: ModelConfig) -> Architecture:
    """The layer tables of a resolved model config."""
    config = resolve_model(config)
    z, w = config.z_dim, config.width
    assert z is not None and w is not None
    if config.conditional:
        z = 2 * z  # z and the label's embedding, concatenated
    m = config.pack  # D judges m samples at once, concatenated (PacGAN): its input is m times as wide
    if config.model == "toy":
        depth = config.depth or 0
        continuous = z - 1 if (config.components or 1) > 1 else z  # the last coordinate picks the component
        return Architecture(
            toy.generator_table(continuous, w, depth), (z,), toy.discriminator_table(w, depth, m), (m * toy.POINT_DIM,),
            (toy.POINT_DIM,), False
        )
    size, c = config.image_size, config.channels
    assert size is not None and c is not None
    if config.model == "mlp":
        pixels = c * size * size
        return Architecture(
            mlp.generator_table(pixels, z, w), (z,), mlp.discriminator_table(m * pixels, w), (m * pixels,), (c, size, size),
            False
        )
    return Architecture(
        dcgan.generator_table(size, z, w, c),
        dcgan.generator_input_shape(size, z),
        dcgan.discriminator_table(size, w, m * c),
        (m * c, size, size),
        (c, size, size),
        True,
    )


def build_models(config: ModelConfig, seed: int | None = None) -> tuple[Generator, Discriminator]:
    """Build G and D for a model config; with ``seed``, the initial weights are reproducible."""
    arch = architecture(config)
    config = resolve_model(config)
    classes = config.num_classes if config.conditional else None
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        generator = Generator(arch.generator, config.z_dim or 0, arch.generator_input, arch.sample_shape, classes,
                              config.components or 1)
        classified = config.components if config.info_weight else 1  # InfoGAN's Q head, with --info-weight
        discriminator = Discriminator(arch.discriminator, arch.discriminator_input, classes, config.d_norm or "batch",
                                      classified, config.pack or 1)
        if arch.dcgan_init:
            init_dcgan_weights(generator)
            init_dcgan_weights(discriminator)
        if config.spectral_norm:
            apply_spectral_norm(discriminator)
    return generator, discriminator
