"""A resume that changes training keys: the change takes effect, is logged, or is refused; config.yaml never lies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import ganforge
from ganforge.errors import ConfigError
from ganforge.runs.checkpoint import read_checkpoint
from ganforge.runs.integrity import state_checksum
from ganforge.runs.metrics_log import events, read_metrics, training_history


def saved_groups(run) -> dict[str, list[dict]]:
    """Each optimizer's param groups (lr, betas, ...) as the latest checkpoint holds them."""
    return read_checkpoint(run).state["optimizers"]


@pytest.fixture
def toy_run(tmp_path, tiny_toy):
    return ganforge.train(out=tmp_path / "run", steps=4, show_progress=False, **tiny_toy).run_dir


def test_a_new_learning_rate_and_betas_take_effect_and_are_logged(toy_run):
    saved = yaml.safe_load((toy_run / "config.yaml").read_text())["train"]
    ganforge.resume(toy_run, steps=8, lr_d=3e-3, beta1=0.9, show_progress=False)
    rows = training_history(read_metrics(toy_run))
    assert [row["lr_d"] for row in rows if row["step"] > 4] == [3e-3, 3e-3]
    assert {row["lr_g"] for row in rows} == {saved["lr_g"]}
    override = [event for event in events(read_metrics(toy_run)) if event["event"] == "resume_override"]
    assert override == [{"step": 4, "event": "resume_override", "lr_d": [saved["lr_d"], 3e-3],
                         "beta1": [saved["beta1"], 0.9]}]
    assert yaml.safe_load((toy_run / "config.yaml").read_text())["train"]["lr_d"] == 3e-3


def test_the_checkpoint_after_the_resume_holds_the_new_rate_and_betas(toy_run):
    ganforge.resume(toy_run, steps=6, lr_g=5e-4, beta2=0.9, show_progress=False)
    groups = saved_groups(toy_run)
    assert [(group["lr"], list(group["betas"])) for group in groups["generator"]] == [(5e-4, [0.5, 0.9])]
    assert [list(group["betas"]) for group in groups["discriminator"]] == [[0.5, 0.9]]
    assert groups["discriminator"][0]["lr"] == yaml.safe_load((toy_run / "config.yaml").read_text())["train"]["lr_d"]


def test_a_new_rate_under_a_schedule_is_the_new_base_of_the_schedule(tmp_path, tiny_toy):
    keys = {**tiny_toy, "lr_schedule": "linear", "lr_floor": 0.5, "log_every": 1}
    run = ganforge.train(out=tmp_path / "run", steps=4, show_progress=False, **keys).run_dir
    ganforge.resume(run, steps=8, lr_d=3e-3, show_progress=False)
    rows = {row["step"]: row for row in training_history(read_metrics(run))}
    # linear decay from 1 at step 1 to the floor 0.5 at step 8: the factor of step s is 0.5 + 0.5 * (8 - s) / 7
    for step in (5, 6, 7, 8):
        factor = 0.5 + 0.5 * (8 - step) / 7
        assert rows[step]["lr_d"] == pytest.approx(3e-3 * factor, rel=1e-4), step


def test_a_resume_that_only_trains_longer_logs_no_override(toy_run):
    ganforge.resume(toy_run, steps=6, show_progress=False)
    ganforge.resume(toy_run, steps=8, show_progress=False)
    assert events(read_metrics(toy_run)) == []


@pytest.mark.parametrize("key, value", [("seed", 7), ("preset", "auto")])
def test_keys_fixed_by_the_checkpoint_are_refused_on_resume(toy_run, key, value):
    before = (toy_run / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=f"{key} .* differs from the run's") as error:
        ganforge.resume(toy_run, steps=6, show_progress=False, **{key: value})
    assert "new --out" in str(error.value) and "\n" not in str(error.value)
    assert (toy_run / "config.yaml").read_text() == before


def forget_model_key(run: Path, key: str) -> None:
    """Make a run look saved before a model key existed: drop it from the checkpoint's state and config.yaml."""
    folder = read_checkpoint(run).path
    state = json.loads((folder / "state.json").read_text())
    del state["config"]["model"][key]
    state["checksums"]["state.json"] = state_checksum(state)
    (folder / "state.json").write_text(json.dumps(state, indent=1))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["model"][key]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert getattr(read_checkpoint(run).config.model, key) is None


def test_a_run_saved_before_latent_components_resumes_without_them(tmp_path):
    """ring8's preset turns components on for new runs; a run whose config has no such key trained without them."""
    keys = {"model": "toy", "data": "ring8", "width": 16, "batch_size": 32, "components": 1, "steps": 2,
            "checkpoint_every": 2, "tensorboard": False, "sample_every": 0}
    run = ganforge.train(out=tmp_path / "run", show_progress=False, **keys).run_dir
    forget_model_key(run, "components")

    ganforge.resume(run, steps=4, show_progress=False)
    resumed = read_checkpoint(run)
    assert resumed.step == 4 and resumed.config.model.components == 1
    assert "component_bias.bias.weight" not in resumed.generator


def test_a_run_saved_before_the_information_term_resumes_without_it(tmp_path):
    """grid25's preset turns --info-weight on for new runs; a run saved before the key existed had no D head."""
    keys = {"model": "toy", "data": "grid25", "width": 16, "batch_size": 32, "info_weight": 0.0, "steps": 2,
            "checkpoint_every": 2, "tensorboard": False, "sample_every": 0}
    run = ganforge.train(out=tmp_path / "run", show_progress=False, **keys).run_dir
    assert read_checkpoint(run).config.model.components == 25, "the preset's components, without the term"
    forget_model_key(run, "info_weight")

    ganforge.resume(run, steps=4, show_progress=False)
    resumed = read_checkpoint(run)
    assert resumed.step == 4 and resumed.config.model.info_weight == 0.0
    assert not any(key.startswith("component_classifier") for key in resumed.discriminator)
