"""The defaults the command-line help shows, computed from the schema and the presets so that they cannot drift.

:func:`default_text` gives the text of a key's ``[default: ...]``: a training preset per model
(``2000; toy: 3000``), an algorithm default with its loss presets (``0.5; wgan-gp: 0``), a model size per
family and image size (``dcgan 28x28: 50, mlp/dcgan: 100, toy: 2``), the field's own default (``50``, ``off``),
or, for keys the data or the environment decide, their line of :data:`~ganforge.config.schema.UNSET_MEANS`.
"""

from __future__ import annotations

from dataclasses import MISSING, fields

from ganforge.config.presets import (
    DATA_PRESETS,
    DEFAULT_ALGORITHM,
    DESCRIBE_CHANNELS,
    LOSS_PRESETS,
    MODEL_PRESETS,
    TRAINING_PRESETS,
)
from ganforge.config.resolve import default_d_norm
from ganforge.config.schema import KEY_TO_SECTION, SECTIONS, UNSET_MEANS, ModelConfig

DEFAULT_MODEL = ModelConfig.model  # the model the plain value of a per-model default belongs to


def default_text(key: str) -> str:
    """What ``[default: ...]`` shows for a config key, e.g. ``default_text("steps") == "2000; toy: 3000"``.

    A value tuned for a model on a data set (``DATA_PRESETS``, which ``preset: auto`` applies before every other
    preset) follows as ``dcgan on digits: 5000``.
    """
    if key not in KEY_TO_SECTION:
        raise KeyError(f"{key!r} is not a config key")
    tuned = [f"{model} on {data}: {format_value(values[key])}" for (model, data), values in DATA_PRESETS.items()
             if key in values]
    return "; ".join([_untuned_text(key), *tuned])


def _untuned_text(key: str) -> str:
    if any(key in table for tables in MODEL_PRESETS.values() for table in tables.values()):
        return _by_model_and_size(key)
    if key in DEFAULT_ALGORITHM or any(key in preset for preset in (*TRAINING_PRESETS.values(), *LOSS_PRESETS.values())):
        return _by_model_and_loss(key)
    if key == "d_norm":
        plain = ModelConfig()
        return (f"{default_d_norm(plain)}; {default_d_norm(plain, 'wgan-gp')} for wgan-gp; "
                f"{default_d_norm(ModelConfig(spectral_norm=True))} with --spectral-norm")
    if key in UNSET_MEANS:
        return UNSET_MEANS[key]
    default = _field_default(key)
    if default is None:
        raise KeyError(f"config key {key!r} defaults to None, which no preset fills: describe it in UNSET_MEANS")
    return format_value(default)


def loss_preset_text(loss: str) -> str:
    """The keys a loss presets, as flags: ``loss_preset_text("wgan-gp") == "--d-steps 5, --beta1 0, --beta2 0.9"``."""
    return ", ".join(f"--{key.replace('_', '-')} {format_value(value)}" for key, value in LOSS_PRESETS[loss].items())


def describe_channels_text() -> str:
    """The channels ``ganforge describe`` assumes, per image size: ``1 at 28x28, else 3``."""
    sized = [f"{channels} at {size}x{size}" for size, channels in DESCRIBE_CHANNELS.items() if size is not None]
    return ", ".join([*sized, f"else {DESCRIBE_CHANNELS[None]}"])


def format_value(value: object) -> str:
    """A default as the help writes it: on/off, 2e-4 for small rates, 0 for 0.0, the rest as Python prints it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        if abs(value) < 1e-2:
            mantissa, exponent = f"{value:e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:g}"
    return str(value)


def _by_model_and_loss(key: str) -> str:
    """The default model's value, then each model's and each loss's that differs (a loss's wins): ``1; wgan-gp: 5``."""
    per_model = {model: {**preset, **DEFAULT_ALGORITHM}.get(key) for model, preset in TRAINING_PRESETS.items()}
    plain = per_model[DEFAULT_MODEL]
    if plain is None:
        raise KeyError(f"config key {key!r} has a preset for some models or losses but none for {DEFAULT_MODEL}")
    parts = [format_value(plain)]
    parts += [f"{model}: {format_value(value)}" for model, value in per_model.items() if value != plain]
    parts += [f"{loss}: {format_value(preset[key])}" for loss, preset in LOSS_PRESETS.items()
              if key in preset and preset[key] != plain]
    return "; ".join(parts)


def _by_model_and_size(key: str) -> str:
    """Sizes with a value of their own first, then each family's value: ``dcgan 28x28: 50, mlp/dcgan: 100, toy: 2``."""
    sized = [f"{model} {size}x{size}: {table[size][key]}"
             for model, table in MODEL_PRESETS.items() for size in table if size is not None and key in table[size]]
    families: dict[int, list[str]] = {}
    for model, table in MODEL_PRESETS.items():
        if key in table[None]:  # a key of one family only (the toy's depth) shows that family alone
            families.setdefault(table[None][key], []).append(model)
    return ", ".join([*sized, *(f"{'/'.join(models)}: {value}" for value, models in families.items())])


def _field_default(key: str) -> object:
    field = next(f for f in fields(SECTIONS[KEY_TO_SECTION[key]]) if f.name == key)
    return field.default_factory() if field.default is MISSING else field.default  # type: ignore[misc]
