"""Tests for ganforge.algorithm.losses: the lectures' objectives on logits, their values, stability and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganforge.algorithm.losses import (
    LOSS_FAMILIES,
    critic_loss,
    discriminator_loss,
    hinge_discriminator_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    minimax_generator_loss,
    nonsaturating_generator_loss,
    score_generator_loss,
)
from ganforge.algorithm.penalties import GRADIENT_PENALTY_WEIGHT, gradient_penalty
from ganforge.config.resolve import with_training_preset
from ganforge.config.schema import LOSSES, RunConfig

LOG2 = math.log(2.0)


def t(*values: float) -> torch.Tensor:
    """A float64 tensor of logits."""
    return torch.tensor(values, dtype=torch.float64)


def softplus(x: float) -> float:
    """log(1 + e^x), by hand."""
    return math.log1p(math.exp(x))


def naive_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-(log D(x) + log(1 - D(G(z)))) / 2 written with log(sigmoid): what the stable form must avoid."""
    return -0.5 * (torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean())


# --- discriminator loss -------------------------------------------------------------------------------


def test_discriminator_loss_at_zero_logits_is_log2_average_and_2log2_sum():
    zeros = torch.zeros(5, dtype=torch.float64)
    assert discriminator_loss(zeros, zeros).item() == pytest.approx(LOG2, rel=1e-12)
    assert discriminator_loss(zeros, zeros, reduction="average").item() == pytest.approx(LOG2, rel=1e-12)
    assert discriminator_loss(zeros, zeros, reduction="sum").item() == pytest.approx(2 * LOG2, rel=1e-12)


def test_discriminator_loss_hand_values():
    # real logit 2, fake logit -1: -(log sigmoid(2) + log(1 - sigmoid(-1))) / 2 = (log(1+e^-2) + log(1+e^-1)) / 2
    expected_sum = math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))
    assert discriminator_loss(t(2.0), t(-1.0)).item() == pytest.approx(0.5 * expected_sum, rel=1e-12)
    assert discriminator_loss(t(2.0), t(-1.0), reduction="sum").item() == pytest.approx(expected_sum, rel=1e-12)
    # batches are averaged within each term, and the terms may have different batch sizes
    real, fake = t(2.0, -3.0), t(-1.0, 0.5, 4.0)
    expected = (softplus(-2.0) + softplus(3.0)) / 2 + (softplus(-1.0) + softplus(0.5) + softplus(4.0)) / 3
    assert discriminator_loss(real, fake, reduction="sum").item() == pytest.approx(expected, rel=1e-12)
    assert discriminator_loss(real, fake).item() == pytest.approx(expected / 2, rel=1e-12)


def test_discriminator_loss_equals_bce_with_logits():
    generator = torch.Generator().manual_seed(0)
    real = 3 * torch.randn(16, generator=generator, dtype=torch.float64)
    fake = 3 * torch.randn(16, generator=generator, dtype=torch.float64)
    ones, zeros = torch.ones_like(real), torch.zeros_like(fake)
    # average: BCE over the combined batch of real (target 1) and fake (target 0)
    combined = F.binary_cross_entropy_with_logits(torch.cat([real, fake]), torch.cat([ones, zeros]))
    torch.testing.assert_close(discriminator_loss(real, fake), combined)
    # sum: BCE on the real batch plus BCE on the fake batch (lecture 004)
    separate = F.binary_cross_entropy_with_logits(real, ones) + F.binary_cross_entropy_with_logits(fake, zeros)
    torch.testing.assert_close(discriminator_loss(real, fake, reduction="sum"), separate)
    # and the textbook formula where it is still finite
    torch.testing.assert_close(discriminator_loss(real, fake), naive_discriminator_loss(real, fake))


@pytest.mark.parametrize("size", [100.0, 1e4])
def test_discriminator_loss_stays_finite_at_extreme_logits(size):
    # D confidently wrong: real scored fake, fake scored real; each term is then ~ |logit|
    real, fake = torch.tensor([-size], requires_grad=True), torch.tensor([size], requires_grad=True)
    naive = naive_discriminator_loss(real.detach(), fake.detach())
    assert not torch.isfinite(naive)  # the log(sigmoid) form overflows here
    loss = discriminator_loss(real, fake)
    assert loss.item() == pytest.approx(size, rel=1e-6)
    loss.backward()
    assert real.grad.item() == pytest.approx(-0.5, rel=1e-6) and fake.grad.item() == pytest.approx(0.5, rel=1e-6)
    # D confidently right: the loss is ~ 0, not NaN
    right = discriminator_loss(torch.tensor([size]), torch.tensor([-size]), reduction="sum")
    assert torch.isfinite(right) and 0 <= right.item() < 1e-30


def test_discriminator_loss_rejects_an_unknown_reduction():
    with pytest.raises(ValueError, match="mean"):
        discriminator_loss(t(0.0), t(0.0), reduction="mean")


# --- generator losses --------------------------------------------------------------------------------


def test_minimax_generator_loss_is_mean_log_one_minus_d():
    logits = t(0.0, 2.0, -1.0)
    expected = sum(math.log(1 - 1 / (1 + math.exp(-l))) for l in (0.0, 2.0, -1.0)) / 3
    assert minimax_generator_loss(logits).item() == pytest.approx(expected, rel=1e-12)
    assert minimax_generator_loss(t(0.0)).item() == pytest.approx(-LOG2, rel=1e-12)


def test_nonsaturating_generator_loss_is_minus_mean_log_d():
    logits = t(0.0, 2.0, -1.0)
    expected = -sum(math.log(1 / (1 + math.exp(-l))) for l in (0.0, 2.0, -1.0)) / 3
    assert nonsaturating_generator_loss(logits).item() == pytest.approx(expected, rel=1e-12)
    assert nonsaturating_generator_loss(t(0.0)).item() == pytest.approx(LOG2, rel=1e-12)


@pytest.mark.parametrize("size", [100.0, 1e4])
def test_generator_losses_stay_finite_at_extreme_logits(size):
    logits = torch.tensor([-size, size], requires_grad=True)
    # log(1 - sigmoid(size)) = -size; log(1 - sigmoid(-size)) ~ 0
    minimax = minimax_generator_loss(logits)
    assert minimax.item() == pytest.approx(-size / 2, rel=1e-6)
    # -log(sigmoid(-size)) = size; -log(sigmoid(size)) ~ 0
    nonsaturating = nonsaturating_generator_loss(logits)
    assert nonsaturating.item() == pytest.approx(size / 2, rel=1e-6)
    for loss in (minimax, nonsaturating):
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all()


def test_minimax_saturates_where_d_rejects_fakes_and_nonsaturating_does_not():
    # early in training D(G(z)) ~ 0: a very negative logit
    logit = -10.0
    minimax_input = torch.tensor([logit], dtype=torch.float64, requires_grad=True)
    minimax_generator_loss(minimax_input).backward()
    nonsaturating_input = torch.tensor([logit], dtype=torch.float64, requires_grad=True)
    nonsaturating_generator_loss(nonsaturating_input).backward()

    sigmoid = 1 / (1 + math.exp(-logit))  # ~ 4.5e-5
    # d/dl log(1 - sigmoid(l)) = -sigmoid(l): tiny
    assert minimax_input.grad.item() == pytest.approx(-sigmoid, rel=1e-9)
    assert abs(minimax_input.grad.item()) < 1e-4
    # d/dl -log(sigmoid(l)) = -(1 - sigmoid(l)): ~ -1
    assert nonsaturating_input.grad.item() == pytest.approx(-(1 - sigmoid), rel=1e-9)
    assert nonsaturating_input.grad.item() == pytest.approx(-1.0, abs=1e-4)
    # both negative: gradient descent on G raises the logit (makes D call the fake real)
    assert minimax_input.grad.item() < 0 and nonsaturating_input.grad.item() < 0
    assert abs(nonsaturating_input.grad.item()) > 1e4 * abs(minimax_input.grad.item())


def test_loss_registry_holds_the_seed_losses_and_the_config_choices():
    assert tuple(LOSS_FAMILIES) == LOSSES
    assert LOSS_FAMILIES["nonsaturating"].generator is nonsaturating_generator_loss
    assert LOSS_FAMILIES["minimax"].generator is minimax_generator_loss
    assert LOSS_FAMILIES["nonsaturating"].discriminator is LOSS_FAMILIES["minimax"].discriminator is discriminator_loss


def test_lsgan_losses_by_hand():
    real, fake = t(1.0, 0.0), t(0.0, 2.0)
    # real term mean((1-1)^2, (0-1)^2) = 0.5, fake term mean(0^2, 2^2) = 2
    assert lsgan_discriminator_loss(real, fake, "average").item() == pytest.approx(1.25)
    assert lsgan_discriminator_loss(real, fake, "sum").item() == pytest.approx(2.5)
    assert lsgan_generator_loss(fake).item() == pytest.approx(0.5 * (1 + 1) / 2)  # 1/2 mean((0-1)^2, (2-1)^2)
    assert lsgan_discriminator_loss(t(1.0, 1.0), t(0.0, 0.0)).item() == 0.0  # D exactly on its targets


def test_hinge_losses_by_hand():
    real, fake = t(2.0, 0.5), t(-3.0, 0.0)
    # real: relu(1 - 2) = 0, relu(1 - 0.5) = 0.5 -> 0.25; fake: relu(1 - 3) = 0, relu(1 + 0) = 1 -> 0.5
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(0.75)
    assert LOSS_FAMILIES["hinge"].reduction == "sum"
    scores = t(2.0, 0.5).requires_grad_(True)
    hinge_discriminator_loss(scores, t(-2.0, -1.0)).backward()
    assert scores.grad.tolist() == [0.0, -0.5]  # past the margin: no gradient; inside: -1/batch
    assert score_generator_loss(t(1.0, 3.0)).item() == -2.0


def test_critic_loss_is_the_negated_wasserstein_estimate():
    assert critic_loss(t(1.0, 3.0), t(0.5, -0.5)).item() == pytest.approx(0.0 - 2.0)


def test_gradient_penalty_of_a_linear_critic_is_exact():
    weight = torch.tensor([3.0, 4.0], dtype=torch.float64)  # |w| = 5: the gradient everywhere
    real, fake = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    penalty = gradient_penalty(lambda x: x @ weight, real, fake, torch.Generator().manual_seed(0))
    assert penalty.item() == pytest.approx(GRADIENT_PENALTY_WEIGHT * (5 - 1) ** 2)


def _critic(x: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
    """A small smooth critic R^3 -> R with 3x3 + 3 parameters."""
    hidden = torch.tanh(x @ parameters[:9].view(3, 3))
    return hidden @ parameters[9:]


def test_gradient_penalty_matches_finite_differences():
    torch.manual_seed(0)
    real, fake = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    parameters = torch.randn(12, dtype=torch.float64, requires_grad=True)
    penalty = gradient_penalty(lambda x: _critic(x, parameters), real, fake, torch.Generator().manual_seed(7))

    eps = torch.rand(5, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64)  # the same draw
    between = eps * real + (1 - eps) * fake
    h = 1e-6

    def penalty_by_differences(theta: torch.Tensor) -> float:
        gradients = torch.stack([(_critic(between + h * e, theta) - _critic(between - h * e, theta)) / (2 * h)
                                 for e in torch.eye(3, dtype=torch.float64)], dim=1)  # (5, 3) d critic / d x
        return float(GRADIENT_PENALTY_WEIGHT * (gradients.norm(dim=1) - 1).square().mean())

    with torch.no_grad():
        assert penalty.item() == pytest.approx(penalty_by_differences(parameters.detach()), rel=1e-6)
    # The penalty's own gradient with respect to the critic's weights (what create_graph keeps) too.
    (analytic,) = torch.autograd.grad(penalty, parameters)
    step = 1e-4
    with torch.no_grad():
        numeric = torch.tensor([
            (penalty_by_differences(parameters + step * e) - penalty_by_differences(parameters - step * e)) / (2 * step)
            for e in torch.eye(12, dtype=torch.float64)], dtype=torch.float64)
    assert torch.allclose(analytic, numeric, rtol=1e-3, atol=1e-5)


def test_wgan_gp_brings_its_own_algorithm_defaults_unless_set():
    resolved = with_training_preset(RunConfig.from_dict({"model": "dcgan", "loss": "wgan-gp"})).train
    assert (resolved.d_steps, resolved.beta1, resolved.beta2) == (5, 0.0, 0.9)
    chosen = with_training_preset(RunConfig.from_dict({"model": "dcgan", "loss": "wgan-gp", "d_steps": 2})).train
    assert chosen.d_steps == 2
    seed = with_training_preset(RunConfig.from_dict({"model": "dcgan", "loss": "hinge"})).train
    assert (seed.d_steps, seed.beta1, seed.beta2) == (1, 0.5, 0.999)
