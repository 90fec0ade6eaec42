"""InfoGAN's information term (ganforge.algorithm.information): the cross-entropy by hand and its bounds."""

from __future__ import annotations

import math

import torch

from ganforge.algorithm.information import information_loss


def test_the_information_loss_is_the_mean_negative_log_probability_of_the_given_code():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    codes = torch.tensor([0, 1])
    by_hand = -(math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1)))
                + math.log(math.exp(0.5) / (2 * math.exp(0.5) + math.exp(3)))) / 2
    assert math.isclose(float(information_loss(logits, codes)), by_hand, rel_tol=1e-6)


def test_a_q_that_cannot_tell_the_codes_apart_pays_log_k_and_a_sure_one_nothing():
    codes = torch.arange(8)
    assert math.isclose(float(information_loss(torch.zeros(8, 8), codes)), math.log(8), rel_tol=1e-6)
    assert float(information_loss(50 * torch.eye(8), codes)) < 1e-12  # the lower bound on I(c; x) reaches H(c)


def test_its_gradient_in_the_logits_is_softmax_minus_one_hot_over_n():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    codes = torch.tensor([3, 0, 1, 1, 2])
    information_loss(logits, codes).backward()
    expected = (torch.softmax(logits.detach(), dim=1) - torch.nn.functional.one_hot(codes, 4)) / 5
    torch.testing.assert_close(logits.grad, expected)


def test_half_precision_logits_give_a_float32_loss():
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(1)).bfloat16()
    assert information_loss(logits, torch.tensor([0, 1, 2, 0, 1, 2])).dtype == torch.float32
