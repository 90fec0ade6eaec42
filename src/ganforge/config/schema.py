"""The config schema: what to build (model), what to learn from (data), how to train.

A run's configuration is three dataclasses. CLI flags, a YAML file and the
Python API all go through :func:`apply_overrides`, which knows every key by
its field name (``loss``, ``z_dim``, ``lr_d`` ...) so users can give them flat,
and rejects unknown keys with a suggestion. ``None`` means "filled from the
data and the presets", which happens in :mod:`ganforge.config.resolve` alone.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError, shown

MODELS = ("mlp", "dcgan", "toy")
LOSSES = ("nonsaturating", "minimax", "lsgan", "hinge", "wgan-gp", "rpgan")  # ganforge.algorithm.losses.LOSS_FAMILIES
ORDERS = ("d-first", "g-first")
D_LOSS_REDUCTIONS = ("average", "sum")
DEVICES = ("auto", "cpu", "cuda")
ON_NAN = ("stop", "rollback")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
D_NORMS = ("batch", "layer", "none")
AUGMENTATIONS = ("color", "translation", "cutout")  # DiffAugment's transforms (Zhao et al. 2020)
LR_SCHEDULES = ("constant", "linear", "cosine")  # ganforge.algorithm.schedules
PRESETS = ("auto", "lecture")


@dataclass
class ModelConfig:
    """The generator/discriminator pair; saved beside the weights so a checkpoint rebuilds itself."""

    model: str = "dcgan"  # mlp | dcgan | toy
    image_size: int | None = None  # pixels per side; None = the data's natural size
    channels: int | None = None  # 1 or 3; None = the data's channels
    z_dim: int | None = None  # latent size; None = preset (dcgan 28x28: 50, else 100; toy: 2)
    width: int | None = None  # base filters (dcgan) or hidden units (toy); None = preset
    conditional: bool = False  # class-conditional: labels embedded in G's input, a projection discriminator
    num_classes: int | None = None  # classes of a conditional model; None = the data's labels
    spectral_norm: bool = False  # spectral normalization of D's weight layers (Miyato et al. 2018)
    d_norm: str | None = None  # D's normalization: batch | layer | none; None = layer for wgan-gp,
    # none with spectral_norm, else batch (the seed tables)
    depth: int | None = None  # hidden layers of each toy network; None = preset (3)
    pack: int | None = None  # PacGAN: D judges this many samples at once, concatenated (all real or all fake);
    # None = the preset's (1: off)
    components: int | None = None  # toy: a discrete latent, z's last coordinate picks one of this many equally likely
    # components, each with its own bias on G's first layer, so separate modes need no points between them; None = the
    # preset's (1: off)
    info_weight: float | None = None  # with components: InfoGAN's lambda; D also predicts each fake sample's component
    # and G and D both descend lambda times that prediction's cross-entropy, so the components part to separate
    # modes; None = the preset's (0: off)


@dataclass
class DataConfig:
    """Where the real samples come from."""

    data: str = "digits"  # built-in name (digits, ring8, grid25, mnist, ...) or a folder / .npy / .npz path;
    # a run stores a path as an absolute one (ganforge.data.with_absolute_path), so it is found from anywhere
    data_as_given: str | None = None  # the path as the user gave it (e.g. relative), kept for display; None = data
    data_root: str | None = None  # download cache for torchvision data sets; None = ~/.cache/ganforge


@dataclass
class TrainConfig:
    """The algorithm of the lectures and its hyper-parameters; one step = d_steps D updates + g_steps G updates."""

    steps: int | None = None  # iterations in all; None = from epochs, or the model's preset
    epochs: float | None = None  # passes over the real data (in D updates); alternative to steps
    batch_size: int | None = None  # m, real and fake samples per update; None = the model's preset
    d_steps: int | None = None  # k, discriminator updates per step; None = 1 (wgan-gp: 5)
    g_steps: int = 1  # generator updates per step
    order: str = "d-first"  # d-first | g-first
    reuse_fake: bool = False  # pytorch/examples' variant: G's update reuses D's last fake batch (one G forward a step)
    loss: str | None = None  # nonsaturating | minimax (the seed losses, D's BCE) | lsgan | hinge | wgan-gp | rpgan;
    # None = nonsaturating, or the data's tuned preset
    d_loss_reduction: str = "average"  # average | sum of the real and fake terms of the BCE and LSGAN D losses
    lr_d: float | None = None  # Adam learning rate of D; None = the model's preset
    lr_g: float | None = None  # Adam learning rate of G; None = the model's preset
    beta1: float | None = None  # Adam beta1; None = 0.5 (wgan-gp: 0)
    beta2: float | None = None  # Adam beta2; None = 0.999 (wgan-gp: 0.9)
    ema: float | None = None  # decay of an exponential moving average of G's weights, used for samples and metrics
    r1: float | None = None  # gamma of R1, gamma/2 E||grad D(x)||^2 on real samples (Mescheder et al. 2018); 0 = off
    r2: float | None = None  # gamma of R2, the same on generated samples (R3GAN, Huang et al. 2024); 0 = off
    penalty_every: int | None = None  # steps between R1/R2 penalties, each weighted by this interval (lazy); 1 = each
    feature_matching: float | None = None  # lambda: G also descends lambda * the squared distance between the fake
    # and real batches' mean features of D's last hidden layer (Salimans et al. 2016); 0 = off
    lr_schedule: str | None = None  # constant | linear | cosine decay of both learning rates over the run
    lr_floor: float | None = None  # the fraction of the base learning rates a decaying schedule ends at
    preset: str | None = None  # auto: unset keys from the data's tuned preset (ganforge.config.presets.DATA_PRESETS);
    # lecture: the seed GAN as the lectures give it; None = auto for a new run, lecture for a run saved before presets
    diffaug: bool = False  # differentiable augmentation of D's inputs, real and fake (for small data sets)
    diffaug_policy: str = "color,translation,cutout"  # comma-separated DiffAugment transforms
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    log_every: int = 50  # steps between reads of the losses (the only host syncs)
    sample_every: int = 250  # steps between fixed-noise sample grids; 0 = only at the end
    checkpoint_every: int = 500  # steps between checkpoints; 0 = only at the end
    keep_checkpoints: int = 3  # most recent checkpoints kept; 0 = keep all
    precision: str | None = None  # fp32 | bf16 | fp16 (CUDA, with loss scaling): autocast for the forward passes;
    # auto: bf16 where the device computes it natively, else fp32 (decided when the run starts, and saved so);
    # None = fp32, or the data's tuned preset
    channels_last: bool | None = None  # channels_last memory for convolutions; None = on for dcgan
    compile: bool = False  # torch.compile both networks: 20-80 s of start-up; no faster on a 2-core CPU (BENCHMARKS.md)
    sync_batch_norm: bool = False  # under torchrun on GPUs: BatchNorm over the global batch (SyncBatchNorm)
    eval_every: int = 0  # steps between evaluations (metrics.jsonl, eval.json, the best checkpoint); 0 = never
    eval_metrics: str | None = None  # comma-separated metric names; None = all that apply to the data
    eval_samples: int | None = None  # generated samples per evaluation; None = the metric's default (see evaluation.py)
    feature_extractor: str = "auto"  # classifier (digits) | inception (weights on disk) | auto (classifier for digits)
    inception_weights: str | None = None  # the FID Inception-v3 weights file; None = found in the caches
    best_metric: str | None = None  # the metric that picks checkpoints/best; None = fid for images, reverse_kl for
    # points, or the first of eval_metrics when those leave it out
    tensorboard: bool | None = None  # write TensorBoard logs to RUN/tensorboard; None = when tensorboard is installed
    on_nan: str = "stop"  # stop | rollback: a NaN/inf loss or weight stops the run, or returns to the last checkpoint
    max_rollbacks: int = 3  # with on_nan=rollback, how many times before giving up; each halves both learning rates


# What an unset (None) key becomes where no table of ganforge.config.presets decides it, as the help shows it:
# the data, the environment or the model decide these when the run starts. Every other key's shown default is
# computed by ganforge.config.help from its field default above or from the presets.
UNSET_MEANS: dict[str, str] = {
    "image_size": "the data's own: digits 28, folders 64",
    "channels": "the data's own",
    "num_classes": "the data's labels, digits: 10",
    "data_as_given": "the data key as given",
    "data_root": "$GANFORGE_CACHE or ~/.cache/ganforge",
    "epochs": "off",
    "ema": "off",
    "channels_last": "on for dcgan",
    "eval_metrics": "all that apply",
    "eval_samples": "the metric's own, e.g. 2,500 points",
    "best_metric": "fid for images, reverse_kl for points, else the first of --eval-metrics",
    "inception_weights": "found in $GANFORGE_CACHE/weights or torch hub's checkpoints",
    "tensorboard": "on when tensorboard is installed",
    "pack": "1",
    "components": "1",
    "info_weight": "0 (off)",
    "preset": "auto; lecture for a run saved before presets",
}


@dataclass
class RunConfig:
    """Everything that defines a run; written to ``config.yaml`` in the run folder."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        return apply_overrides(cls(), values)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
KEY_TO_SECTION = {f.name: section for section, cls in SECTIONS.items() for f in fields(cls)}


def config_keys() -> list[str]:
    """Every flat key a user may set."""
    return sorted(KEY_TO_SECTION)



def apply_overrides(config: RunConfig, values: dict[str, Any]) -> RunConfig:
    """Return a copy of ``config`` with ``values`` set.

    ``values`` may be flat (``{"loss": "minimax"}``), nested by section
    (``{"train": {"loss": "minimax"}}``) or both; dashes in keys are accepted
    as underscores. ``None`` values are ignored (flag not given).
    """
    config = dataclasses.replace(
        config,
        model=dataclasses.replace(config.model),
        data=dataclasses.replace(config.data),
        train=dataclasses.replace(config.train),
    )
    for key, value in flatten_keys(values).items():
        if value is None:
            continue
        section = getattr(config, KEY_TO_SECTION[key])
        setattr(section, key, _coerce(key, value, _field_type(section, key)))
    return config


def flatten_keys(values: dict[str, Any]) -> dict[str, Any]:
    """Flat or sectioned keys as one flat mapping; unknown keys raise ConfigError."""
    flat: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key in SECTIONS and isinstance(value, dict):
            for inner_key, inner_value in value.items():
                inner = str(inner_key).replace("-", "_")
                if KEY_TO_SECTION.get(inner) != key:
                    raise ConfigError(_unknown_key_message(shown(f"{key}.{inner}"), inner))
                flat[inner] = inner_value
        elif key in KEY_TO_SECTION:
            flat[key] = value
        else:
            raise ConfigError(_unknown_key_message(shown(raw_key), key))
    return flat


def _unknown_key_message(shown: str, key: str) -> str:
    close = difflib.get_close_matches(key, config_keys(), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(config_keys())})"
    return f"unknown config key {shown}{hint}"


def _field_type(section: object, key: str) -> str:
    return next(f.type for f in fields(section) if f.name == key)  # type: ignore[arg-type]


def _coerce(key: str, value: Any, type_name: str) -> Any:
    base = type_name.replace(" | None", "")
    try:
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base == "bool":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if base == "str":
            if not isinstance(value, (str, Path)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: float() of an integer beyond 1e308
        pass
    else:
        return value
    kind = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}.get(base, base)
    raise ConfigError(f"config key '{key}' must be {kind}, got {shown(value)}")

