"""Tests for ganforge.config: keys and their coercion, YAML files, validation, and the defaults the help shows.

The help's defaults (:func:`ganforge.config.help.default_text`) are checked against the values resolution
really fills in, per model, image size and loss, so a preset changed without its help fails here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields

import pytest

from ganforge.config.help import default_text, describe_channels_text, format_value, loss_preset_text
from ganforge.config.io import load_yaml
from ganforge.config.presets import (
    DATA_PRESETS,
    DCGAN_SIZES,
    DEFAULT_ALGORITHM,
    LOSS_PRESETS,
    MODEL_PRESETS,
    TRAINING_PRESETS,
    describe_channels,
)
from ganforge.config.resolve import resolve_config, resolve_model, with_data_preset, with_training_preset
from ganforge.config.schema import (
    KEY_TO_SECTION,
    LOSSES,
    MODELS,
    SECTIONS,
    UNSET_MEANS,
    ModelConfig,
    RunConfig,
    apply_overrides,
    config_keys,
    flatten_keys,
)
from ganforge.config.validate import validate
from ganforge.errors import ConfigError

IMAGE_SIZES = {"mlp": (28, 32, 64), "dcgan": DCGAN_SIZES, "toy": (None,)}
MODEL_SIZE_KEYS = sorted({key for tables in MODEL_PRESETS.values() for table in tables.values() for key in table})
TRAINING_KEYS = sorted({*DEFAULT_ALGORITHM, *(key for preset in (*TRAINING_PRESETS.values(), *LOSS_PRESETS.values())
                                               for key in preset)} - {"loss"})  # the loss is what these vary


def field_default(key: str) -> object:
    return next(f.default for f in fields(SECTIONS[KEY_TO_SECTION[key]]) if f.name == key)


def same(shown: str | None, value: object) -> bool:
    """Whether the help's text of a value is that value: "2e-4" is 0.0002, "constant" is "constant"."""
    if shown is None or value is None:
        return shown is None and value is None
    return shown == value if isinstance(value, str) else float(shown) == value


def shown_per_label(text: str, separator: str) -> tuple[str | None, dict[str, str]]:
    """A shown default split into its plain value and its labelled ones: "2000; toy: 3000" -> ("2000", {"toy": "3000"})."""
    plain = None
    labelled = {}
    for part in text.split(separator):
        label, colon, value = part.rpartition(": ")
        if colon:
            labelled[label] = value
        else:
            plain = value
    return plain, labelled


@dataclasses.dataclass
class FakeData:
    """What resolution sees of a data set (config.resolve.DataFacts): 28x28 grayscale images without labels."""

    kind: str = "images"
    description: str = "the fake digits"
    labels: object = None
    sample_shape: tuple[int, ...] = (1, 28, 28)

    def batches_per_epoch(self, batch_size: int) -> int | None:
        return 10


# --- the defaults the help shows ---------------------------------------------------------------------


def test_every_config_key_has_a_default_text():
    for key in config_keys():
        assert default_text(key), key


def check_training_defaults(key: str) -> None:
    """The help's value of ``key`` for every model, loss and data set with a tuned preset is the resolved one."""
    plain, labelled = shown_per_label(default_text(key), "; ")
    tuned = {f"{model} on {data}" for model, data in DATA_PRESETS}
    assert set(labelled) <= set(MODELS) | set(LOSSES) | tuned, labelled
    for model in MODELS:
        for data in ["ring8" if model == "toy" else "digits", *(data for m, data in DATA_PRESETS if m == model)]:
            for loss in LOSSES:
                config = apply_overrides(RunConfig(), {"model": model, "data": data, "loss": loss})
                resolved = getattr(with_training_preset(with_data_preset(config)).train, key)
                # a data set's tuned value wins over a loss's preset, which wins over the model's
                shown = labelled.get(f"{model} on {data}", labelled.get(loss, labelled.get(model, plain)))
                assert same(shown, resolved), (key, model, data, loss, default_text(key), resolved)


@pytest.mark.parametrize("key", TRAINING_KEYS)
def test_shown_training_defaults_are_the_resolved_values_for_every_model_and_loss(key):
    check_training_defaults(key)


def test_the_shown_default_loss_is_the_resolved_one_for_every_model_and_tuned_data():
    plain, labelled = shown_per_label(default_text("loss"), "; ")
    for model in MODELS:
        for data in ["ring8" if model == "toy" else "digits", *(data for m, data in DATA_PRESETS if m == model)]:
            config = apply_overrides(RunConfig(), {"model": model, "data": data})
            resolved = with_training_preset(with_data_preset(config)).train.loss
            assert same(labelled.get(f"{model} on {data}", plain), resolved), (model, data, resolved)


@pytest.fixture
def untuned(monkeypatch):
    """No data set's tuned preset: the help shows the model and loss presets alone."""
    for key in list(DATA_PRESETS):
        monkeypatch.delitem(DATA_PRESETS, key)


def test_a_data_sets_tuned_preset_shows_in_the_help_as_resolution_applies_it(untuned, monkeypatch):
    monkeypatch.setitem(DATA_PRESETS, ("dcgan", "digits"), {"steps": 5000, "beta1": 0.0, "lr_d": 1e-4})
    assert default_text("steps") == "2000; toy: 3000; dcgan on digits: 5000"
    for key in ("steps", "beta1", "lr_d", "batch_size"):
        check_training_defaults(key)


@pytest.mark.parametrize("key", MODEL_SIZE_KEYS)
def test_shown_model_sizes_are_the_resolved_values_for_every_model_and_image_size(key):
    untuned, *tuned = default_text(key).split("; ")  # then "dcgan on digits: 64" for a data set's tuned value
    assert len(tuned) == sum(key in values for values in DATA_PRESETS.values()), default_text(key)
    _, labelled = shown_per_label(untuned, ", ")
    for model in MODELS:
        for size in IMAGE_SIZES[model]:
            resolved = getattr(resolve_model(ModelConfig(model=model, image_size=size, channels=1)), key)
            family = next((value for label, value in labelled.items() if model in label.split("/")), None)
            shown = labelled.get(f"{model} {size}x{size}", family)
            assert (None if shown is None else int(shown)) == resolved, (key, model, size, default_text(key))


def test_shown_d_norm_is_what_resolution_picks():
    text = default_text("d_norm")
    for keys, label in [({}, None), ({"loss": "wgan-gp"}, "for wgan-gp"), ({"spectral_norm": True}, "with --spectral-norm")]:
        resolved = resolve_config(apply_overrides(RunConfig(), keys), FakeData()).model.d_norm
        part = next(part for part in text.split("; ") if (label is None and " " not in part) or part.endswith(f" {label}"))
        assert part.split(" ")[0] == resolved, (keys, text)


def test_plain_defaults_are_the_field_defaults():
    plain_keys = [key for key in config_keys()
                  if key not in TRAINING_KEYS and key not in MODEL_SIZE_KEYS and field_default(key) is not None]
    assert {"model", "data", "seed", "log_every", "diffaug", "compile"} <= set(plain_keys)
    defaults = RunConfig()
    for key in plain_keys:
        value = getattr(getattr(defaults, KEY_TO_SECTION[key]), key)
        shown = default_text(key)
        if isinstance(value, bool):
            assert shown == ("on" if value else "off"), key
        else:
            assert same(shown, value), key


def test_described_defaults_are_keys_left_unset(untuned):
    """The descriptions of UNSET_MEANS are for keys whose None something else decides, and no model preset fills."""
    for key in UNSET_MEANS:
        assert key in KEY_TO_SECTION and field_default(key) is None, key
        assert key not in TRAINING_KEYS and key not in MODEL_SIZE_KEYS, key
        assert default_text(key) == UNSET_MEANS[key]


def test_a_changed_preset_changes_the_shown_default(untuned, monkeypatch):
    monkeypatch.setitem(TRAINING_PRESETS, "toy", {**TRAINING_PRESETS["toy"], "steps": 1234})
    monkeypatch.setitem(LOSS_PRESETS, "wgan-gp", {**LOSS_PRESETS["wgan-gp"], "d_steps": 7})
    assert default_text("steps").endswith("toy: 1234")
    assert default_text("d_steps").endswith("wgan-gp: 7")


def test_the_stacked_digits_preset_widens_the_network_unless_the_user_or_the_lecture_preset_says_otherwise():
    def width(**keys) -> int:
        config = apply_overrides(RunConfig(), {"model": "dcgan", "data": "stacked-digits", **keys})
        return resolve_model(dataclasses.replace(with_data_preset(config).model, image_size=28, channels=3)).width

    assert width() == 48
    assert width(width=32) == 32
    assert width(preset="lecture") == 32


def test_the_tuned_presets_follow_each_default_they_change():
    def parts(key: str) -> tuple[str, set[str]]:
        untuned, *tuned = default_text(key).split("; ")
        return untuned, set(tuned)

    assert parts("steps") == ("2000", {"toy: 3000", "toy on ring8: 9000", "toy on grid25: 9000",
                                       "dcgan on stacked-digits: 16000"})
    assert parts("pack") == ("1", {"toy on ring8: 2"})
    assert parts("components") == ("1", {"toy on ring8: 8", "toy on grid25: 25"})
    assert parts("z_dim") == ("dcgan 28x28: 50, mlp/dcgan: 100, toy: 2", {"toy on ring8: 3", "toy on grid25: 3"})
    assert parts("width") == ("dcgan 28x28: 32, mlp: 256, dcgan: 64, toy: 128", {"dcgan on stacked-digits: 48"})
    assert parts("ema") == ("off", {"toy on ring8: 0.999", "toy on grid25: 0.999", "dcgan on stacked-digits: 0.999"})
    assert parts("loss") == ("nonsaturating", {"dcgan on digits: rpgan", "dcgan on stacked-digits: rpgan"})
    assert parts("r1") == ("0", {"dcgan on digits: 0.1", "dcgan on stacked-digits: 0.1"})
    assert parts("lr_d") == parts("lr_g") == ("2e-4", {"toy: 1e-3", "dcgan on stacked-digits: 8e-4"})


def test_the_shown_texts_of_the_usual_defaults(untuned):
    assert default_text("steps") == "2000; toy: 3000"
    assert default_text("lr_d") == "2e-4; toy: 1e-3"
    assert default_text("beta1") == "0.5; wgan-gp: 0"
    assert default_text("z_dim") == "dcgan 28x28: 50, mlp/dcgan: 100, toy: 2"
    assert default_text("d_norm") == "batch; layer for wgan-gp; none with --spectral-norm"
    assert loss_preset_text("wgan-gp") == "--d-steps 5, --beta1 0, --beta2 0.9"
    assert describe_channels_text() == "1 at 28x28, else 3"
    assert (describe_channels(28), describe_channels(64)) == (1, 3)


@pytest.mark.parametrize(("value", "text"), [(True, "on"), (False, "off"), (0.0, "0"), (2e-4, "2e-4"), (1.5e-3, "1.5e-3"),
                                             (0.999, "0.999"), (2000, "2000"), ("d-first", "d-first")])
def test_format_value(value, text):
    assert format_value(value) == text
    if isinstance(value, float):
        assert float(text) == value


def test_unknown_key_has_no_default_text():
    with pytest.raises(KeyError, match="los"):
        default_text("los")


# --- keys: flat or in sections, coercion, unknown keys --------------------------------------------------


def test_flat_and_sectioned_keys_with_dashes_are_set_and_none_is_ignored():
    config = apply_overrides(RunConfig(), {"model": "toy", "train": {"lr-d": 0.005}, "batch-size": 16, "seed": None})
    assert config.model.model == "toy" and config.train.lr_d == 0.005 and config.train.batch_size == 16
    assert config.train.seed == 0, "None is a flag not given"
    assert RunConfig().model.model == "dcgan", "the base config is not changed"


def test_unknown_config_key_names_it_and_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown config key 'los' \(did you mean 'loss'\?\)"):
        flatten_keys({"model": "toy", "data": "ring8", "los": "minimax"})


def test_unknown_key_in_a_config_section_names_it():
    with pytest.raises(ConfigError) as error:
        flatten_keys({"train": {"los": "minimax"}})
    assert "train.los" in str(error.value) and "did you mean 'loss'" in str(error.value)


def test_a_key_in_the_wrong_section_is_unknown():
    with pytest.raises(ConfigError, match="model.loss"):
        flatten_keys({"model": {"loss": "minimax"}})


def test_an_unknown_key_without_a_close_one_lists_the_known_keys():
    with pytest.raises(ConfigError, match="known keys: .*batch_size"):
        apply_overrides(RunConfig(), {"zzzzzz": 1})


@pytest.mark.parametrize(("key", "value", "kind"), [("steps", 1.5, "an integer"), ("steps", True, "an integer"),
                                                    ("lr_d", "fast", "a number"), ("diffaug", "yes", "true or false"),
                                                    ("loss", 3, "a string")])
def test_values_of_the_wrong_type_are_refused(key, value, kind):
    with pytest.raises(ConfigError, match=f"config key '{key}' must be {kind}"):
        apply_overrides(RunConfig(), {key: value})


def test_whole_numbers_are_coerced():
    config = apply_overrides(RunConfig(), {"steps": 10.0, "lr_d": 1, "data": ".", "ema": 0.5})
    assert config.train.steps == 10 and isinstance(config.train.steps, int)
    assert config.train.lr_d == 1.0 and isinstance(config.train.lr_d, float)


# --- YAML and validation ----------------------------------------------------------------------------------


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_yaml(tmp_path / "nope.yaml")


def test_config_file_of_sections_and_flat_keys_is_read(tmp_path):
    (tmp_path / "run.yaml").write_text("model: toy\ntrain:\n  loss: minimax\n  steps: 50\n")
    config = apply_overrides(RunConfig(), load_yaml(tmp_path / "run.yaml"))
    assert (config.model.model, config.train.loss, config.train.steps) == ("toy", "minimax", 50)


def test_a_config_file_that_is_not_a_mapping_is_an_error(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(tmp_path / "list.yaml")


@pytest.mark.parametrize(("keys", "fragment"), [({"batch_size": 0}, "batch_size must be at least 1"),
                                                ({"steps": 1, "epochs": 1}, "--steps or --epochs"),
                                                ({"channels": 2}, "channels must be 1"),
                                                ({"loss": "nope"}, "loss 'nope' is not one of")])
def test_validate_refuses_values_that_cannot_work(keys, fragment):
    with pytest.raises(ConfigError, match=fragment):
        validate(apply_overrides(RunConfig(), keys))


def test_the_default_config_is_valid():
    validate(RunConfig())
