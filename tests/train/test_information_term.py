"""InfoGAN's term in the training step: the gradients G and D's head get, by hand, and what it does to a run."""

from __future__ import annotations

import copy

import pytest
import torch

import ganforge
from ganforge.config.resolve import resolve_config
from ganforge.config.schema import RunConfig, apply_overrides
from ganforge.data import load_data
from ganforge.models.components import component_of
from ganforge.runs.metrics_log import read_metrics
from ganforge.train.step import discriminator_phase, generator_phase
from ganforge.train.trainer import Trainer

INFO_TOY = {"model": "toy", "data": "grid25", "width": 16, "depth": 2, "batch_size": 32, "components": 4, "z_dim": 3,
            "info_weight": 0.5, "preset": "lecture", "tensorboard": False, "sample_every": 0, "checkpoint_every": 0}


def make_trainer(keys: dict) -> Trainer:
    config = apply_overrides(RunConfig(), keys)
    data = load_data(config.data, None, None, config.train.seed, torch.device("cpu"))
    return Trainer(resolve_config(config, data), data, torch.device("cpu"))


def cross_entropy_by_hand(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    return -torch.log_softmax(logits, dim=1)[torch.arange(len(codes)), codes].mean()


@pytest.mark.parametrize("pack", [1, 2])
def test_g_descends_its_gan_loss_plus_lambda_times_the_cross_entropy_of_ds_component_guess(pack):
    trainer = make_trainer({**INFO_TOY, "pack": pack})
    generator, discriminator = copy.deepcopy(trainer.generator), copy.deepcopy(trainer.discriminator)
    noise_state = trainer.noise.get_state()
    generator_phase(trainer, 1)
    noise = torch.randn(32, 3, generator=torch.Generator().set_state(noise_state))
    packed = generator(noise).reshape(32 // pack, 2 * pack)
    scores, logits = discriminator(packed, components=True)
    codes = component_of(noise[:, -1], 4)
    loss = torch.nn.functional.softplus(-scores).mean() + 0.5 * cross_entropy_by_hand(logits, codes)  # -log D(G(z))
    loss.backward()
    for by_hand, trained in zip(generator.parameters(), trainer.generator.parameters(), strict=True):
        torch.testing.assert_close(trained.grad, by_hand.grad)


def test_ds_head_descends_lambda_times_the_cross_entropy_on_the_fake_batch():
    trainer = make_trainer(INFO_TOY)
    discriminator = copy.deepcopy(trainer.discriminator)
    noise_state = trainer.noise.get_state()
    discriminator_phase(trainer, 1)
    noise = torch.randn(32, 3, generator=torch.Generator().set_state(noise_state))
    with torch.no_grad():
        fake = trainer.generator(noise)
    _, logits = discriminator(fake, components=True)
    information = cross_entropy_by_hand(logits, component_of(noise[:, -1], 4))
    (0.5 * information).backward()
    head, trained = discriminator.component_classifier.linear, trainer.discriminator.component_classifier.linear
    torch.testing.assert_close(trained.weight.grad, head.weight.grad)
    torch.testing.assert_close(trained.bias.grad, head.bias.grad)
    logged, _ = trainer.meter.read()
    assert logged["info_loss"] == pytest.approx(float(information.detach()), rel=1e-5)


def test_without_info_weight_no_head_and_no_information_term():
    trainer = make_trainer({**INFO_TOY, "info_weight": 0.0})
    assert trainer.discriminator.component_classifier is None
    assert trainer.judge_both(*(torch.zeros(32, 2),) * 2, None, None)[2] is None


def test_a_run_with_info_weight_learns_to_tell_its_components_apart(tmp_path):
    result = ganforge.train(out=tmp_path / "run", steps=400, log_every=50, show_progress=False, seed=0,
                            **{**INFO_TOY, "width": 32, "lr_d": 1e-3, "lr_g": 1e-3})
    rows = [row for row in read_metrics(result.run_dir) if "info_loss" in row]
    assert rows, "the information term is logged"
    assert rows[0]["info_loss"] > 0.5 * torch.log(torch.tensor(4.0)), "at first D cannot tell the 4 components apart"
    assert rows[-1]["info_loss"] < 0.05, "G has sent them apart, and D tells them apart"
    loaded = ganforge.load(result.run_dir, device="cpu")
    points = torch.as_tensor(loaded.sample(4_000, seed=1)).reshape(-1, 2)
    codes = component_of(loaded.latents(4_000, seed=1)[:, -1], 4)
    centres = torch.stack([points[codes == k].mean(0) for k in range(4)])
    assert torch.pdist(centres).min() > 1.0, "the components' points sit apart (grid25's modes are 2 apart)"
