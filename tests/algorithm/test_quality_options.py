"""The maths of the options that sharpen samples: packing, R1/R2, the relativistic loss, schedules."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganforge.algorithm.losses import LOSS_FAMILIES, relativistic_discriminator_loss, relativistic_generator_loss
from ganforge.algorithm.packing import pack
from ganforge.algorithm.penalties import zero_centred_penalty
from ganforge.algorithm.schedules import learning_rate_factor


def test_packing_concatenates_consecutive_points():
    points = torch.arange(12.0).reshape(6, 2)  # six 2-D points
    packed = pack(points, 3)
    assert packed.shape == (2, 6)
    assert packed[0].tolist() == [0, 1, 2, 3, 4, 5] and packed[1].tolist() == [6, 7, 8, 9, 10, 11]


def test_packing_stacks_images_along_channels_and_keeps_each_image_whole():
    images = torch.randn(4, 3, 5, 5)
    packed = pack(images, 2)
    assert packed.shape == (2, 6, 5, 5)
    assert torch.equal(packed[1, 3:], images[3]) and torch.equal(packed[0, :3], images[0])


def test_packing_channels_last_images_gives_the_same_packs():
    images = torch.randn(4, 3, 5, 5)
    assert torch.equal(pack(images.contiguous(memory_format=torch.channels_last), 2), pack(images, 2))


def test_packing_of_one_is_the_identity_and_a_ragged_batch_is_refused():
    points = torch.randn(5, 2)
    assert pack(points, 1) is points
    with pytest.raises(ValueError, match="5 samples cannot be split into packs of 2"):
        pack(points, 2)


def test_zero_centred_penalty_of_a_linear_critic_is_half_gamma_times_the_weight_norm_squared():
    weight = torch.tensor([3.0, -4.0])
    penalty = zero_centred_penalty(lambda x: x @ weight, torch.randn(7, 2), gamma=0.5)
    assert penalty.item() == pytest.approx(0.5 * 0.5 * 25.0)


def test_zero_centred_penalty_matches_finite_differences_of_a_nonlinear_critic():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 1).double()
    critic = lambda x: torch.tanh(layer(x)).squeeze(1)  # noqa: E731
    samples = torch.randn(5, 3, dtype=torch.float64)
    eps = 1e-6
    squared_norms = []
    for sample in samples:
        gradient = []
        for axis in range(3):
            step = torch.zeros(3, dtype=torch.float64)
            step[axis] = eps
            with torch.no_grad():
                gradient.append((critic((sample + step)[None]) - critic((sample - step)[None])).item() / (2 * eps))
        squared_norms.append(sum(g * g for g in gradient))
    expected = 0.5 * 2.0 * sum(squared_norms) / len(squared_norms)
    assert zero_centred_penalty(critic, samples, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)


def test_zero_centred_penalty_trains_the_critic_and_not_the_samples():
    layer = torch.nn.Linear(2, 1)
    samples = torch.randn(4, 2, requires_grad=True)
    zero_centred_penalty(lambda x: layer(x).square().squeeze(1), samples, gamma=1.0).backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert samples.grad is None


def test_relativistic_losses_by_hand():
    real = torch.tensor([2.0, 0.0])
    fake = torch.tensor([1.0, 1.0])
    # D: mean softplus(-(real - fake)) = mean(softplus(-1), softplus(1))
    assert relativistic_discriminator_loss(real, fake).item() == pytest.approx(
        (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.0))) / 2)
    # G mirrors it: mean softplus(-(fake - real))
    assert relativistic_generator_loss(fake, real).item() == pytest.approx(
        (math.log1p(math.exp(1.0)) + math.log1p(math.exp(-1.0))) / 2)
    assert relativistic_discriminator_loss(real, real).item() == pytest.approx(math.log(2.0))


def test_relativistic_loss_depends_only_on_the_paired_differences():
    real, fake = torch.randn(6), torch.randn(6)
    shifted = relativistic_discriminator_loss(real + 5, fake + 5)
    assert shifted.item() == pytest.approx(relativistic_discriminator_loss(real, fake).item(), rel=1e-6)
    assert relativistic_generator_loss(fake, real).item() == pytest.approx(F.softplus(real - fake).mean().item())
    family = LOSS_FAMILIES["rpgan"]
    assert family.pairs_real and not family.outputs_probability


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_schedules_start_at_one_and_end_at_the_floor(schedule):
    total, floor = 101, 0.1
    factors = [learning_rate_factor(schedule, step, total, floor) for step in range(1, total + 1)]
    assert factors[0] == 1.0
    assert factors[-1] == pytest.approx(1.0 if schedule == "constant" else floor)
    assert all(a >= b for a, b in zip(factors, factors[1:])), "never rises"


def test_linear_and_cosine_halfway_values():
    assert learning_rate_factor("linear", 51, 101, 0.0) == pytest.approx(0.5)
    assert learning_rate_factor("cosine", 51, 101, 0.2) == pytest.approx(0.2 + 0.8 * 0.5)
    assert learning_rate_factor("cosine", 26, 101, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
