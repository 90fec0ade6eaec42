"""The toy's latent components (ganforge.models.components): the component bins, G's maths, gradients, config."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import ganforge
from ganforge import cli
from ganforge.config.resolve import resolve_model
from ganforge.config.schema import ModelConfig, RunConfig, apply_overrides
from ganforge.config.validate import MAX_COMPONENTS, validate
from ganforge.errors import ConfigError
from ganforge.models import build_models
from ganforge.models.components import component_of

runner = CliRunner()


def normal_quantile(p: float) -> float:
    return float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64)))


def test_each_component_is_one_k_quantile_bin_of_the_last_coordinate():
    quantiles = [0.05, 0.2, 0.3, 0.45, 0.55, 0.74, 0.76, 0.99]
    z = torch.tensor([normal_quantile(p) for p in quantiles] + [-50.0, 50.0])
    assert component_of(z, 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 0, 3]  # bins [0, .25), [.25, .5), ...
    assert component_of(z, 1).tolist() == [0] * 10


def test_components_are_equally_likely_under_the_gaussian_latent():
    z = torch.randn(400_000, generator=torch.Generator().manual_seed(0))
    shares = torch.bincount(component_of(z, 8), minlength=8) / len(z)
    assert torch.allclose(shares, torch.full((8,), 1 / 8), atol=0.002)  # 4.7 standard errors of a share


def toy_with_components(components: int = 4, z_dim: int = 3) -> torch.nn.Module:
    generator, _ = build_models(ModelConfig("toy", z_dim=z_dim, width=16, depth=2, components=components), seed=0)
    return generator


def test_the_component_adds_its_own_bias_to_the_first_layer_which_reads_the_other_coordinates():
    generator = toy_with_components(components=4, z_dim=3)
    first, hidden, last = (generator.layers[i][0] for i in range(3))
    assert first.in_features == 2, "z's last coordinate picks the component; the first layer reads the other two"
    z = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    rows = generator.component_bias.bias.weight[component_of(z[:, -1], 4)]
    by_hand = torch.relu(z[:, :2] @ first.weight.T + first.bias + rows)
    by_hand = last(torch.relu(hidden(by_hand)))
    torch.testing.assert_close(generator(z), by_hand)


def test_points_differ_between_components_and_not_within_one():
    generator = toy_with_components(components=4, z_dim=3)
    continuous = torch.randn(1, 2, generator=torch.Generator().manual_seed(2)).repeat(4, 1)
    last = torch.tensor([normal_quantile(p) for p in (0.1, 0.2, 0.6, 0.9)])[:, None]  # components 0, 0, 2, 3
    points = generator(torch.cat([continuous, last], dim=1))
    torch.testing.assert_close(points[0], points[1])
    assert not torch.allclose(points[0], points[2]) and not torch.allclose(points[2], points[3])


def test_only_the_components_drawn_get_a_gradient():
    generator = toy_with_components(components=4, z_dim=3)
    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(3))
    z[:, -1] = torch.where(torch.arange(16) % 2 == 0, normal_quantile(0.1), normal_quantile(0.9))  # components 0 and 3
    generator(z).square().sum().backward()
    norms = generator.component_bias.bias.weight.grad.norm(dim=1)
    assert norms[0] > 0 and norms[3] > 0
    assert norms[1] == 0 and norms[2] == 0


def test_the_component_biases_are_parameters_that_a_checkpoint_holds(tmp_path):
    keys = {"model": "toy", "data": "ring8", "width": 16, "batch_size": 32, "components": 8, "z_dim": 3,
            "tensorboard": False, "sample_every": 0}
    run = ganforge.train(out=tmp_path / "run", steps=3, show_progress=False, **keys).run_dir
    loaded = ganforge.load(run, device="cpu")
    assert loaded.generator.component_bias.bias.weight.shape == (8, 16)
    z = loaded.latents(2_000, seed=0)
    assert torch.equal(loaded.generate(z), loaded.sample(2_000, seed=0)), "sampling draws z, the component with it"


@pytest.mark.parametrize(("keys", "fragment"), [
    ({"model": "dcgan", "components": 4}, "--model dcgan takes --components 1"),
    ({"model": "toy", "components": 4, "z_dim": 1}, "leaves none for the points: use --z-dim 3"),
    ({"model": "toy", "components": 0}, "components must be at least 1, got 0"),
    ({"model": "toy", "components": MAX_COMPONENTS + 1}, "use about as many as the data has separate clusters"),
])
def test_components_that_cannot_work_are_one_line_errors(keys, fragment):
    with pytest.raises(ConfigError, match=fragment):
        validate(apply_overrides(RunConfig(), keys))


def test_components_are_off_unless_asked_and_the_toy_table_keeps_z_whole():
    assert resolve_model(ModelConfig("toy")).components == 1
    generator, _ = build_models(ModelConfig("toy"), seed=0)
    assert generator.component_bias is None and generator.layers[0][0].in_features == generator.z_dim == 2


def test_describe_shows_the_component_biases_in_the_first_row(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(cli.app, ["describe", "--model", "toy", "--components", "8", "--z-dim", "3"])
    assert result.exit_code == 0, result.output
    first_row = next(line for line in result.output.splitlines() if "Linear(2, 128)" in line)
    assert "+ bias of 1 of 8 components" in first_row
    assert "1,408" in first_row, "2 x 128 weights + 128 biases + 8 x 128 component biases"


def toy_pair(info_weight: float, pack: int = 1, components: int = 4) -> tuple[torch.nn.Module, torch.nn.Module]:
    return build_models(ModelConfig("toy", z_dim=3, width=16, depth=2, components=components, pack=pack,
                                    info_weight=info_weight), seed=0)


def test_info_weight_gives_d_a_component_head_of_k_logits_per_packed_sample():
    assert toy_pair(0.0)[1].component_classifier is None, "no head unless --info-weight asks for one"
    head = toy_pair(1.0, pack=2)[1].component_classifier
    assert (head.linear.in_features, head.linear.out_features) == (16, 2 * 4)


def test_the_head_gives_each_member_of_a_pack_its_own_logits_in_pack_order():
    head = toy_pair(1.0, pack=3)[1].component_classifier
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.copy_(torch.arange(12.0))
    logits = head(torch.zeros(2, 16))  # two packs of three samples
    assert logits.shape == (6, 4)
    assert logits[:, 0].tolist() == [0, 4, 8, 0, 4, 8], "pack members 0, 1, 2 of each pack, in order"


def test_d_with_a_head_scores_as_without_it_and_its_logits_read_the_last_hidden_features():
    _, plain = toy_pair(0.0)
    _, with_head = toy_pair(1.0)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(4))
    scores, logits = with_head(x, components=True)
    torch.testing.assert_close(scores, plain(x))  # the head is built after D's layers: the same initial D
    torch.testing.assert_close(with_head(x), scores)
    features = x
    for row in with_head.layers[:-1]:
        features = row[1](row[0](features))  # linear, then LeakyReLU(0.2)
    head = with_head.component_classifier.linear
    torch.testing.assert_close(logits, features @ head.weight.T + head.bias)


def test_asking_a_headless_d_for_component_logits_is_an_error():
    with pytest.raises(ValueError, match="no component head"):
        toy_pair(0.0)[1](torch.zeros(2, 2), components=True)


@pytest.mark.parametrize(("keys", "fragment"), [
    ({"model": "toy", "components": 4, "z_dim": 3, "info_weight": -1.0}, "must be 0 .off. or positive, got -1.0"),
    ({"model": "toy", "components": 4, "z_dim": 3, "info_weight": float("nan")}, "must be 0 .off. or positive"),
    ({"model": "toy", "components": 1, "info_weight": 1.0}, "add --components K"),
])
def test_an_info_weight_that_cannot_work_is_a_one_line_error(keys, fragment):
    with pytest.raises(ConfigError, match=fragment):
        validate(apply_overrides(RunConfig(), keys))


def test_an_info_weight_without_components_is_refused_once_the_presets_leave_none(tmp_path):
    with pytest.raises(ConfigError, match="this run has none: add --components K"):
        ganforge.train(out=tmp_path / "run", model="toy", data="ring8", preset="lecture", info_weight=1.0, steps=2,
                       show_progress=False, tensorboard=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_describe_refuses_an_info_weight_without_components():
    result = runner.invoke(cli.app, ["describe", "--model", "toy", "--info-weight", "1"])
    assert isinstance(result.exception, ConfigError) and "add --components K" in str(result.exception)


def test_describe_shows_the_component_head_on_ds_last_row(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(cli.app, ["describe", "--model", "toy", "--components", "8", "--z-dim", "3",
                                     "--info-weight", "1"])
    assert result.exit_code == 0, result.output
    last_row = [line for line in result.output.splitlines() if "Linear(128, 1)" in line][-1]
    assert "+ component head Linear(128, 8)" in last_row
    assert "1,161" in last_row, "128 + 1 for the score, 128 x 8 + 8 for the component logits"
    assert "2,304" in last_row, "2 x 128 multiply-adds for the score, 2 x 128 x 8 for the component logits"
