"""G's moving average: the kept-list update is torch's AveragedModel update, bit for bit."""

import copy

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ganforge.algorithm.ema import averaging_step, ema_with_warmup


def _network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.LeakyReLU(0.2), nn.Linear(5, 2))


def _train_a_little(network: nn.Module, seed: int) -> None:
    """Move the weights and BatchNorm's running statistics and batch counter, as a G step does."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator))
    network(torch.randn(8, 3, generator=generator))


def test_the_kept_list_step_equals_averaged_models_update():
    network = _network()
    reference = AveragedModel(network, multi_avg_fn=ema_with_warmup(0.9), use_buffers=True)
    mine = AveragedModel(network, multi_avg_fn=ema_with_warmup(0.9), use_buffers=True)
    step = averaging_step(mine, network)
    for seed in range(6):
        _train_a_little(network, seed)
        reference.update_parameters(network)
        step()
    assert int(mine.n_averaged) == int(reference.n_averaged) == 6
    for name, value in reference.module.state_dict().items():
        assert torch.equal(mine.module.state_dict()[name], value), name
    counter = dict(mine.module.named_buffers())["1.num_batches_tracked"]
    assert int(counter) == int(dict(network.named_buffers())["1.num_batches_tracked"]) == 6  # copied, not averaged
    assert not torch.equal(mine.module[0].weight, network[0].weight)  # averaged, not copied


def test_the_first_step_copies_and_a_loaded_average_keeps_its_count():
    network = _network()
    average = AveragedModel(network, multi_avg_fn=ema_with_warmup(0.9), use_buffers=True)
    step = averaging_step(average, network)
    _train_a_little(network, 0)
    step()
    assert all(torch.equal(a, b) for a, b in zip(average.module.state_dict().values(), network.state_dict().values()))
    # a checkpoint loads into the same tensors, so the kept lists see the loaded values
    saved = copy.deepcopy(average.module.state_dict())
    _train_a_little(network, 1)
    step()
    average.module.load_state_dict(saved)
    average.n_averaged.fill_(1)
    reference = AveragedModel(network, multi_avg_fn=ema_with_warmup(0.9), use_buffers=True)
    reference.module.load_state_dict(saved)
    reference.n_averaged.fill_(1)
    step()
    reference.update_parameters(network)
    assert all(torch.equal(a, b) for a, b in zip(average.module.state_dict().values(),
                                                  reference.module.state_dict().values()))


def test_a_mismatched_average_is_refused():
    with pytest.raises(ValueError, match="same tensors"):
        averaging_step(AveragedModel(_network(), multi_avg_fn=ema_with_warmup(0.9), use_buffers=True), nn.Linear(3, 5))
    with pytest.raises(ValueError, match="multi_avg_fn"):
        averaging_step(AveragedModel(_network(), use_buffers=True), _network())
