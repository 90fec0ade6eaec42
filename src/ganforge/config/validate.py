"""Checks of a config's values: what cannot work is refused with the value and the fix."""

from __future__ import annotations

import math

from ganforge.config.schema import (
    AUGMENTATIONS,
    D_LOSS_REDUCTIONS,
    D_NORMS,
    DEVICES,
    KEY_TO_SECTION,
    LOSSES,
    LR_SCHEDULES,
    MODELS,
    ON_NAN,
    ORDERS,
    PRECISIONS,
    PRESETS,
    RunConfig,
)
from ganforge.errors import ConfigError, shown

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
    for key in ("data", "data_as_given", "data_root"):
        path = getattr(config.data, key)
        if path is not None and "\0" in path:
            raise ConfigError(f"{key} {shown(path)} contains a NUL character, which no path can hold: fix the path")
    _choice("model", model.model, MODELS)
    if train.loss is not None:
        _choice("loss", train.loss, LOSSES)
    _choice("order", train.order, ORDERS)
    if train.reuse_fake and train.order != "d-first":
        raise ConfigError("--reuse-fake hands D's last fake batch to the G update that follows it, so it needs "
                          "--order d-first")
    _choice("d_loss_reduction", train.d_loss_reduction, D_LOSS_REDUCTIONS)
    _choice("device", train.device, DEVICES)
    _choice("on_nan", train.on_nan, ON_NAN)
    if train.precision is not None:
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
    _check_quality_options(config)
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
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {shown(model.channels)}")
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
        value = getattr(getattr(config, KEY_TO_SECTION[key]), key)
        if value is not None and value > limit:
            raise ConfigError(
                f"{key} {shown(value)} is above the limit of {limit:,}: use at most {limit:,} (e.g. {usual})"
            )
    if not SEED_RANGE[0] <= train.seed <= SEED_RANGE[1]:
        raise ConfigError(
            f"seed {shown(train.seed)} does not fit in 64 bits: use a whole number from -2**63 to 2**63 - 1"
        )


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} {shown(value)} is not one of {', '.join(allowed)}")


def _at_least(key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {shown(value)}")



MAX_COMPONENTS = 65_536  # the toy's latent components: a bias row each, far more than any data set's clusters


def _check_components(config: RunConfig) -> None:
    """The toy's discrete latent: a whole number of components, and a coordinate of z left for the points."""
    model = config.model
    if model.components is None:
        return
    _at_least("components", model.components, 1)
    if model.components > MAX_COMPONENTS:
        raise ConfigError(f"components {model.components} is more than {MAX_COMPONENTS:,}; use about as many as the "
                          "data has separate clusters, e.g. 8 for ring8")
    if model.components > 1 and model.model != "toy":
        raise ConfigError(f"--components {model.components} is a latent for the toy's 2-D clusters; "
                          f"--model {model.model} takes --components 1")
    if model.components > 1 and model.z_dim is not None and model.z_dim < 2:
        raise ConfigError(f"--components {model.components} reads z's last coordinate, so z_dim {model.z_dim} leaves "
                          "none for the points: use --z-dim 3 (two for the points, one for the component)")
    weight = model.info_weight
    if weight is not None and not (weight >= 0 and math.isfinite(weight)):
        raise ConfigError(f"info_weight is InfoGAN's lambda and must be 0 (off) or positive, got {shown(weight)}: "
                          "e.g. 0.3")
    if weight and model.components == 1:  # None until the presets have had their say
        raise ConfigError(f"--info-weight {weight} trains D to tell G's latent components apart, and this run has "
                          "none: add --components K (toy), or use --info-weight 0")


def _check_quality_options(config: RunConfig) -> None:
    """Packing, the zero-centred penalties, the learning-rate schedule, the preset and the toy's depth."""
    model, train = config.model, config.train
    if train.lr_schedule is not None:
        _choice("lr_schedule", train.lr_schedule, LR_SCHEDULES)
    if train.preset is not None:
        _choice("preset", train.preset, PRESETS)
    if model.pack is not None:
        _at_least("pack", model.pack, 1)
    _check_components(config)
    if train.penalty_every is not None:
        _at_least("penalty_every", train.penalty_every, 1)
    if (model.pack or 1) > 1 and model.conditional:
        raise ConfigError(f"--pack {model.pack} judges several samples at once, which a projection discriminator "
                          "for one class each cannot: use --pack 1 with --conditional")
    if (model.pack or 1) > 1 and train.batch_size is not None and train.batch_size % model.pack:
        raise ConfigError(f"batch_size {train.batch_size} does not split into packs of {model.pack}: "
                          f"use a multiple of {model.pack}, e.g. {train.batch_size - train.batch_size % model.pack or model.pack}")
    for key in ("r1", "r2"):
        value = getattr(train, key)
        if value is not None and not (value >= 0 and math.isfinite(value)):
            raise ConfigError(f"{key} is the weight gamma of a gradient penalty and must be 0 (off) or positive, "
                              f"got {value}")
    weight = train.feature_matching
    if weight is not None and not (weight >= 0 and math.isfinite(weight)):
        raise ConfigError(f"feature_matching is the weight lambda of G's feature-matching term and must be 0 (off) "
                          f"or positive, got {weight}")
    if train.lr_floor is not None and not 0 <= train.lr_floor <= 1:
        raise ConfigError(f"lr_floor is the fraction of the learning rates a schedule ends at and must lie in [0, 1], "
                          f"got {train.lr_floor}")
    if model.depth is not None:
        if model.model != "toy":
            raise ConfigError(f"--depth sets the hidden layers of the toy networks; {model.model}'s layers follow "
                              "its table: leave --depth unset")
        _at_least("depth", model.depth, 1)


MAX_THREADS = 1024  # more threads than any machine has cores: a typo, not a setting


def parse_threads(value: str | int | None) -> int | None:
    """``--threads``: a positive count, or ``auto``/None (None = auto)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        count = 0 if isinstance(value, (bool, float)) else int(value)
    except (TypeError, ValueError):
        count = 0
    if not 1 <= count <= MAX_THREADS:
        raise ConfigError(f"--threads must be 'auto' or a number of threads from 1 to {MAX_THREADS}, got {shown(value)}")
    return count
