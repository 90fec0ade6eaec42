"""Feature matching (ganforge.algorithm.feature_matching): the distance of mean features by hand, its gradient
by finite differences, and what it sees that D's per-sample scores do not."""

from __future__ import annotations

import math

import torch

from ganforge.algorithm.feature_matching import feature_matching_loss


def test_the_loss_is_the_mean_squared_difference_of_the_batch_means():
    fake = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    real = torch.tensor([[0.0, 0.0], [2.0, 2.0], [1.0, 1.0]])  # mean (1, 1)
    assert math.isclose(float(feature_matching_loss(fake, real)), (1 ** 2 + 2 ** 2) / 2, rel_tol=1e-6)


def test_maps_are_flattened_and_batches_of_any_size_compare():
    fake = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    real = torch.zeros(5, 12)
    assert math.isclose(float(feature_matching_loss(fake, real)), float(fake.flatten(1).mean(0).square().mean()),
                        rel_tol=1e-6)


def test_equal_means_cost_nothing_whatever_the_samples():
    real = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    shuffled_and_spread = real[torch.randperm(6, generator=torch.Generator().manual_seed(1))]
    spread = real.mean(0) + 3 * (shuffled_and_spread - real.mean(0))  # another spread, the same mean
    assert float(feature_matching_loss(spread, real)) < 1e-10


def test_a_batch_with_one_kind_too_often_pays_though_every_sample_is_a_real_one():
    kinds = torch.eye(3)  # three kinds of sample, one feature each
    real = kinds.repeat(4, 1)  # each kind 4 times of 12
    fake = torch.cat([kinds[0].repeat(6, 1), kinds[1].repeat(3, 1), kinds[2].repeat(3, 1)])  # kind 0 half the time
    expected = ((0.5 - 1 / 3) ** 2 + 2 * (0.25 - 1 / 3) ** 2) / 3
    assert math.isclose(float(feature_matching_loss(fake, real)), expected, rel_tol=1e-6)


def test_its_gradient_matches_finite_differences():
    generator = torch.Generator().manual_seed(2)
    fake = torch.randn(5, 3, 2, dtype=torch.float64, generator=generator, requires_grad=True)
    real = torch.randn(4, 6, dtype=torch.float64, generator=generator)
    assert torch.autograd.gradcheck(lambda x: feature_matching_loss(x, real).double(), (fake,))
    feature_matching_loss(fake, real).backward()
    difference = fake.detach().flatten(1).mean(0) - real.mean(0)
    torch.testing.assert_close(fake.grad, (2 * difference / (6 * 5)).expand(5, 6).reshape(5, 3, 2))


def test_half_precision_features_give_a_float32_loss():
    features = torch.randn(4, 3, generator=torch.Generator().manual_seed(3)).bfloat16()
    assert feature_matching_loss(features, features.flip(0)).dtype == torch.float32
