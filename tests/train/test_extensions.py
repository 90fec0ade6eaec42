"""Training beyond the seed losses: each loss trains, the EMA rule, resume exactness with every option,
and a conditional generator that makes the class it is asked for."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

import ganforge
from conftest import TINY_DCGAN, TINY_TOY
from ganforge import cli
from ganforge.config.resolve import resolve_config
from ganforge.config.schema import RunConfig, apply_overrides
from ganforge.data import load_data
from ganforge.errors import ConfigError, GanforgeError
from ganforge.runs.checkpoint import read_checkpoint
from ganforge.train.step import train_step
from ganforge.train.trainer import Trainer

EVERYTHING = {**TINY_DCGAN, "conditional": True, "spectral_norm": True, "ema": 0.9, "diffaug": True, "loss": "hinge"}


@pytest.mark.parametrize("loss", ["lsgan", "hinge", "wgan-gp"])
def test_each_new_loss_trains_with_finite_statistics(tmp_path, tiny_dcgan, loss):
    result = ganforge.train(out=tmp_path / loss, steps=4, loss=loss, show_progress=False, **tiny_dcgan)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(row["d_loss"])) for row in rows)
    assert ("gradient_penalty" in rows[-1]) == (loss == "wgan-gp")
    saved = read_checkpoint(result.run_dir).config
    assert saved.train.d_steps == (5 if loss == "wgan-gp" else 1)
    assert saved.model.d_norm == ("layer" if loss == "wgan-gp" else "batch")


def test_wgan_gp_critic_is_updated_five_times_per_generator_update(tmp_path, tiny_toy, monkeypatch):
    counts = {"d": 0, "g": 0}
    original_step = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        counts["d" if self is trainers[0].opt_d else "g"] += 1
        return original_step(self, *args, **kwargs)

    trainers: list[Trainer] = []
    original_init = Trainer.__init__

    def remember(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        trainers.append(self)

    monkeypatch.setattr(Trainer, "__init__", remember)
    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    ganforge.train(out=tmp_path / "run", steps=3, loss="wgan-gp", show_progress=False, **tiny_toy)
    assert counts == {"d": 15, "g": 3}
    assert trainers[0].opt_d.param_groups[0]["betas"] == (0.0, 0.9)


def test_ema_follows_its_update_rule(tiny_toy):
    config = apply_overrides(RunConfig(), {**tiny_toy, "ema": 0.9, "steps": 12})
    device = torch.device("cpu")
    data = load_data(config.data, None, None, 0, device)
    trainer = Trainer(resolve_config(config, data), data, device)
    expected = None
    for updates in range(12):
        train_step(trainer)
        weights = [p.detach().clone() for p in trainer.generator.parameters()]
        # the first update copies G; the next ones are ema <- d ema + (1 - d) theta, d = min(0.9, (1+t)/(10+t))
        decay = min(0.9, (1 + updates) / (10 + updates))
        expected = weights if expected is None else [decay * e + (1 - decay) * w for e, w in zip(expected, weights)]
    for average, value in zip(trainer.generator_ema.module.parameters(), expected):
        assert torch.allclose(average, value, atol=1e-6)
    assert not all(torch.equal(a, p) for a, p in zip(trainer.generator_ema.module.parameters(),
                                                      trainer.generator.parameters()))
    assert trainer.sampling_generator is trainer.generator_ema.module


def test_samples_of_an_ema_run_come_from_the_average(tmp_path, tiny_dcgan):
    result = ganforge.train(out=tmp_path / "run", steps=3, ema=0.5, show_progress=False, **tiny_dcgan)
    checkpoint = read_checkpoint(result.run_dir)
    average = checkpoint.section("generator_ema")
    loaded = ganforge.load(result.run_dir, device="cpu").generator.state_dict()
    key = next(k for k in checkpoint.generator if k.endswith("weight"))
    assert torch.equal(loaded[key], average[key]) and not torch.equal(loaded[key], checkpoint.generator[key])


# packing, R1 and R2 (lazy), the relativistic loss, a decaying schedule, feature matching, a deeper toy
QUALITY_OPTIONS = [
    {**TINY_DCGAN, "loss": "rpgan", "r1": 1.0, "r2": 1.0, "penalty_every": 2, "pack": 2, "lr_schedule": "cosine",
     "lr_floor": 0.1, "feature_matching": 10.0},
    {**TINY_TOY, "pack": 4, "depth": 2, "r1": 0.5, "lr_schedule": "linear", "reuse_fake": True, "components": 4,
     "z_dim": 3, "info_weight": 0.5},
]


@pytest.mark.parametrize("keys", [EVERYTHING, {**TINY_DCGAN, "loss": "wgan-gp", "diffaug": True}, *QUALITY_OPTIONS],
                         ids=["conditional-sn-ema-diffaug-hinge", "wgan-gp-diffaug",
                              "rpgan-r1-r2-pack-cosine-feature-matching",
                              "toy-pack-depth-r1-linear-reuse-fake-components-info"])
def test_a_resumed_run_equals_an_uninterrupted_one_with_every_option(tmp_path, keys):
    """Stopped after step 2 of 4 (its last checkpoint deleted, as a crash would leave it) and resumed, a run
    ends with the same weights, optimizer state and random streams as one that never stopped."""
    straight = ganforge.train(out=tmp_path / "straight", steps=4, show_progress=False, **keys)
    ganforge.train(out=tmp_path / "split", steps=4, show_progress=False, **{**keys, "checkpoint_every": 2})
    shutil.rmtree(tmp_path / "split" / "checkpoints" / "step_0000004")
    resumed = ganforge.resume(tmp_path / "split", steps=4, show_progress=False)
    a, b = read_checkpoint(straight.run_dir), read_checkpoint(resumed.run_dir)
    for name in ("generator", "discriminator", "training"):
        first, second = getattr(a, name), getattr(b, name)
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), name


def test_conditional_needs_labelled_data(tmp_path, tiny_toy):
    with pytest.raises(ConfigError, match="--conditional works on labelled images"):
        ganforge.train(out=tmp_path / "toy", steps=2, conditional=True, show_progress=False, **tiny_toy)
    folder = tmp_path / "images"
    folder.mkdir()
    from PIL import Image
    for index in range(4):
        Image.new("L", (28, 28), color=index * 40).save(folder / f"{index}.png")
    with pytest.raises(ConfigError, match="needs class labels"):
        ganforge.train(out=tmp_path / "folder", steps=2, conditional=True, show_progress=False,
                       **{**TINY_DCGAN, "data": str(folder), "batch_size": 2})


@pytest.mark.slow
def test_conditional_dcgan_generates_the_requested_digit(tmp_path, digit_classifier):
    run = tmp_path / "conditional"
    ganforge.train(out=run, model="dcgan", data="digits", conditional=True, steps=200, width=16, batch_size=32,
                   lr_d=1e-3, lr_g=1e-3, log_every=100, sample_every=0, checkpoint_every=0, tensorboard=False,
                   show_progress=False)
    generator = ganforge.load(run, device="cpu")
    assert generator.num_classes == 10
    accuracy = sum(float((digit_classifier.predict(generator.sample(50, seed=1, class_index=digit)) == digit)
                         .float().mean()) for digit in range(10)) / 10
    assert accuracy > 0.6  # chance is 0.1
    assert (digit_classifier.predict(generator.sample(20, seed=2)) == torch.arange(20) % 10).float().mean() > 0.6


def test_cli_sample_class(tmp_path):
    run = tmp_path / "run"
    ganforge.train(out=run, steps=2, conditional=True, show_progress=False, **TINY_DCGAN)
    result = CliRunner().invoke(cli.app, ["sample", str(run), "-n", "6", "--class", "3", "--out", str(tmp_path / "s.npy")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.npy").is_file()
    with pytest.raises(GanforgeError, match="class 12 does not exist: this generator makes classes 0 to 9"):
        ganforge.load(run).sample(4, class_index=12)
    plain = tmp_path / "plain"
    ganforge.train(out=plain, steps=2, show_progress=False, **TINY_DCGAN)
    with pytest.raises(GanforgeError, match="not class-conditional"):
        ganforge.load(plain).sample(4, class_index=3)


@pytest.mark.parametrize("keys, message", [
    ({"ema": 1.5}, "ema is the decay"),
    ({"diffaug_policy": "color,flip"}, "diffaug_policy part 'flip' is not one of"),
    ({"d_norm": "instance"}, "d_norm 'instance' is not one of"),
    ({"loss": "wgan"}, "loss 'wgan' is not one of"),
])
def test_bad_extension_values_are_refused_by_name(tmp_path, keys, message):
    with pytest.raises(ConfigError, match=message):
        ganforge.train(out=tmp_path / "run", steps=2, show_progress=False, **{**TINY_TOY, **keys})


def forward_outputs(network: torch.nn.Module, outputs: list, inputs: list | None = None):
    """Record each forward call's output (and first input) of ``network``."""
    def hook(module, args, output):
        outputs.append(output.detach().clone())
        if inputs is not None:
            inputs.append(args[0].detach().clone())
    return network.register_forward_hook(hook)


@pytest.mark.parametrize("reuse_fake, generator_forwards", [(False, 2), (True, 1)])
def test_reuse_fake_hands_ds_fake_batch_to_the_g_update(tiny_toy, reuse_fake, generator_forwards):
    """pytorch/examples' variant: one G forward a step, and the G update judges the very batch D judged."""
    config = apply_overrides(RunConfig(), {**tiny_toy, "reuse_fake": reuse_fake, "steps": 3})
    data = load_data(config.data, None, None, 0, torch.device("cpu"))
    trainer = Trainer(resolve_config(config, data), data, torch.device("cpu"))
    made, judged = [], []
    handles = [forward_outputs(trainer.generator, made), forward_outputs(trainer.discriminator, [], judged)]
    train_step(trainer)
    for handle in handles:
        handle.remove()
    assert len(made) == generator_forwards
    g_update_input = judged[-1]
    assert torch.equal(g_update_input, made[-1]), "the G update judges the last batch G made"
    count = len(g_update_input)  # D may judge real and fake in one call: the fake half is then its last rows
    assert any(torch.equal(g_update_input, batch[-count:]) for batch in judged[:-1]) == reuse_fake
    assert trainer.reusable_fake is None, "nothing is kept past the step"


def test_reuse_fake_needs_d_first(tmp_path, tiny_toy):
    with pytest.raises(ConfigError, match="--reuse-fake .* needs --order d-first"):
        ganforge.train(out=tmp_path / "run", steps=2, reuse_fake=True, order="g-first", show_progress=False,
                       **tiny_toy)
