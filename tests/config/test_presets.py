"""Presets: a data set's tuned values fill only what the user left unset; ``preset: lecture`` skips them."""

from __future__ import annotations

import pytest
import torch

from ganforge.config import presets
from ganforge.config.resolve import resolve_config, resolve_model
from ganforge.config.schema import DataConfig, ModelConfig, RunConfig, apply_overrides
from ganforge.data import load_data

TUNED = {("toy", "ring8"): {"depth": 2, "width": 64, "lr_schedule": "cosine", "lr_floor": 0.1, "r1": 0.5,
                            "steps": 123}}


@pytest.fixture
def tuned(monkeypatch):
    monkeypatch.setattr(presets, "DATA_PRESETS", TUNED)
    monkeypatch.setattr("ganforge.config.resolve.DATA_PRESETS", TUNED)


def resolved(**keys) -> RunConfig:
    config = apply_overrides(RunConfig(), {"model": "toy", "data": "ring8", **keys})
    return resolve_config(config, load_data(DataConfig("ring8"), None, None, 0, torch.device("cpu")))


def test_auto_fills_the_unset_keys_from_the_data_preset(tuned):
    config = resolved()
    assert (config.model.depth, config.model.width, config.train.steps) == (2, 64, 123)
    assert (config.train.lr_schedule, config.train.lr_floor, config.train.r1, config.train.r2) == ("cosine", 0.1, 0.5, 0.0)
    assert config.train.preset == "auto", "a new run records the preset it took"


def test_keys_the_user_sets_win_over_the_preset(tuned):
    config = resolved(depth=5, lr_schedule="linear", r1=0.0, steps=7)
    assert (config.model.depth, config.train.lr_schedule, config.train.r1, config.train.steps) == (5, "linear", 0.0, 7)
    assert config.model.width == 64 and config.train.lr_floor == 0.1


def test_lecture_skips_the_data_preset(tuned):
    config = resolved(preset="lecture")
    assert (config.model.depth, config.model.width) == (3, 128), "the toy family's own sizes"
    assert (config.train.steps, config.train.batch_size, config.train.lr_d) == (3000, 512, 1e-3)
    assert (config.train.lr_schedule, config.train.r1, config.train.r2, config.model.pack) == ("constant", 0.0, 0.0, 1)


def test_epochs_keep_the_preset_from_setting_steps(tuned):
    config = apply_overrides(RunConfig(), {"model": "toy", "data": "ring8", "epochs": 2.0})
    from ganforge.config.resolve import with_data_preset
    assert with_data_preset(config).train.steps is None


def test_every_preset_names_real_keys_and_valid_values():
    from ganforge.config.schema import KEY_TO_SECTION
    from ganforge.config.validate import validate
    for (model, data), values in presets.DATA_PRESETS.items():
        assert set(values) <= set(KEY_TO_SECTION), (model, data)
        validate(apply_overrides(RunConfig(), {"model": model, "data": data, **values}))


def test_a_model_config_saved_before_packing_and_depth_builds_as_before():
    old = ModelConfig(model="toy", width=16)  # an old checkpoint's config has neither key
    assert (resolve_model(old).depth, resolve_model(old).pack) == (3, 1)


def test_a_preset_key_the_users_values_must_fit_is_checked_after_resolution(tmp_path):
    """ring8's preset packs 2 samples: a batch the user gives must split into packs (one line, nothing written)."""
    import ganforge
    from ganforge.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size 33 does not split into packs of 2: use a multiple of 2"):
        ganforge.train(out=tmp_path / "run", model="toy", data="ring8", batch_size=33, steps=1, show_progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()
