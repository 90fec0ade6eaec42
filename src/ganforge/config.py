"""Typed configuration: what to build (model), what to learn from (data), how to train.

A run's configuration is three dataclasses. CLI flags, a YAML file and the
Python API all go through :func:`apply_overrides`, which knows every key by
its field name (``loss``, ``z_dim``, ``lr_d`` ...) so users can give them flat,
and rejects unknown keys with a suggestion. ``None`` means "resolve from the
data and the model's preset" and disappears in :func:`resolve`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import reprlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ganforge.errors import ConfigError

MODELS = ("mlp", "dcgan", "toy")
LOSSES = ("nonsaturating", "minimax", "lsgan", "hinge", "wgan-gp")  # the families of ganforge.losses.LOSSES
ORDERS = ("d-first", "g-first")
D_LOSS_REDUCTIONS = ("average", "sum")
DEVICES = ("auto", "cpu", "cuda")
ON_NAN = ("stop", "rollback")
PRECISIONS = ("fp32", "bf16", "fp16")
D_NORMS = ("batch", "layer", "none")
AUGMENTATIONS = ("color", "translation", "cutout")  # DiffAugment's transforms (Zhao et al. 2020)

# Per model, the training values of keys left unset: the seed models use DCGAN's
# Adam settings; the 2-D toy needs larger batches, a faster rate and more steps
# to cover every mode of ring8 (steps apply only when --epochs is not given).
TRAINING_PRESETS: dict[str, dict[str, int | float]] = {
    "mlp": {"steps": 2000, "batch_size": 64, "lr_d": 2e-4, "lr_g": 2e-4},
    "dcgan": {"steps": 2000, "batch_size": 64, "lr_d": 2e-4, "lr_g": 2e-4},
    "toy": {"steps": 3000, "batch_size": 512, "lr_d": 1e-3, "lr_g": 1e-3},
}
# Per loss, the algorithm keys left unset: WGAN-GP's critic trains 5 times per G step with Adam(0, 0.9)
# (Gulrajani et al. 2017, Algorithm 1); the other losses use the lectures' k = 1 and DCGAN's Adam(0.5, 0.999).
LOSS_PRESETS: dict[str, dict[str, int | float]] = {
    "wgan-gp": {"d_steps": 5, "beta1": 0.0, "beta2": 0.9},
}
DEFAULT_ALGORITHM: dict[str, int | float] = {"d_steps": 1, "beta1": 0.5, "beta2": 0.999}


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


@dataclass
class DataConfig:
    """Where the real samples come from."""

    data: str = "digits"  # built-in name (digits, ring8, grid25, mnist, ...) or a folder / .npy / .npz path
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
    loss: str = "nonsaturating"  # nonsaturating | minimax (the seed losses, D's BCE) | lsgan | hinge | wgan-gp
    d_loss_reduction: str = "average"  # average | sum of the real and fake terms of the BCE and LSGAN D losses
    lr_d: float | None = None  # Adam learning rate of D; None = the model's preset
    lr_g: float | None = None  # Adam learning rate of G; None = the model's preset
    beta1: float | None = None  # Adam beta1; None = 0.5 (wgan-gp: 0)
    beta2: float | None = None  # Adam beta2; None = 0.999 (wgan-gp: 0.9)
    ema: float | None = None  # decay of an exponential moving average of G's weights, used for samples and metrics
    diffaug: bool = False  # differentiable augmentation of D's inputs, real and fake (for small data sets)
    diffaug_policy: str = "color,translation,cutout"  # comma-separated DiffAugment transforms
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    log_every: int = 50  # steps between reads of the losses (the only host syncs)
    sample_every: int = 250  # steps between fixed-noise sample grids; 0 = only at the end
    checkpoint_every: int = 500  # steps between checkpoints; 0 = only at the end
    keep_checkpoints: int = 3  # most recent checkpoints kept; 0 = keep all
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA, with loss scaling): autocast for the forward passes
    channels_last: bool | None = None  # channels_last memory for convolutions; None = on for dcgan
    compile: bool = False  # torch.compile both networks: 20-80 s of start-up; no faster on a 2-core CPU (BENCHMARKS.md)
    sync_batch_norm: bool = False  # under torchrun on GPUs: BatchNorm over the global batch (SyncBatchNorm)
    eval_every: int = 0  # steps between evaluations (metrics.jsonl, eval.json, the best checkpoint); 0 = never
    eval_metrics: str | None = None  # comma-separated metric names; None = all that apply to the data
    eval_samples: int | None = None  # generated samples per evaluation; None = the metric's default (see evaluation.py)
    feature_extractor: str = "auto"  # classifier (digits) | inception (weights on disk) | auto (classifier for digits)
    best_metric: str | None = None  # the metric that picks checkpoints/best; None = fid for images, reverse_kl for points
    tensorboard: bool | None = None  # write TensorBoard logs to RUN/tensorboard; None = when tensorboard is installed
    on_nan: str = "stop"  # stop | rollback: a NaN/inf loss or weight stops the run, or returns to the last checkpoint
    max_rollbacks: int = 3  # with on_nan=rollback, how many times before giving up; each halves both learning rates


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


_SECTION_CLASSES = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
_KEY_TO_SECTION = {f.name: section for section, cls in _SECTION_CLASSES.items() for f in fields(cls)}


def config_keys() -> list[str]:
    """Every flat key a user may set."""
    return sorted(_KEY_TO_SECTION)


def with_training_preset(config: RunConfig) -> RunConfig:
    """Fill the training keys left unset from the model's and the loss's presets."""
    preset = {**TRAINING_PRESETS[config.model.model], **DEFAULT_ALGORITHM, **LOSS_PRESETS.get(config.train.loss, {})}
    unset = {key: value for key, value in preset.items() if getattr(config.train, key) is None}
    if config.train.epochs is not None:
        unset.pop("steps", None)
    return apply_overrides(config, unset)


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
        section = getattr(config, _KEY_TO_SECTION[key])
        setattr(section, key, _coerce(key, value, _field_type(section, key)))
    return config


def flatten_keys(values: dict[str, Any]) -> dict[str, Any]:
    """Flat or sectioned keys as one flat mapping; unknown keys raise ConfigError."""
    flat: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key in _SECTION_CLASSES and isinstance(value, dict):
            for inner_key, inner_value in value.items():
                inner = str(inner_key).replace("-", "_")
                if _KEY_TO_SECTION.get(inner) != key:
                    raise ConfigError(_unknown_key_message(_shown(f"{key}.{inner}"), inner))
                flat[inner] = inner_value
        elif key in _KEY_TO_SECTION:
            flat[key] = value
        else:
            raise ConfigError(_unknown_key_message(_shown(raw_key), key))
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
    raise ConfigError(f"config key '{key}' must be {kind}, got {_shown(value)}")


_MAX_CONFIG_BYTES = 1_000_000  # a config holds a few dozen keys; a larger file is not one


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a dict of (flat or nested) keys."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass an existing YAML file to --config")
    size = path.stat().st_size
    if size > _MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path} is {size:,} bytes, more than the {_MAX_CONFIG_BYTES:,} a config may have: "
            "pass the YAML config file to --config"
        )
    try:
        text = path.read_bytes()  # bytes: PyYAML detects the encoding and reports a bad one as a YAMLError
    except OSError as error:
        raise ConfigError(f"could not read config file {path} ({error.strerror}): check its permissions") from None
    # Besides YAMLError, PyYAML's safe loader raises ValueError for values it recognises but cannot build
    # (the date 2020-02-30, an integer of more than 4300 digits), IndexError, KeyError or AttributeError
    # for values that do not fit an explicit tag (!!float "", !!bool x, !!timestamp x), and RecursionError
    # for collections nested a few hundred deep.
    try:
        values = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"config file {path} nests too deeply to be a config: fix the file") from None
    except (IndexError, KeyError, AttributeError):
        raise ConfigError(
            f"config file {path} has a value that does not fit its YAML tag (such as !!float or !!bool): fix the file"
        ) from None
    except (yaml.YAMLError, ValueError) as error:
        first_line = next((line for line in str(error).splitlines() if line.strip()), "syntax error")
        raise ConfigError(f"config file {path} is not valid YAML ({first_line.strip()}): fix the file") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values, got {type(values).__name__}")
    return values


def save_yaml(config: RunConfig, path: Path) -> None:
    write_text_atomically(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def write_text_atomically(path: Path, text: str) -> None:
    """Replace a small text file so that a crash leaves the old or the new version, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


# Generous ceilings: past them a run exhausts memory or never ends before it can say anything useful.
UPPER_LIMITS: dict[str, tuple[int, str]] = {  # key -> (largest value, a usual one)
    "image_size": (1024, "64"),
    "width": (4096, "64"),
    "z_dim": (65536, "100"),
    "batch_size": (65536, "64"),
    "steps": (10**9, "2000"),
    "epochs": (10**6, "25"),
    "d_steps": (1000, "1"),
    "g_steps": (1000, "1"),
    "num_classes": (100_000, "10"),
}
SEED_RANGE = (-(2**63), 2**63 - 1)  # what torch.Generator.manual_seed takes, with room for the seed offsets


def validate(config: RunConfig) -> None:
    """Reject values that cannot work, naming the value and the fix."""
    model, train = config.model, config.train
    for key in ("data", "data_root"):
        path = getattr(config.data, key)
        if path is not None and "\0" in path:
            raise ConfigError(f"{key} {_shown(path)} contains a NUL character, which no path can hold: fix the path")
    _choice("model", model.model, MODELS)
    _choice("loss", train.loss, LOSSES)
    _choice("order", train.order, ORDERS)
    _choice("d_loss_reduction", train.d_loss_reduction, D_LOSS_REDUCTIONS)
    _choice("device", train.device, DEVICES)
    _choice("on_nan", train.on_nan, ON_NAN)
    _choice("precision", train.precision, PRECISIONS)
    if model.d_norm is not None:
        _choice("d_norm", model.d_norm, D_NORMS)
    for part in train.diffaug_policy.split(","):
        _choice("diffaug_policy part", part.strip(), AUGMENTATIONS)
    if train.ema is not None and not 0 < train.ema < 1:
        raise ConfigError(f"ema is the decay of G's moving average and must lie in (0, 1), got {train.ema} "
                          "(e.g. 0.999)")
    if model.model == "toy" and (model.conditional or train.diffaug):
        what = "--conditional" if model.conditional else "--diffaug"
        raise ConfigError(f"{what} works on labelled images; the toy model learns unlabelled 2-D points: "
                          "use --model dcgan or mlp")
    if model.num_classes is not None:
        _at_least("num_classes", model.num_classes, 2)
    for key in ("batch_size", "d_steps", "g_steps", "log_every"):
        if getattr(train, key) is not None:
            _at_least(key, getattr(train, key), 1)
    for key in ("sample_every", "checkpoint_every", "keep_checkpoints", "max_rollbacks", "eval_every"):
        _at_least(key, getattr(train, key), 0)
    for key in ("image_size", "channels", "z_dim", "width"):
        value = getattr(model, key)
        if value is not None:
            _at_least(key, value, 1)
    if model.channels is not None and model.channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {_shown(model.channels)}")
    if train.steps is not None and train.epochs is not None:
        raise ConfigError("give either --steps or --epochs, not both")
    if train.steps is not None:
        _at_least("steps", train.steps, 1)
    if train.epochs is not None and not (train.epochs > 0 and math.isfinite(train.epochs)):
        raise ConfigError(f"epochs must be a positive number, got {train.epochs}")
    for key in ("lr_d", "lr_g"):
        value = getattr(train, key)
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{key} must be a positive number, got {value}")
    for key in ("beta1", "beta2"):
        value = getattr(train, key)
        if value is not None and not 0 <= value < 1:
            raise ConfigError(f"{key} must lie in [0, 1), got {value}")
    for key, (limit, usual) in UPPER_LIMITS.items():
        value = getattr(getattr(config, _KEY_TO_SECTION[key]), key)
        if value is not None and value > limit:
            raise ConfigError(
                f"{key} {_shown(value)} is above the limit of {limit:,}: use at most {limit:,} (e.g. {usual})"
            )
    if not SEED_RANGE[0] <= train.seed <= SEED_RANGE[1]:
        raise ConfigError(
            f"seed {_shown(train.seed)} does not fit in 64 bits: use a whole number from -2**63 to 2**63 - 1"
        )


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} {_shown(value)} is not one of {', '.join(allowed)}")


def _at_least(key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {_shown(value)}")


class _ShortRepr(reprlib.Repr):
    """repr() cut to a few elements and characters, so that a message about a YAML alias bomb
    ("billion laughs": a billion strings through shared references) or a huge number stays one short line."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 2, 60, 60, 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:  # repr() of more than 4300 digits raises ValueError
            digits = int((x.bit_length() - 1) * math.log10(2)) + 1
            digits += abs(x) >= 10**digits
            return f"{'-' if x < 0 else ''}<an integer of {digits} digits>"
        return super().repr_int(x, level)


_shown = _ShortRepr().repr
