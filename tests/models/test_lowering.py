"""The CPU kernel choices: same function, same parameters, same gradients as the stock layers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ganforge.config.resolve import resolve_config
from ganforge.config.schema import ModelConfig, RunConfig, apply_overrides
from ganforge.data import load_data
from ganforge.models import build_models
from ganforge.models.lowering import (
    GemmConvTranspose2d,
    MatmulConv2d,
    MatmulConvTranspose2d,
    gemm_pays_off,
    is_matmul_in_disguise,
    tune_for_cpu,
    use_gemm_form,
)
from ganforge.train.placement import judges_samples_independently, place_network
from ganforge.train.trainer import Trainer

LAYOUTS = [torch.contiguous_format, torch.channels_last]


def as_gemm(layer: nn.ConvTranspose2d, layout: torch.memory_format) -> GemmConvTranspose2d:
    """A copy of ``layer`` switched to the GEMM form (regardless of size), in ``layout``."""
    twin = copy.deepcopy(layer)
    use_gemm_form(twin, layout)
    return twin


def assert_same_function(stock: nn.Module, lowered: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``lowered`` gives ``stock``'s outputs and the same gradients of input, weight and bias; returns its output."""
    x_stock, x_lowered = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected, got = stock(x_stock), lowered(x_lowered)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    upstream = torch.randn_like(expected)
    expected.backward(upstream)
    got.backward(upstream)
    torch.testing.assert_close(x_lowered.grad, x_stock.grad, rtol=1e-5, atol=1e-6)
    for name in ("weight", "bias"):
        if getattr(stock, name) is not None:
            torch.testing.assert_close(getattr(lowered, name).grad, getattr(stock, name).grad, rtol=1e-5, atol=1e-5)
    return got


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel, stride, padding, side", [(4, 2, 1, 4), (3, 2, 1, 4), (4, 1, 0, 1), (5, 3, 2, 3)])
def test_gemm_transposed_convolution_matches_the_stock_layer(layout, kernel, stride, padding, side):
    torch.manual_seed(0)
    stock = nn.ConvTranspose2d(6, 5, kernel, stride, padding).to(memory_format=layout)
    gemm = as_gemm(stock, layout)
    x = torch.randn(3, 6, side, side).to(memory_format=layout)
    assert assert_same_function(stock, gemm, x).is_contiguous(memory_format=layout)


def test_gemm_transposed_convolution_passes_gradcheck_in_float64():
    torch.manual_seed(0)
    gemm = as_gemm(nn.ConvTranspose2d(3, 2, 4, 2, 1).double(), torch.channels_last)
    x = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert "PatchesConvTranspose" in type(gemm(x).grad_fn).__name__  # its own backward, against finite differences
    assert torch.autograd.gradcheck(lambda x, w, b: _gemm_with(gemm, x, w, b), (x, gemm.weight, gemm.bias))


def _gemm_with(layer: GemmConvTranspose2d, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,))


def test_larger_maps_and_autocast_keep_the_stock_kernel():
    torch.manual_seed(0)
    stock = nn.ConvTranspose2d(4, 3, 4, 2, 1)
    gemm = as_gemm(stock, torch.contiguous_format)
    big = torch.randn(2, 4, 8, 8)  # 64 pixels: the stock kernel is faster there
    torch.testing.assert_close(gemm(big), stock(big), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        small = torch.randn(2, 4, 4, 4)
        assert gemm(small).dtype == torch.bfloat16


def lowered_twin(layer: nn.Module, layout: torch.memory_format) -> nn.Module:
    twin = copy.deepcopy(layer).to(memory_format=layout)
    tune_for_cpu(twin, layout)
    return twin


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("stock, side", [
    (nn.Conv2d(6, 1, 4, 1, 0), 4),  # DCGAN D's last layer: the kernel covers the map
    (nn.Conv2d(6, 3, (3, 2), 2, 0), (3, 2)),
    (nn.ConvTranspose2d(5, 7, 4, 1, 0), 1),  # DCGAN G's first layer: from the 1x1 latent
    (nn.ConvTranspose2d(5, 7, (3, 4), 2, 0, bias=False), 1),
])
def test_matrix_products_in_disguise_match_the_stock_layer(layout, stock, side):
    torch.manual_seed(0)
    stock = copy.deepcopy(stock).to(memory_format=layout)  # a fresh layer for each layout: no gradients yet
    matmul = lowered_twin(stock, layout)
    assert type(matmul) in (MatmulConv2d, MatmulConvTranspose2d)
    height, width = (side, side) if isinstance(side, int) else side
    x = torch.randn(3, stock.in_channels, height, width).to(memory_format=layout)
    assert_same_function(stock, matmul, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert matmul(x).dtype == stock(x).dtype == torch.bfloat16
        torch.testing.assert_close(matmul(x).float(), stock(x).float(), rtol=0.05, atol=0.05)


def test_other_inputs_and_padded_layers_keep_the_stock_kernel():
    torch.manual_seed(0)
    conv, padded = nn.Conv2d(3, 2, 4, 1, 0), nn.Conv2d(3, 2, 4, 1, 1)
    assert is_matmul_in_disguise(conv) and not is_matmul_in_disguise(padded)
    assert not is_matmul_in_disguise(nn.ConvTranspose2d(3, 2, 4, 1, 0, output_padding=0, groups=1, dilation=2))
    matmul = lowered_twin(conv, torch.contiguous_format)
    larger = torch.randn(2, 3, 6, 6)  # a 3x3 output: not one output pixel
    torch.testing.assert_close(matmul(larger), conv(larger), rtol=0, atol=0)


def test_only_the_large_transposed_convolutions_of_dcgan_64_take_the_gemm_form():
    config = ModelConfig(model="dcgan", image_size=64, channels=3)
    generator, discriminator = build_models(config, seed=0)
    reference, _ = build_models(config, seed=0)
    keys = generator.state_dict().keys()
    tune_for_cpu(generator, torch.channels_last)
    tune_for_cpu(discriminator, torch.channels_last)
    lowered = [name for name, layer in generator.named_modules() if isinstance(layer, GemmConvTranspose2d)]
    assert lowered == ["layers.1.0"]  # 1024 -> 512 channels on 4x4 maps, a 32 MiB weight
    assert not any(isinstance(layer, GemmConvTranspose2d) for layer in discriminator.modules())
    matmuls = [name for network in (generator, discriminator) for name, layer in network.named_modules()
               if isinstance(layer, (MatmulConv2d, MatmulConvTranspose2d))]
    assert matmuls == ["layers.4.0"]  # D's last layer, to one score (G's first is the table's linear projection)
    assert generator.state_dict().keys() == keys
    assert gemm_pays_off(reference.layers[1][0]) and not gemm_pays_off(reference.layers[2][0])
    z = torch.randn(2, 100)
    generator.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(generator(z), reference(z), rtol=1e-4, atol=1e-5)


def test_placed_networks_compute_the_built_function_with_in_place_activations(tiny_dcgan):
    config = apply_overrides(RunConfig(), tiny_dcgan)
    data = load_data(config.data, 28, 1, 0, torch.device("cpu"))
    config = resolve_config(config, data)
    placed, _ = build_models(config.model, seed=0)
    built, _ = build_models(config.model, seed=0)
    place_network(placed, config, torch.device("cpu"))
    assert all(layer.inplace for layer in placed.modules() if isinstance(layer, (nn.ReLU, nn.LeakyReLU)))
    z = torch.randn(8, placed.z_dim)
    expected = built(z)
    got = placed(z)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    got.square().sum().backward()
    expected.square().sum().backward()
    for (name, a), b in zip(placed.named_parameters(), built.parameters()):
        if name.endswith("weight"):  # a conv bias before BatchNorm has a true gradient of 0: only rounding noise
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-5)


def make_trainer(keys: dict) -> Trainer:
    config = apply_overrides(RunConfig(), keys)
    data = load_data(config.data, config.model.image_size, config.model.channels, config.train.seed, torch.device("cpu"))
    return Trainer(resolve_config(config, data), data, torch.device("cpu"))


MLP = {"model": "mlp", "data": "digits", "width": 16, "batch_size": 8, "log_every": 2, "sample_every": 0,
       "checkpoint_every": 0, "tensorboard": False}


@pytest.mark.parametrize("keys, joint", [
    (MLP, True),  # no BatchNorm in the MLP discriminator
    ({**MLP, "loss": "wgan-gp"}, True),  # layer norm: per sample
    ({**MLP, "spectral_norm": True}, False),  # one power iteration per forward call
    ({"model": "dcgan", "data": "digits", "width": 4, "batch_size": 8}, False),  # BatchNorm: batch statistics
    ({"model": "dcgan", "data": "digits", "width": 4, "batch_size": 8, "d_norm": "none", "diffaug": True}, False),
])
def test_real_and_fake_share_a_pass_only_where_that_is_the_same_function(keys, joint):
    trainer = make_trainer(keys)
    assert trainer.joint_judging is joint
    assert judges_samples_independently(trainer.discriminator) is (joint or "diffaug" in keys)


def test_a_shared_pass_gives_the_scores_and_gradients_of_two_passes():
    trainer = make_trainer(MLP)
    real, _ = trainer.real_batch()
    fake = trainer.generator(trainer.sample_noise(8)).detach()
    *joint, no_components = trainer.judge_both(real, fake, None, None)
    assert no_components is None, "no component logits without --info-weight"
    torch.autograd.backward(joint, [torch.ones(8), -torch.ones(8)])
    joint_grads = [p.grad.clone() for p in trainer.discriminator.parameters()]
    trainer.discriminator.zero_grad(set_to_none=True)
    trainer.joint_judging = False
    apart = trainer.judge_both(real, fake, None, None)[:2]
    torch.autograd.backward(apart, [torch.ones(8), -torch.ones(8)])
    for a, b in zip(joint, apart):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, p in zip(joint_grads, trainer.discriminator.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-6)
