"""Tests for ganforge.models and ganforge.models.describe: the layer tables against SPEC.md sections 3 and 4."""

from __future__ import annotations

import re

import pytest
import torch
from rich.console import Console
from torch import nn
from typer.testing import CliRunner

from ganforge import cli
from ganforge.config.schema import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import Discriminator, Generator, architecture, build_models, shapes_through
from ganforge.models.describe import describe
from ganforge.models.layers import Project

CONVS = (nn.Conv2d, nn.ConvTranspose2d)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def conv_args(layer: nn.Module) -> tuple[str, int, int, int, int, int]:
    """A (transposed) convolution as its constructor call reads: (name, C_in, C_out, kernel, stride, padding)."""
    assert isinstance(layer, CONVS), f"expected a convolution, got {layer}"
    assert layer.kernel_size[0] == layer.kernel_size[1] and layer.stride[0] == layer.stride[1]
    assert layer.padding[0] == layer.padding[1]
    return (type(layer).__name__, layer.in_channels, layer.out_channels, layer.kernel_size[0], layer.stride[0],
            layer.padding[0])


def first_modules(network: Generator | Discriminator) -> list[nn.Module]:
    """The main layer (Linear/Project/Conv) of every row, in order."""
    return [row[0] for row in network.layers]


def leaves(network: Generator | Discriminator) -> list[nn.Module]:
    """Every module of every row, in forward order (a Project counts as one)."""
    found: list[nn.Module] = []
    for row in network.layers:
        for module in row:
            found.append(module)
    return found


def hooked_shapes(network: Generator | Discriminator, x: torch.Tensor) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """Run ``network`` in eval mode and record each row's output shape (without the batch axis)."""
    shapes: list[tuple[int, ...]] = []
    handles = [row.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
               for row in network.layers]
    network.eval()
    try:
        with torch.no_grad():
            out = network(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes, out


@pytest.fixture(scope="module")
def dcgan28() -> tuple[Generator, Discriminator]:
    return build_models(ModelConfig("dcgan", 28, 1), seed=0)


@pytest.fixture(scope="module")
def dcgan64() -> tuple[Generator, Discriminator]:
    return build_models(ModelConfig("dcgan", 64, 3), seed=0)


# --- DCGAN 28x28x1: the lecture's exact table (SPEC.md section 4) ---------------------------------------


def test_dcgan28_generator_layers_are_the_lecture_table(dcgan28):
    generator, _ = dcgan28
    assert generator.z_dim == 50
    assert [conv_args(layer) for layer in first_modules(generator)] == [
        ("ConvTranspose2d", 50, 128, 4, 1, 0),
        ("ConvTranspose2d", 128, 64, 3, 2, 1),
        ("ConvTranspose2d", 64, 32, 4, 2, 1),
        ("ConvTranspose2d", 32, 1, 4, 2, 1),
    ]


def test_dcgan28_discriminator_layers_are_the_lecture_table(dcgan28):
    _, discriminator = dcgan28
    assert [conv_args(layer) for layer in first_modules(discriminator)] == [
        ("Conv2d", 1, 32, 4, 2, 1),
        ("Conv2d", 32, 64, 4, 2, 1),
        ("Conv2d", 64, 128, 3, 2, 1),
        ("Conv2d", 128, 1, 4, 1, 0),
    ]


def test_dcgan28_sizes_after_each_layer_match_the_lecture_and_the_formula(dcgan28):
    generator, discriminator = dcgan28
    torch.manual_seed(0)
    g_shapes, images = hooked_shapes(generator, torch.randn(2, 50))
    assert g_shapes == [(128, 4, 4), (64, 7, 7), (32, 14, 14), (1, 28, 28)]
    assert images.shape == (2, 1, 28, 28)
    assert shapes_through(generator.table, generator.input_shape) == g_shapes

    d_shapes, logits = hooked_shapes(discriminator, images)
    assert d_shapes == [(32, 14, 14), (64, 7, 7), (128, 4, 4), (1, 1, 1)]
    assert logits.shape == (2,)
    assert shapes_through(discriminator.table, discriminator.input_shape) == d_shapes


# --- DCGAN 64x64x3: project and reshape, then halve the filters --------------------------------------------


def test_dcgan64_generator_projects_z_then_halves_filters(dcgan64):
    generator, _ = dcgan64
    assert generator.z_dim == 100
    project, *convs = first_modules(generator)
    assert isinstance(project, Project) and project.channels == 1024
    assert (project.linear.in_features, project.linear.out_features) == (100, 4 * 4 * 1024)
    assert [conv_args(layer) for layer in convs] == [
        ("ConvTranspose2d", 1024, 512, 4, 2, 1),
        ("ConvTranspose2d", 512, 256, 4, 2, 1),
        ("ConvTranspose2d", 256, 128, 4, 2, 1),
        ("ConvTranspose2d", 128, 3, 4, 2, 1),
    ]
    z = torch.randn(2, 100, generator=torch.Generator().manual_seed(0))
    # the projection is W z reshaped, nothing else
    torch.testing.assert_close(project(z), project.linear(z).reshape(2, 1024, 4, 4))

    shapes, images = hooked_shapes(generator, z)
    assert shapes == [(1024, 4, 4), (512, 8, 8), (256, 16, 16), (128, 32, 32), (3, 64, 64)]
    assert shapes == shapes_through(generator.table, generator.input_shape)
    assert images.shape == (2, 3, 64, 64)


def test_dcgan64_discriminator_is_the_lecture_004_table(dcgan64):
    _, discriminator = dcgan64
    assert [conv_args(layer) for layer in first_modules(discriminator)] == [
        ("Conv2d", 3, 64, 4, 2, 1),
        ("Conv2d", 64, 128, 4, 2, 1),
        ("Conv2d", 128, 256, 4, 2, 1),
        ("Conv2d", 256, 512, 4, 2, 1),
        ("Conv2d", 512, 1, 4, 1, 0),
    ]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    shapes, logits = hooked_shapes(discriminator, x)
    assert shapes == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (1, 1, 1)]
    assert shapes == shapes_through(discriminator.table, discriminator.input_shape)
    assert logits.shape == (2,)


# --- other sizes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 128])
def test_dcgan_default_tables_for_other_powers_of_two_halve_filters(size):
    arch = architecture(ModelConfig("dcgan", size, 3))
    g_out = [spec.out_features for spec in arch.generator]
    d_out = [spec.out_features for spec in arch.discriminator]
    # G starts at 4x4 with width * size / 4 filters (64x64: 1024) and doubles the side each layer
    assert g_out[0] == 64 * size // 4
    assert g_out[:-1] == [g_out[0] // 2**i for i in range(len(g_out) - 1)] and g_out[-1] == 3
    assert shapes_through(arch.generator, arch.generator_input)[-1] == (3, size, size)
    # D mirrors it: 64 filters at size/2, doubling until 4x4, then one logit
    assert d_out[:-1] == [64 * 2**i for i in range(len(d_out) - 1)] and d_out[-1] == 1
    assert shapes_through(arch.discriminator, arch.discriminator_input)[-2:] == [(d_out[-2], 4, 4), (1, 1, 1)]


@pytest.mark.parametrize("size", [32, 128])
def test_dcgan_other_powers_of_two_build_and_run(size):
    width = 64 if size == 32 else 8  # the default 128x128 G has 48M parameters: too slow for a unit test
    generator, discriminator = build_models(ModelConfig("dcgan", size, 3, width=width), seed=0)
    z = torch.randn(2, 100, generator=torch.Generator().manual_seed(0))
    g_shapes, images = hooked_shapes(generator, z)
    assert images.shape == (2, 3, size, size)
    sides = [shape[1] for shape in g_shapes]
    assert sides == [4 * 2**i for i in range(len(sides))] and sides[-1] == size
    filters = [shape[0] for shape in g_shapes]
    assert filters[0] == width * size // 4
    assert all(after == before // 2 for before, after in zip(filters[:-2], filters[1:-1]))

    d_shapes, logits = hooked_shapes(discriminator, images)
    assert logits.shape == (2,)
    assert d_shapes[0] == (width, size // 2, size // 2) and d_shapes[-2][1:] == (4, 4) and d_shapes[-1] == (1, 1, 1)
    assert all(after[0] == 2 * before[0] for before, after in zip(d_shapes[:-2], d_shapes[1:-1]))


@pytest.mark.parametrize("size", [48, 27])
def test_dcgan_unsupported_size_names_it_and_the_supported_ones(size):
    with pytest.raises(ConfigError) as error:
        build_models(ModelConfig("dcgan", size, 1))
    numbers = set(re.findall(r"\d+", str(error.value)))
    assert {str(size), "28", "32", "64", "128"} <= numbers


# --- DCGAN guidelines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["dcgan28", "dcgan64"])
def test_dcgan_follows_the_radford_guidelines(fixture, request):
    generator, discriminator = request.getfixturevalue(fixture)
    for network in (generator, discriminator):
        assert not [m for m in network.modules() if "pool" in type(m).__name__.lower()]
        # no fully connected hidden layers: the only Linear is G's projection of z
        linears = [m for m in network.modules() if isinstance(m, nn.Linear)]
        assert linears == [m.linear for m in network.modules() if isinstance(m, Project)]

    g_rows, d_rows = list(generator.layers), list(discriminator.layers)
    # BatchNorm after every generator layer except the output
    assert [any(isinstance(m, nn.BatchNorm2d) for m in row) for row in g_rows] == [True] * (len(g_rows) - 1) + [False]
    # BatchNorm after every discriminator layer except the input layer and the logit
    assert [any(isinstance(m, nn.BatchNorm2d) for m in row) for row in d_rows] == (
        [False] + [True] * (len(d_rows) - 2) + [False])

    # G: ReLU between layers, tanh at the output, nothing else
    g_acts = [m for m in leaves(generator) if not isinstance(m, (*CONVS, Project, nn.BatchNorm2d))]
    assert [type(m) for m in g_acts] == [nn.ReLU] * (len(g_rows) - 1) + [nn.Tanh]
    assert isinstance(leaves(generator)[-1], nn.Tanh)

    # D: LeakyReLU(0.2) between layers and a raw logit: the last module is the convolution itself
    d_acts = [m for m in leaves(discriminator) if not isinstance(m, (*CONVS, nn.BatchNorm2d))]
    assert [type(m) for m in d_acts] == [nn.LeakyReLU] * (len(d_rows) - 1)
    assert all(m.negative_slope == 0.2 for m in d_acts)
    assert isinstance(leaves(discriminator)[-1], nn.Conv2d)
    assert not [m for m in discriminator.modules() if isinstance(m, nn.Sigmoid)]


def test_dcgan_discriminator_returns_the_last_convolution_unchanged():
    _, discriminator = build_models(ModelConfig("dcgan", 28, 1, width=8), seed=0)
    last_conv = discriminator.layers[-1][0]
    seen = []
    handle = last_conv.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            last_conv.bias.fill_(-5.0)  # a probability would be in (0, 1); a logit can be negative
            logits = discriminator(torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    finally:
        handle.remove()
    torch.testing.assert_close(logits, seen[0].flatten())
    assert (logits < -4).all()


def test_dcgan_initial_weights_follow_radford():
    generator, discriminator = build_models(ModelConfig("dcgan", 64, 3, width=16), seed=0)
    big = generator.layers[1][0].weight  # ConvTranspose2d(256, 128, 4): 524,288 weights
    assert big.numel() > 500_000
    assert abs(big.mean().item()) < 1e-3
    assert big.std().item() == pytest.approx(0.02, rel=0.02)
    for network in (generator, discriminator):
        for module in network.modules():
            if isinstance(module, (*CONVS, nn.Linear)):
                assert module.weight.std().item() == pytest.approx(0.02, rel=0.25), module
                assert torch.count_nonzero(module.bias) == 0
    scales = torch.cat([m.weight.detach() for net in (generator, discriminator) for m in net.modules()
                        if isinstance(m, nn.BatchNorm2d)])
    assert scales.numel() > 500
    assert scales.mean().item() == pytest.approx(1.0, abs=0.005)
    assert scales.std().item() == pytest.approx(0.02, rel=0.15)
    biases = [m.bias for net in (generator, discriminator) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.count_nonzero(b) == 0 for b in biases)


# --- width and channels ---------------------------------------------------------------------------------


def test_dcgan28_width_scales_the_filters():
    generator, discriminator = build_models(ModelConfig("dcgan", 28, 1, width=16), seed=0)
    assert [layer.out_channels for layer in first_modules(generator)] == [64, 32, 16, 1]
    assert [layer.out_channels for layer in first_modules(discriminator)] == [16, 32, 64, 1]


@pytest.mark.parametrize("size", [28, 64])
def test_dcgan_three_channels(size):
    width = 32 if size == 28 else 8
    generator, discriminator = build_models(ModelConfig("dcgan", size, 3, width=width), seed=0)
    assert first_modules(generator)[-1].out_channels == 3 and first_modules(discriminator)[0].in_channels == 3
    generator.eval()
    discriminator.eval()
    with torch.no_grad():
        images = generator(torch.randn(2, generator.z_dim, generator=torch.Generator().manual_seed(0)))
        assert images.shape == (2, 3, size, size)
        assert discriminator(images).shape == (2,)


# --- the MLP GAN (SPEC.md section 3) ------------------------------------------------------------------


def test_mlp28_is_the_course_notebook():
    generator, discriminator = build_models(ModelConfig("mlp", 28, 1), seed=0)
    g_linears = [(m.in_features, m.out_features) for m in first_modules(generator)]
    assert g_linears == [(100, 256), (256, 512), (512, 1024), (1024, 784)]
    for row in list(generator.layers)[:-1]:
        assert [type(m) for m in row] == [nn.Linear, nn.BatchNorm1d, nn.LeakyReLU]
        assert row[2].negative_slope == 0.2
    assert [type(m) for m in generator.layers[-1]] == [nn.Linear, nn.Tanh]

    d_linears = [(m.in_features, m.out_features) for m in first_modules(discriminator)]
    assert d_linears == [(784, 512), (512, 256), (256, 1)]
    for row in list(discriminator.layers)[:-1]:
        assert [type(m) for m in row] == [nn.Linear, nn.LeakyReLU]
        assert row[1].negative_slope == 0.2
    assert [type(m) for m in discriminator.layers[-1]] == [nn.Linear]  # a raw logit

    generator.eval()
    with torch.no_grad():
        images = generator(torch.randn(3, 100, generator=torch.Generator().manual_seed(0)))
        assert images.shape == (3, 1, 28, 28)
        assert discriminator(images).shape == (3,)


def test_mlp_generalises_to_32x32x3():
    generator, discriminator = build_models(ModelConfig("mlp", 32, 3), seed=0)
    assert first_modules(generator)[-1].out_features == 3 * 32 * 32 == 3072
    assert first_modules(discriminator)[0].in_features == 3072
    generator.eval()
    with torch.no_grad():
        images = generator(torch.randn(2, 100, generator=torch.Generator().manual_seed(0)))
        assert images.shape == (2, 3, 32, 32)
        assert discriminator(images).shape == (2,)


# --- outputs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [ModelConfig("dcgan", 28, 1), ModelConfig("mlp", 28, 1)], ids=["dcgan", "mlp"])
def test_generator_outputs_lie_in_minus_one_one_and_discriminator_gives_one_logit(config):
    generator, discriminator = build_models(config, seed=0)
    z = torch.randn(8, generator.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        generator.layers[-1][0].weight.mul_(1000)  # pre-activations far beyond [-1, 1]
        images = generator(z)  # train mode: BatchNorm normalises the batch
    assert images.min() >= -1 and images.max() <= 1
    assert images.min() < -0.99 and images.max() > 0.99  # saturated at both ends, so the bound was tested
    assert discriminator(images).shape == (8,)


def test_toy_maps_noise_to_points():
    generator, discriminator = build_models(ModelConfig("toy"), seed=0)
    z = torch.randn(5, generator.z_dim, generator=torch.Generator().manual_seed(0))
    points = generator(z)
    assert points.shape == (5, 2)
    assert discriminator(points).shape == (5,)


# --- reproducibility --------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [ModelConfig("dcgan", 28, 1, width=8), ModelConfig("mlp", 28, 1, width=16),
                                    ModelConfig("toy")], ids=["dcgan", "mlp", "toy"])
def test_seeded_construction_is_reproducible(config):
    def parameters(seed: int) -> list[torch.Tensor]:
        generator, discriminator = build_models(config, seed=seed)
        return [p.detach().clone() for net in (generator, discriminator) for p in net.parameters()]

    first, again, other = parameters(3), parameters(3), parameters(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    weights = [a for a in first if a.dim() > 1]
    assert all(not torch.equal(a, c) for a, c in zip(weights, [c for c in other if c.dim() > 1], strict=True))


def test_seeded_construction_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_models(ModelConfig("toy", width=8), seed=3)
    torch.testing.assert_close(torch.rand(3), expected)


# --- describe -----------------------------------------------------------------------------------------


def test_describe_dcgan28_shapes_parameters_and_flops(dcgan28):
    g_desc, d_desc = describe(ModelConfig("dcgan", 28, 1))
    assert [row.output_shape for row in g_desc.rows] == [(128, 4, 4), (64, 7, 7), (32, 14, 14), (1, 28, 28)]
    assert [row.output_shape for row in d_desc.rows] == [(32, 14, 14), (64, 7, 7), (128, 4, 4), (1, 1, 1)]
    assert [row.layer for row in g_desc.rows] == ["ConvTranspose2d(50, 128, 4, 1, 0)",
                                                 "ConvTranspose2d(128, 64, 3, 2, 1)",
                                                 "ConvTranspose2d(64, 32, 4, 2, 1)",
                                                 "ConvTranspose2d(32, 1, 4, 2, 1)"]
    generator, discriminator = dcgan28
    assert g_desc.parameters == sum(p.numel() for p in generator.parameters())
    assert d_desc.parameters == sum(p.numel() for p in discriminator.parameters())
    assert [row.parameters for row in d_desc.rows] == [sum(p.numel() for p in row.parameters())
                                                      for row in discriminator.layers]

    # a convolution: 2 * C_in * C_out * k * k * H_out * W_out
    assert d_desc.rows[0].flops == 2 * 1 * 32 * 4 * 4 * 14 * 14
    for row, (c_in, c_out, k, side) in zip(d_desc.rows, [(1, 32, 4, 14), (32, 64, 4, 7), (64, 128, 3, 4),
                                                         (128, 1, 4, 1)]):
        assert row.flops == 2 * c_in * c_out * k * k * side * side
    # a transposed convolution: 2 * C_in * C_out * k * k * H_in * W_in
    assert g_desc.rows[0].flops == 2 * 50 * 128 * 4 * 4 * 1 * 1
    assert g_desc.flops == sum(row.flops for row in g_desc.rows)


def test_cli_describe_dcgan64_prints_every_layer_and_the_totals(dcgan64, monkeypatch):
    # a wide console so no cell wraps, whatever terminal the tests run in
    monkeypatch.setattr(cli, "console", Console(width=200, color_system=None))
    result = CliRunner().invoke(cli.app, ["describe", "--model", "dcgan", "--image-size", "64"])
    assert result.exit_code == 0, result.output
    for text in ["Linear(100, 16384) -> reshape 1024x4x4", "ConvTranspose2d(1024, 512, 4, 2, 1)",
                 "ConvTranspose2d(512, 256, 4, 2, 1)", "ConvTranspose2d(256, 128, 4, 2, 1)",
                 "ConvTranspose2d(128, 3, 4, 2, 1)", "Conv2d(3, 64, 4, 2, 1)", "Conv2d(64, 128, 4, 2, 1)",
                 "Conv2d(128, 256, 4, 2, 1)", "Conv2d(256, 512, 4, 2, 1)", "Conv2d(512, 1, 4, 1, 0)",
                 "1024x4x4", "512x8x8", "256x16x16", "128x32x32", "3x64x64", "64x32x32", "512x4x4", "1x1x1"]:
        assert text in result.output, text
    generator, discriminator = dcgan64
    for network in (generator, discriminator):
        assert f"{sum(p.numel() for p in network.parameters()):,}" in result.output


@pytest.mark.parametrize("model", ["dcgan", "mlp"])
def test_describe_28x28_is_grayscale_unless_channels_say_otherwise(model, monkeypatch):
    """The lectures' 28x28 tables are MNIST's: 1 channel by default, 3 with --channels 3; other sizes RGB."""
    g_gray, d_gray = describe(ModelConfig(model, 28))
    g_rgb, d_rgb = describe(ModelConfig(model, 28, 3))
    pixels = 28 * 28
    if model == "dcgan":
        assert (g_gray.rows[-1].output_shape, d_gray.input_shape) == ((1, 28, 28), (1, 28, 28))
        assert (g_rgb.rows[-1].output_shape, d_rgb.input_shape) == ((3, 28, 28), (3, 28, 28))
        assert d_gray.rows[0].layer == "Conv2d(1, 32, 4, 2, 1)" and d_rgb.rows[0].layer == "Conv2d(3, 32, 4, 2, 1)"
    else:
        assert (g_gray.rows[-1].output_shape, d_gray.input_shape) == ((pixels,), (pixels,))
        assert (g_rgb.rows[-1].output_shape, d_rgb.input_shape) == ((3 * pixels,), (3 * pixels,))
    assert describe(ModelConfig(model, 32))[1].input_shape in ((3, 32, 32), (3 * 32 * 32,))

    monkeypatch.setattr(cli, "console", Console(width=200, color_system=None))
    for args, channels in [((), 1), (("--channels", "3"), 3), (("--channels", "1"), 1)]:
        result = CliRunner().invoke(cli.app, ["describe", "--model", model, "--image-size", "28", *args])
        assert result.exit_code == 0, result.output
        first = "Conv2d({}, 32, 4, 2, 1)" if model == "dcgan" else "Linear({}, 512)"
        assert first.format(channels * pixels if model == "mlp" else channels) in result.output, (args, result.output)
        shown = f"{channels}x28x28" if model == "dcgan" else f"{channels * pixels}"
        assert f"discriminator (input {shown})" in result.output, (args, result.output)


@pytest.mark.parametrize("config", [ModelConfig("dcgan", size, 3) for size in (28, 32, 64, 128)] + [
    ModelConfig("dcgan", 28, 1, spectral_norm=True), ModelConfig("mlp", 28, 1), ModelConfig("mlp", 32, 3, d_norm="layer"),
    ModelConfig("toy"),
], ids=["dcgan28", "dcgan32", "dcgan64", "dcgan128", "dcgan28-sn", "mlp28", "mlp32-layer", "toy"])
def test_describe_counts_the_flops_torch_flop_counter_counts(config):
    """describe counts FLOPs from the layers' shapes (no torch._dynamo import); PyTorch's FlopCounterMode agrees."""
    from torch.utils.flop_counter import FlopCounterMode

    generator, discriminator = build_models(config)
    examples = (torch.zeros(1, generator.z_dim), torch.zeros(1, *architecture(config).sample_shape))
    for description, network, example in zip(describe(config), (generator, discriminator), examples):
        network.eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            network(example)
        counts = counter.get_flop_counts()
        expected = [sum(counts.get(f"{type(network).__name__}.layers.{index}", {}).values())
                    for index in range(len(network.layers))]
        assert [row.flops for row in description.rows] == expected, description.name
        assert all(flops > 0 for flops in expected)


# --- Beyond the seed models: normalization choices, spectral norm, class-conditional pairs ---------------------


def test_d_norm_picks_batch_layer_or_no_normalization_in_d_only():
    def norms(network: nn.Module) -> set[type]:
        return {type(m) for m in network.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm))}

    for d_norm, expected in (("batch", {nn.BatchNorm2d}), ("layer", {nn.GroupNorm}), ("none", set())):
        generator, discriminator = build_models(ModelConfig("dcgan", 28, 1, d_norm=d_norm), seed=0)
        assert norms(discriminator) == expected
        assert norms(generator) == {nn.BatchNorm2d}  # G keeps the seed table's BatchNorm
    _, mlp_d = build_models(ModelConfig("mlp", 28, 1, d_norm="layer"), seed=0)
    assert norms(mlp_d) == set()  # the MLP D of the lectures has no normalized row to change


def test_spectral_norm_bounds_every_d_weight_by_one():
    _, discriminator = build_models(ModelConfig("dcgan", 28, 1, width=8, spectral_norm=True, d_norm="none"), seed=0)
    x = torch.randn(16, 1, 28, 28)
    for _ in range(30):  # each training-mode forward runs one power iteration per layer
        discriminator(x)
    layers = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert len(layers) == 4
    for layer in layers:
        assert nn.utils.parametrize.is_parametrized(layer, "weight")
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=1e-3)
        raw = torch.linalg.matrix_norm(layer.parametrizations.weight.original.detach().flatten(1), ord=2)
        assert raw.item() != pytest.approx(1.0, abs=1e-2)  # the bound comes from the normalization


def test_spectral_norm_makes_the_toy_discriminator_1_lipschitz():
    _, discriminator = build_models(ModelConfig("toy", spectral_norm=True), seed=0)
    for _ in range(50):
        discriminator(torch.randn(64, 2))
    discriminator.eval()
    with torch.no_grad():
        x, y = torch.randn(2000, 2) * 3, torch.randn(2000, 2) * 3
        ratios = (discriminator(x) - discriminator(y)).abs() / (x - y).norm(dim=1)
    assert ratios.max().item() <= 1.0 + 1e-3
    _, plain = build_models(ModelConfig("toy"), seed=0)
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in plain.modules())


def test_conditional_generator_embeds_the_label_in_its_input():
    generator, discriminator = build_models(ModelConfig("dcgan", 28, 1, conditional=True, num_classes=10), seed=0)
    assert generator.layers[0][0].in_channels == 2 * 50  # z and the label's embedding of z's size
    generator.eval()
    z = torch.randn(4, 50)
    with torch.no_grad():
        threes, sevens = generator(z, torch.full((4,), 3)), generator(z, torch.full((4,), 7))
    assert threes.shape == (4, 1, 28, 28) and not torch.allclose(threes, sevens)
    with pytest.raises(ValueError, match="labels"):
        generator(z)


def test_projection_discriminator_adds_the_label_embedding_dot_the_features():
    _, discriminator = build_models(ModelConfig("dcgan", 28, 1, width=4, conditional=True, num_classes=10), seed=0)
    discriminator.eval()
    x, labels = torch.randn(3, 1, 28, 28), torch.tensor([0, 4, 9])
    with torch.no_grad():
        features = discriminator.layers[:-1](x)  # (3, 16, 4, 4): the input of the last, linear, row
        expected = discriminator.layers[-1](features).view(3) + (discriminator.projection.weight[labels]
                                                                  * features.flatten(1)).sum(1)
        assert torch.allclose(discriminator(x, labels), expected, atol=1e-6)
    assert discriminator.projection.weight.shape == (10, 16 * 4 * 4)


def test_a_conditional_model_needs_its_class_count():
    with pytest.raises(ConfigError, match="number of classes"):
        build_models(ModelConfig("dcgan", 28, 1, conditional=True))
