"""The model registry: a resolved :class:`ModelConfig` -> generator and discriminator.

Families: ``mlp`` (the lectures' MLP GAN), ``dcgan`` (per-size layer tables),
``toy`` (2-D points). Each family gives layer tables; this module turns them
into a :class:`Generator` / :class:`Discriminator` pair.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import dcgan, mlp, toy
from ganforge.models.layers import (
    Discriminator,
    apply_spectral_norm,
    Generator,
    LayerSpec,
    Shape,
    count_parameters,
    init_dcgan_weights,
    shapes_through,
)

PRESETS = {"mlp": mlp.preset, "dcgan": dcgan.preset, "toy": toy.preset}

__all__ = [
    "Architecture",
    "Discriminator",
    "Generator",
    "LayerSpec",
    "architecture",
    "build_models",
    "default_d_norm",
    "count_parameters",
    "resolve_model",
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


def resolve_model(config: ModelConfig) -> ModelConfig:
    """Fill the preset's z_dim and width; check the size is one the family supports."""
    if config.model == "toy":
        preset = toy.preset()
        return dataclasses.replace(config, image_size=None, channels=None, z_dim=config.z_dim or preset["z_dim"],
                                   width=config.width or preset["width"], d_norm=config.d_norm or default_d_norm(config))
    if config.image_size is None or config.channels is None:
        raise ConfigError(f"{config.model} needs an image size and channels: pass --image-size and --channels")
    if config.model == "dcgan":
        dcgan.check_size(config.image_size)
    if config.conditional and config.num_classes is None:
        raise ConfigError("a conditional model needs its number of classes: pass --num-classes, or labelled data")
    preset = PRESETS[config.model](config.image_size)
    return dataclasses.replace(config, z_dim=config.z_dim or preset["z_dim"], width=config.width or preset["width"],
                               d_norm=config.d_norm or default_d_norm(config))


def default_d_norm(config: ModelConfig, loss: str | None = None) -> str:
    """D's normalization when not chosen: none under spectral norm, layer for a gradient-penalty critic
    (whose penalty is per sample, which BatchNorm's batch mixing breaks), else the seed tables' BatchNorm."""
    if config.spectral_norm:
        return "none"
    return "layer" if loss == "wgan-gp" else "batch"


def architecture(config: ModelConfig) -> Architecture:
    """The layer tables of a resolved model config."""
    config = resolve_model(config)
    z, w = config.z_dim, config.width
    assert z is not None and w is not None
    if config.conditional:
        z = 2 * z  # z and the label's embedding, concatenated
    if config.model == "toy":
        return Architecture(
            toy.generator_table(z, w), (z,), toy.discriminator_table(w), (toy.POINT_DIM,), (toy.POINT_DIM,), False
        )
    size, c = config.image_size, config.channels
    assert size is not None and c is not None
    if config.model == "mlp":
        pixels = c * size * size
        return Architecture(
            mlp.generator_table(pixels, z, w), (z,), mlp.discriminator_table(pixels, w), (pixels,), (c, size, size), False
        )
    return Architecture(
        dcgan.generator_table(size, z, w, c),
        dcgan.generator_input_shape(size, z),
        dcgan.discriminator_table(size, w, c),
        (c, size, size),
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
        generator = Generator(arch.generator, config.z_dim or 0, arch.generator_input, arch.sample_shape, classes)
        discriminator = Discriminator(arch.discriminator, arch.discriminator_input, classes, config.d_norm or "batch")
        if arch.dcgan_init:
            init_dcgan_weights(generator)
            init_dcgan_weights(discriminator)
        if config.spectral_norm:
            apply_spectral_norm(discriminator)
    return generator, discriminator
