"""The one place where a config's unset values are filled: from the presets, the data and the model family.

:func:`resolve_config` takes what the loaded data decides (image size, channels, classes), the model
family's sizes, D's normalization and the training presets; :func:`total_steps` turns epochs into steps.
Configs stay plain data here: the data set is seen through :class:`DataFacts`, so this module needs
neither the data loaders nor the networks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from ganforge.config.presets import (
    DATA_PRESETS,
    DCGAN_SIZES,
    DEFAULT_ALGORITHM,
    LOSS_PRESETS,
    TRAINING_PRESETS,
    model_preset,
)
from ganforge.config.schema import KEY_TO_SECTION, ModelConfig, RunConfig, apply_overrides
from ganforge.errors import ConfigError


class DataFacts(Protocol):
    """What resolution needs to know of a loaded data set (:class:`ganforge.data.RealData` has it)."""

    kind: str  # "images" or "points"
    description: str  # how messages name the data
    labels: Any  # a tensor of class indices, or None

    @property
    def sample_shape(self) -> tuple[int, ...]: ...  # (C, H, W) or (2,)

    def batches_per_epoch(self, batch_size: int) -> int | None: ...  # None: sampled on the fly


def check_model_fits_data(model: str, data_kind: str | None, description: str) -> None:
    """The toy model learns 2-D points and the others images; ``data_kind`` None (not known yet) passes."""
    if model == "toy" and data_kind == "images":
        raise ConfigError(f"the toy model learns 2-D points, but {description} holds images: "
                          "use --data ring8 or grid25, or --model mlp or dcgan")
    if model != "toy" and data_kind == "points":
        raise ConfigError(f"--model {model} learns images, but {description} holds 2-D points: use --model toy")


def check_dcgan_size(image_size: int) -> None:
    if image_size not in DCGAN_SIZES:
        sizes = ", ".join(map(str, DCGAN_SIZES[:-1])) + f" or {DCGAN_SIZES[-1]}"
        raise ConfigError(f"image size {image_size} is not supported by dcgan (use {sizes}, or --model mlp)")


def resolve_config(config: RunConfig, data: DataFacts) -> RunConfig:
    """Fill what the data decides (image size, channels), the data's tuned preset (``preset: auto``) and the
    model's presets (sizes, training keys)."""
    config = with_data_preset(config)
    model = config.model
    check_model_fits_data(model.model, data.kind, data.description)
    if data.kind == "images":
        channels, size, width = data.sample_shape
        if size != width:
            raise ConfigError(f"images of {data.description} are {size}x{width}, not square: crop them to square")
        model = dataclasses.replace(model, image_size=size, channels=channels)
    if model.conditional:
        model = dataclasses.replace(model, num_classes=_classes_of(data, model.num_classes))
    model = dataclasses.replace(model, d_norm=model.d_norm or default_d_norm(model, config.train.loss))
    return with_training_preset(dataclasses.replace(config, model=resolve_model(model)))


def _classes_of(data: DataFacts, asked: int | None) -> int:
    """The class count of a conditional model: the data's labels 0..K-1 (or ``asked``, if they fit in it)."""
    if data.labels is None:
        raise ConfigError(f"--conditional needs class labels, and {data.description} has none: "
                          "use labelled data such as --data digits, or train without --conditional")
    found = int(data.labels.max()) + 1
    if asked is not None and asked < found:
        raise ConfigError(f"{data.description} has labels up to {found - 1}, more than --num-classes {asked} holds: "
                          f"use --num-classes {found} or leave it unset")
    return asked or found


def total_steps(config: RunConfig, data: DataFacts) -> int:
    """The step count to train to: --steps, or --epochs converted through the data's batches per epoch."""
    train = config.train
    if train.steps is not None:
        return train.steps
    assert train.epochs is not None, "with_training_preset sets steps when epochs is not given"
    per_epoch = data.batches_per_epoch(train.batch_size)
    if per_epoch is None:
        raise ConfigError(f"{data.description} is sampled on the fly and has no epochs: use --steps")
    return max(1, round(train.epochs * per_epoch / train.d_steps))


def with_data_preset(config: RunConfig) -> RunConfig:
    """Under ``preset: auto`` (the default of a new run), fill the keys left unset from the tuned preset of the
    run's model and data, where there is one; ``preset: lecture`` leaves them to the lectures' values."""
    preset = config.train.preset or "auto"
    tuned = DATA_PRESETS.get((config.model.model, config.data.data), {}) if preset == "auto" else {}
    return _fill_unset(apply_overrides(config, {"preset": preset}), tuned)


def with_training_preset(config: RunConfig) -> RunConfig:
    """Fill the training keys left unset from the model's and the loss's presets."""
    preset = {**TRAINING_PRESETS[config.model.model], **DEFAULT_ALGORITHM, **LOSS_PRESETS.get(config.train.loss, {})}
    return _fill_unset(config, preset)


def _fill_unset(config: RunConfig, values: dict[str, Any]) -> RunConfig:
    """``config`` with the keys of ``values`` that it leaves unset (None) set; steps stay unset under epochs."""
    unset = {key: value for key, value in values.items()
             if getattr(getattr(config, KEY_TO_SECTION[key]), key) is None}
    if config.train.epochs is not None:
        unset.pop("steps", None)
    return apply_overrides(config, unset)


def resolve_model(config: ModelConfig) -> ModelConfig:
    """Fill the preset's z_dim and width; check the size is one the family supports."""
    if config.model == "toy":
        preset = model_preset("toy", None)
        return dataclasses.replace(config, image_size=None, channels=None, z_dim=config.z_dim or preset["z_dim"],
                                   width=config.width or preset["width"], depth=config.depth or preset["depth"],
                                   pack=config.pack or 1, components=config.components or 1,
                                   info_weight=config.info_weight or 0.0, d_norm=config.d_norm or default_d_norm(config))
    if config.image_size is None or config.channels is None:
        raise ConfigError(f"{config.model} needs an image size and channels: pass --image-size and --channels")
    if config.model == "dcgan":
        check_dcgan_size(config.image_size)
    if config.conditional and config.num_classes is None:
        raise ConfigError("a conditional model needs its number of classes: pass --num-classes, or labelled data")
    preset = model_preset(config.model, config.image_size)
    return dataclasses.replace(config, z_dim=config.z_dim or preset["z_dim"], width=config.width or preset["width"],
                               pack=config.pack or 1, components=config.components or 1,
                               info_weight=config.info_weight or 0.0, d_norm=config.d_norm or default_d_norm(config))


def default_d_norm(config: ModelConfig, loss: str | None = None) -> str:
    """D's normalization when not chosen: none under spectral norm, layer for a gradient-penalty critic
    (whose penalty is per sample, which BatchNorm's batch mixing breaks), else the seed tables' BatchNorm."""
    if config.spectral_norm:
        return "none"
    return "layer" if loss == "wgan-gp" else "batch"


def learns_points(config: RunConfig) -> bool:
    """Whether a run learns 2-D points rather than images: the toy model's runs (resolution checks its data)."""
    return config.model.model == "toy"
