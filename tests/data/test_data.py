"""Built-in data sources and batching: the Gaussian mixtures, the embedded digits, TensorData, load_data."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from sklearn.datasets import load_digits

from ganforge.config.schema import DataConfig
from ganforge.data import MixtureData, TensorData, load_data, mixture_modes, with_absolute_path
from ganforge.data.digits import load_digit_images
from ganforge.errors import DataError

CPU = torch.device("cpu")
DIGITS_COUNT = 1797
BUILTINS = ("digits", "mnist", "fashion-mnist", "cifar10", "celeba", "stacked-digits", "ring8", "grid25")


def indexed_data(count: int, seed: int = 0) -> TensorData:
    """`count` one-number samples whose value tells their index: sample i is (i / count,)."""
    samples = (torch.arange(count, dtype=torch.float32) / count).unsqueeze(1)  # (N, 1) in [0, 1)
    return TensorData(samples, "points", seed, CPU, f"{count} indexed samples")


def indices(batch: torch.Tensor, count: int) -> list[int]:
    """The sample indices of a batch of `indexed_data(count)`."""
    return (batch[:, 0] * count).round().long().tolist()


# --- Gaussian mixtures ---------------------------------------------------------------------------


def test_ring8_has_8_evenly_spaced_modes_on_the_unit_circle():
    modes, std = mixture_modes("ring8")
    assert modes.shape == (8, 2) and std == 0.01
    assert torch.allclose(modes.norm(dim=1), torch.ones(8), atol=1e-6)
    angles = torch.atan2(modes[:, 1], modes[:, 0]).double().remainder(2 * math.pi).sort().values
    gaps = torch.diff(torch.cat([angles, angles[:1] + 2 * math.pi]))
    assert torch.allclose(gaps, torch.full((8,), 2 * math.pi / 8, dtype=torch.float64), atol=1e-6)


def test_grid25_has_the_25_points_of_the_even_grid():
    modes, std = mixture_modes("grid25")
    assert modes.shape == (25, 2) and std == 0.05
    assert sorted(map(tuple, modes.tolist())) == sorted(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_samples_lie_near_the_modes_and_cover_them_evenly(name):
    data = load_data(DataConfig(data=name), None, None, seed=0, device=CPU)
    assert isinstance(data, MixtureData) and data.kind == "points"
    count = 10_000
    points = data.next_batch(count)
    assert points.shape == (count, 2) and points.dtype == torch.float32
    modes, std = mixture_modes(name)
    distances = torch.cdist(points, modes)  # (N, M)
    nearest_distance, nearest = distances.min(dim=1)
    assert nearest_distance.max() < 6 * std, "every point within 6 std of a mode"
    per_mode = torch.bincount(nearest, minlength=len(modes)).double()
    expected = count / len(modes)
    assert per_mode.min() > 0.8 * expected and per_mode.max() < 1.2 * expected, per_mode.tolist()


def test_mixture_stream_is_seeded_and_resumes_from_its_state():
    first, same, other = (load_data(DataConfig(data="ring8"), None, None, seed=seed, device=CPU) for seed in (3, 3, 4))
    batch = first.next_batch(64)
    assert torch.equal(batch, same.next_batch(64))
    assert not torch.equal(batch, other.next_batch(64))
    state = load_tensors(save_tensors(first.state_dict()))  # as a checkpoint stores it
    expected = first.next_batch(32)
    other.load_state_dict(state)
    assert torch.equal(other.next_batch(32), expected)


def test_unknown_mixture_name_is_refused():
    with pytest.raises(ValueError, match="ring9"):
        mixture_modes("ring9")


# --- digits --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "channels"), [(28, 1), (28, 3), (64, 1), (64, 3)])
def test_digits_are_1797_uint8_images_at_the_requested_size(size, channels):
    images, labels = load_digit_images(size, channels)
    assert images.shape == (DIGITS_COUNT, channels, size, size) and images.dtype == torch.uint8
    assert labels.shape == (DIGITS_COUNT,) and labels.dtype == torch.int64
    assert sorted(labels.unique().tolist()) == list(range(10))
    assert torch.equal(labels, torch.as_tensor(load_digits().target))
    assert images.min() == 0 and images.max() > 200, "black background, bright ink"
    assert images.float().mean() < 100, "white ink on black, like MNIST"
    if channels == 3:
        assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])


def test_digits_at_their_natural_size_are_the_scikit_learn_pixels_scaled_to_255():
    images, _ = load_digit_images(8, 1)
    expected = np.round(load_digits().images * (255.0 / 16)).astype(np.uint8)
    assert np.array_equal(images[:, 0].numpy(), expected)


@pytest.mark.parametrize(("size", "channels"), [(28, 1), (64, 3)])
def test_digit_batches_are_float_images_in_minus_one_one(size, channels):
    data = load_data(DataConfig(data="digits"), size, channels, seed=0, device=CPU)
    assert len(data) == DIGITS_COUNT and data.kind == "images" and data.sample_shape == (channels, size, size)
    batch = data.next_batch(16)
    assert batch.shape == (16, channels, size, size) and batch.dtype == torch.float32
    assert batch.min() == -1.0 and batch.max() <= 1.0
    pixels = (batch + 1) * 127.5
    assert torch.allclose(pixels, pixels.round(), atol=1e-3), "uint8 values mapped linearly to [-1, 1]"


def test_digits_default_to_their_natural_28x28_grayscale():
    data = load_data(DataConfig(data="digits"), None, None, seed=0, device=CPU)
    assert data.sample_shape == (1, 28, 28)


# --- TensorData: epochs of shuffled full batches -------------------------------------------------


def test_batches_within_an_epoch_are_disjoint_and_cover_all_full_batches():
    count, batch_size = 10, 3
    data = indexed_data(count)
    assert data.batches_per_epoch(batch_size) == 3
    order = data.order.tolist()
    batches = [indices(data.next_batch(batch_size), count) for _ in range(3)]
    seen = [index for batch in batches for index in batch]
    assert all(len(batch) == batch_size for batch in batches)
    assert len(set(seen)) == (count // batch_size) * batch_size == 9, "disjoint and distinct"
    assert seen == order[:9]
    assert data.epoch == 0


def test_short_last_batch_is_dropped_and_a_new_permutation_starts_the_next_epoch():
    count, batch_size = 10, 3
    data = indexed_data(count)
    first_order = data.order.tolist()
    first_epoch = [indices(data.next_batch(batch_size), count) for _ in range(3)]
    next_batch = data.next_batch(batch_size)
    assert next_batch.shape == (batch_size, 1), "never a short batch of the 1 sample left over"
    assert data.epoch == 1
    second_order = data.order.tolist()
    assert sorted(second_order) == list(range(count)) and second_order != first_order
    second_epoch = [indices(next_batch, count)] + [indices(data.next_batch(batch_size), count) for _ in range(2)]
    assert [i for b in second_epoch for i in b] == second_order[:9]
    assert len({i for b in second_epoch for i in b}) == 9
    assert second_epoch != first_epoch


def test_an_epoch_of_a_divisible_size_covers_every_sample():
    data = indexed_data(12)
    seen = [i for _ in range(3) for i in indices(data.next_batch(4), 12)]
    assert sorted(seen) == list(range(12))


def test_restored_state_continues_exactly_like_an_uninterrupted_stream():
    count, batch_size = 10, 3
    stream = indexed_data(count, seed=5)
    for _ in range(2):
        stream.next_batch(batch_size)
    state = load_tensors(save_tensors(stream.state_dict()))  # as a checkpoint stores it
    uninterrupted = [stream.next_batch(batch_size) for _ in range(4)]  # crosses into the next epoch
    assert stream.epoch == 1

    restored = indexed_data(count, seed=99)  # another seed: everything must come from the state
    restored.next_batch(batch_size)
    restored.load_state_dict(state)
    assert restored.epoch == 0
    resumed = [restored.next_batch(batch_size) for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted, resumed, strict=True))
    assert restored.epoch == 1


def test_a_stream_state_names_how_other_samples_differ():
    state = load_tensors(save_tensors(indexed_data(50).state_dict()))
    assert indexed_data(50, seed=3).change_since(state) is None, "the seed does not change the data"
    assert indexed_data(39).change_since(state) == "the data has 39 points, the run trained on 50"
    assert indexed_data(55).change_since(state) == "the data has 55 points, the run trained on 50"
    wider = TensorData(torch.zeros(50, 2), "points", 0, CPU, "pairs")
    assert wider.change_since(state) == "the data's points have shape 2, the run trained on 1"
    moved = TensorData(indexed_data(50).samples + 0.5, "points", 0, CPU, "shifted")
    assert moved.change_since(state) == ("the data's 50 points are not the 50 the run trained on "
                                         "(contents or order differ)")
    before_fingerprints = {key: state[key] for key in ("rng", "order", "position", "epoch")}
    assert moved.change_since(before_fingerprints) is None, "an old checkpoint knows only the count"
    assert indexed_data(39).change_since(before_fingerprints) == "the data has 39 points, the run trained on 50"


@pytest.mark.parametrize("count", [39, 55])
def test_a_state_of_other_samples_starts_a_new_epoch_of_these_with_its_random_stream(count):
    """Resuming on changed data (--allow-data-change) must not index the old order: 41 of 39 was an IndexError."""
    saved = indexed_data(50, seed=5)
    for _ in range(4):
        saved.next_batch(10)  # position 40 of 50
    state = load_tensors(save_tensors(saved.state_dict()))
    changed = indexed_data(count, seed=99)
    changed.load_state_dict(state)
    assert (changed.epoch, changed.position) == (1, 0)
    expected = torch.Generator()
    expected.set_state(state["rng"])
    assert torch.equal(changed.order, torch.randperm(count, generator=expected)), "drawn from the saved stream"
    seen = torch.cat([changed.next_batch(10) for _ in range(count // 10)])
    assert len(set(indices(seen, count))) == len(seen) and max(indices(seen, count)) < count


def test_a_relative_data_path_becomes_absolute_and_is_kept_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resolved = with_absolute_path(DataConfig(data="photos/../faces", data_root="cache"))
    assert resolved == DataConfig(data=str(tmp_path / "faces"), data_as_given="photos/../faces",
                                  data_root=str(tmp_path / "cache"))
    assert with_absolute_path(resolved) == resolved, "resolving twice changes nothing"
    home = with_absolute_path(DataConfig(data="~/faces"))
    assert home.data == str(Path.home() / "faces") and home.data_as_given == "~/faces"
    for name in BUILTINS:
        assert with_absolute_path(DataConfig(data=name)) == DataConfig(data=name), "a built-in stays a name"
    assert with_absolute_path(DataConfig(data=str(tmp_path))) == DataConfig(data=str(tmp_path))


def test_same_seed_gives_the_same_batches_and_another_seed_other_batches():
    first, same, other = indexed_data(20, seed=1), indexed_data(20, seed=1), indexed_data(20, seed=2)
    a = torch.cat([first.next_batch(6) for _ in range(7)])
    b = torch.cat([same.next_batch(6) for _ in range(7)])
    c = torch.cat([other.next_batch(6) for _ in range(7)])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_uint8_samples_come_out_as_floats_in_minus_one_one():
    samples = torch.tensor([0, 255, 128], dtype=torch.uint8).reshape(3, 1, 1, 1)
    data = TensorData(samples, "images", 0, CPU, "three pixels")
    batch = data.next_batch(3)
    assert batch.dtype == torch.float32
    assert sorted(batch.flatten().tolist()) == pytest.approx([-1.0, 128 / 127.5 - 1, 1.0], abs=1e-6)


def test_batch_larger_than_the_data_names_both_sizes():
    data = indexed_data(10)
    with pytest.raises(DataError, match=r"batch size 11 .*10 samples"):
        data.next_batch(11)


# --- load_data -----------------------------------------------------------------------------------


def test_unknown_source_that_is_not_a_path_lists_the_builtins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so the name cannot be a relative path
    with pytest.raises(DataError) as raised:
        load_data(DataConfig(data="no-such-data"), None, None, seed=0, device=CPU)
    message = str(raised.value)
    assert "no-such-data" in message and "\n" not in message
    for name in BUILTINS:
        assert name in message
