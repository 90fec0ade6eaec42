"""Feature matching in the training step: D's hidden features, G's gradient by hand, what is logged, and the
config's checks."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import ganforge
from conftest import TINY_DCGAN, TINY_TOY
from ganforge.algorithm.packing import pack
from ganforge.config.resolve import resolve_config
from ganforge.config.schema import RunConfig, apply_overrides
from ganforge.data import load_data
from ganforge.errors import ConfigError
from ganforge.models import build_models
from ganforge.runs.metrics_log import read_metrics
from ganforge.train.step import generator_phase
from ganforge.train.trainer import Trainer

LAMBDA = 3.0


def make_trainer(keys: dict) -> Trainer:
    config = apply_overrides(RunConfig(), keys)
    data = load_data(config.data, None, None, config.train.seed, torch.device("cpu"))
    return Trainer(resolve_config(config, data), data, torch.device("cpu"))


def recording_real_batches(trainer: Trainer) -> list:
    """Make the trainer keep each real batch it draws, so a test can judge the same one."""
    drawn: list = []
    draw = trainer.real_batch

    def remembered():
        drawn.append(draw())
        return drawn[-1]

    trainer.real_batch = remembered
    return drawn


def test_d_gives_its_last_hidden_features_beside_its_scores_and_component_logits():
    config = apply_overrides(RunConfig(), {"model": "toy", "width": 8, "depth": 2, "components": 4, "z_dim": 3,
                                           "info_weight": 0.5, "pack": 2}).model
    _, discriminator = build_models(config, seed=0)
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))  # 6 packs of 2 points
    scores, logits, features = discriminator(x, components=True, features=True)
    torch.testing.assert_close(features, discriminator.layers[:-1](x).flatten(1))
    torch.testing.assert_close(scores, discriminator(x))
    torch.testing.assert_close(logits, discriminator(x, components=True)[1])
    assert features.shape == (6, 8) and logits.shape == (12, 4)
    only_scores, only_features = discriminator(x, features=True)
    torch.testing.assert_close(only_features, features)


def test_a_projection_d_adds_the_label_term_to_the_scores_it_gives_with_features():
    config = apply_overrides(RunConfig(), {**TINY_DCGAN, "conditional": True, "num_classes": 10,
                                           "channels": 1}).model
    _, discriminator = build_models(config, seed=0)
    images, labels = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 3, 9, 3])
    scores, features = discriminator(images, labels, features=True)
    torch.testing.assert_close(scores, discriminator(images, labels))
    assert features.shape == (4, discriminator.projection.embedding_dim)


CASES = {  # the lectures' loss on the toy, packed; R3GAN's pairing loss on a DCGAN with BatchNorm in D
    "toy-nonsaturating-pack2": {**TINY_TOY, "pack": 2, "depth": 2},
    "dcgan-rpgan": {**TINY_DCGAN, "loss": "rpgan"},
}


@pytest.mark.parametrize("keys", CASES.values(), ids=CASES.keys())
def test_g_descends_its_gan_loss_plus_lambda_times_the_distance_of_the_mean_features(keys):
    trainer = make_trainer({**keys, "feature_matching": LAMBDA})
    generator, discriminator = copy.deepcopy(trainer.generator), copy.deepcopy(trainer.discriminator)
    noise_state = trainer.noise.get_state()
    drawn = recording_real_batches(trainer)
    generator_phase(trainer, 1)
    assert len(drawn) == 1, "one real batch: the reference of the fake batch's mean features"
    batch, m = trainer.config.train.batch_size, trainer.config.model.pack
    noise = torch.randn(batch, trainer.generator.z_dim, generator=torch.Generator().set_state(noise_state))
    fake_scores, fake_features = discriminator(pack(generator(noise), m), features=True)
    with torch.no_grad():
        real_scores, real_features = discriminator(pack(drawn[0][0], m), features=True)
    if trainer.config.train.loss == "rpgan":
        gan_loss = F.softplus(real_scores - fake_scores).mean()
    else:
        gan_loss = F.softplus(-fake_scores).mean()  # -log D(G(z))
    distance = (fake_features.mean(0) - real_features.mean(0)).square().mean()
    (gan_loss + LAMBDA * distance).backward()
    for by_hand, trained in zip(generator.parameters(), trainer.generator.parameters(), strict=True):
        torch.testing.assert_close(trained.grad, by_hand.grad, rtol=1e-4, atol=1e-6)
    logged, _ = trainer.meter.read()
    distance, gan_loss = float(distance.detach()), float(gan_loss.detach())
    assert logged["feature_matching"] == pytest.approx(distance, rel=1e-4)
    assert logged["g_loss"] == pytest.approx(gan_loss + LAMBDA * distance, rel=1e-4)


def test_without_feature_matching_the_lectures_g_step_draws_no_real_batch_and_logs_no_distance():
    trainer = make_trainer({**TINY_TOY, "feature_matching": 0.0})
    drawn = recording_real_batches(trainer)
    generator_phase(trainer, 1)
    assert drawn == []
    logged, _ = trainer.meter.read()
    assert "feature_matching" not in logged and "g_loss" in logged


def test_the_preset_leaves_feature_matching_off_where_it_is_not_tuned():
    config = apply_overrides(RunConfig(), TINY_TOY)
    data = load_data(config.data, None, None, 0, torch.device("cpu"))
    assert resolve_config(config, data).train.feature_matching == 0.0


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_a_negative_or_non_finite_weight_is_refused_with_the_fix(tmp_path, weight):
    with pytest.raises(ConfigError, match="feature_matching is the weight lambda .* must be 0 .off. or positive"):
        ganforge.train(out=tmp_path / "run", steps=1, feature_matching=weight, show_progress=False, **TINY_TOY)
    assert not (tmp_path / "run").exists()


def test_a_run_with_feature_matching_logs_the_distance_and_keeps_the_weight(tmp_path):
    result = ganforge.train(out=tmp_path / "run", steps=6, feature_matching=LAMBDA, show_progress=False,
                            **TINY_DCGAN)
    rows = [row for row in read_metrics(result.run_dir) if "feature_matching" in row]
    assert len(rows) == 3 and all(0 < row["feature_matching"] < float("inf") for row in rows)
    assert ganforge.load(result.run_dir, device="cpu").config.train.feature_matching == LAMBDA
