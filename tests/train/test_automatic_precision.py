"""``--precision auto``: bf16 where the device computes it natively, fp32 elsewhere, decided once and saved."""

from __future__ import annotations

import pytest
import torch

import ganforge
from conftest import TINY_TOY
from ganforge.config.resolve import with_data_preset, with_training_preset
from ganforge.config.schema import RunConfig, apply_overrides
from ganforge.runs.checkpoint import read_checkpoint
from ganforge.train import placement


@pytest.mark.parametrize(("support", "chosen"), [(True, "bf16"), (False, "fp32"), (None, "fp32")])
def test_auto_takes_bf16_only_on_a_cpu_known_to_compute_it_natively(monkeypatch, support, chosen):
    monkeypatch.setattr(placement, "cpu_bf16_support", lambda: support)
    assert placement.automatic_precision(torch.device("cpu")) == chosen


def test_an_unknown_cpu_is_not_warned_about_but_does_not_get_bf16_unasked(monkeypatch):
    monkeypatch.setattr(placement, "cpu_bf16_support", lambda: None)
    assert placement.cpu_has_native_bf16() and placement.automatic_precision(torch.device("cpu")) == "fp32"


@pytest.mark.parametrize(("support", "saved"), [(True, "bf16"), (False, "fp32")])
def test_a_run_saves_what_auto_chose_and_trains_in_it(tmp_path, monkeypatch, support, saved):
    monkeypatch.setattr(placement, "cpu_bf16_support", lambda: support)
    result = ganforge.train(out=tmp_path / "run", steps=2, precision="auto", show_progress=False, **TINY_TOY)
    assert read_checkpoint(result.run_dir).config.train.precision == saved
    assert f"precision: {saved}" in (result.run_dir / "config.yaml").read_text()


def test_the_stacked_digits_preset_asks_for_auto_and_other_runs_stay_in_fp32(tmp_path):
    stacked = apply_overrides(RunConfig(), {"model": "dcgan", "data": "stacked-digits"})
    assert with_training_preset(with_data_preset(stacked)).train.precision == "auto"
    lecture = apply_overrides(stacked, {"preset": "lecture"})
    assert with_training_preset(with_data_preset(lecture)).train.precision == "fp32"
    result = ganforge.train(out=tmp_path / "toy", steps=1, show_progress=False, **TINY_TOY)
    assert read_checkpoint(result.run_dir).config.train.precision == "fp32"
