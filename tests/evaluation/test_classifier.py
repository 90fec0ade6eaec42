"""The digit classifier ganforge trains itself: accuracy, its cache, its inputs, and the label statistics."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import ganforge.evaluation.metrics.classifier as classifier_module
from ganforge.data.digits import load_digit_images
from ganforge.errors import GanforgeError
from ganforge.evaluation.metrics.classifier import (
    CLASSIFIER_VERSION,
    FEATURE_DIM,
    DigitClassifier,
    TrainingRecipe,
    class_histogram,
    classes_covered,
    classifier_paths,
    classifier_score,
    held_out_split,
    kl_to_uniform,
    load_or_train_digit_classifier,
    random_shifts,
    train_digit_classifier,
)

pytestmark = pytest.mark.slow  # trains the digit classifier


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the classifier is trained."""

    def refuse(*args: object, **kwargs: object) -> DigitClassifier:
        raise AssertionError("the digit classifier was retrained")

    monkeypatch.setattr(classifier_module, "train_digit_classifier", refuse)


def digits_in_unit_range() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_digit_images(28, 1)
    return images.float() / 127.5 - 1, labels


# --- accuracy and the cache ----------------------------------------------------------------------


def test_classifier_reaches_97_percent_on_held_out_digits_and_records_it(digit_classifier, classifier_cache):
    assert digit_classifier.accuracy >= 0.97
    images, labels = digits_in_unit_range()
    _, held_out = held_out_split(labels, TrainingRecipe().held_out_fraction, TrainingRecipe().seed)
    predicted = digit_classifier.predict(images[held_out])
    assert float((predicted == labels[held_out]).double().mean()) == pytest.approx(digit_classifier.accuracy)
    weights, info_path = classifier_paths(classifier_cache)
    assert weights.parent == classifier_cache / "classifiers" and weights.suffix == ".safetensors"
    info = json.loads(info_path.read_text())
    assert info["held_out_accuracy"] == digit_classifier.accuracy
    assert info["version"] == CLASSIFIER_VERSION and info["recipe"]["seed"] == 0
    assert not list(weights.parent.glob("*.tmp"))  # atomic writes leave no temporary files


def test_a_cached_classifier_is_loaded_not_retrained(classifier_cache, digit_classifier, no_training):
    weights, info_path = classifier_paths(classifier_cache)
    before = (weights.stat().st_mtime_ns, info_path.stat().st_mtime_ns)
    again = load_or_train_digit_classifier(classifier_cache)
    assert again.accuracy == digit_classifier.accuracy
    for (name, a), (_, b) in zip(again.state_dict().items(), digit_classifier.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert (weights.stat().st_mtime_ns, info_path.stat().st_mtime_ns) == before


def _flip_a_weight_byte(weights: Path, info: Path) -> None:
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # inside the last tensor: still a valid file, but not the recorded weights
    weights.write_bytes(bytes(data))


def _truncate_weights(weights: Path, info: Path) -> None:
    weights.write_bytes(weights.read_bytes()[:100])


def _break_json(weights: Path, info: Path) -> None:
    info.write_text(info.read_text()[:20])


def _old_version(weights: Path, info: Path) -> None:
    values = json.loads(info.read_text())
    values["version"] = CLASSIFIER_VERSION - 1
    info.write_text(json.dumps(values))


def _weights_missing(weights: Path, info: Path) -> None:
    weights.unlink()


@pytest.mark.parametrize("damage", [_flip_a_weight_byte, _truncate_weights, _break_json, _old_version,
                                    _weights_missing],
                         ids=["flipped-byte", "truncated", "broken-json", "old-version", "weights-missing"])
def test_a_damaged_cache_is_retrained_and_rewritten(damage, classifier_cache, digit_classifier, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    shutil.copytree(classifier_cache, cache)
    damage(*classifier_paths(cache))
    calls = []

    def train(recipe: TrainingRecipe, on_epoch=None) -> DigitClassifier:  # stands in for the 5-second training
        calls.append(recipe)
        return digit_classifier

    monkeypatch.setattr(classifier_module, "train_digit_classifier", train)
    with pytest.warns(UserWarning, match="unusable.*retraining"):
        retrained = load_or_train_digit_classifier(cache)
    assert calls == [TrainingRecipe()] and retrained.accuracy == digit_classifier.accuracy
    reloaded = load_or_train_digit_classifier(cache)  # the rewritten cache loads without training
    assert len(calls) == 1
    assert torch.equal(reloaded.net.head.weight, digit_classifier.net.head.weight)


def test_training_is_deterministic_and_refuses_a_weak_classifier(monkeypatch):
    quick = TrainingRecipe(epochs=1, seed=3)
    monkeypatch.setattr(classifier_module, "MIN_HELD_OUT_ACCURACY", 0.0)
    first, second = train_digit_classifier(quick), train_digit_classifier(quick)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    monkeypatch.setattr(classifier_module, "MIN_HELD_OUT_ACCURACY", 1.01)
    with pytest.raises(GanforgeError, match=r"held-out accuracy, below the 101%"):
        train_digit_classifier(quick)


def test_training_leaves_the_global_rng_alone(monkeypatch):
    monkeypatch.setattr(classifier_module, "MIN_HELD_OUT_ACCURACY", 0.0)
    state = torch.get_rng_state()
    train_digit_classifier(TrainingRecipe(epochs=1))
    assert torch.equal(torch.get_rng_state(), state)


# --- inputs ----------------------------------------------------------------------------------------


def test_features_and_probabilities_have_the_documented_shapes(digit_classifier):
    images, _ = digits_in_unit_range()
    features, probabilities = digit_classifier.features(images[:50]), digit_classifier.probabilities(images[:50])
    assert features.shape == (50, FEATURE_DIM) and features.dtype == torch.float32 and (features >= 0).all()
    assert probabilities.shape == (50, 10)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(50), atol=1e-5)


def test_features_are_scaled_to_mean_square_one_on_the_digits(digit_classifier):
    images, _ = digits_in_unit_range()
    assert float(digit_classifier.features(images).square().mean()) == pytest.approx(1.0, rel=0.05)


def test_uint8_rgb_and_other_sizes_are_understood(digit_classifier):
    uint8, labels = load_digit_images(28, 1)
    floats = uint8.float() / 127.5 - 1
    assert torch.allclose(digit_classifier.features(uint8[:64]), digit_classifier.features(floats[:64]), atol=1e-5)
    rgb, _ = load_digit_images(28, 3)  # gray repeated: its luma is the gray
    assert torch.allclose(digit_classifier.features(rgb[:64]), digit_classifier.features(uint8[:64]), atol=1e-4)
    large, _ = load_digit_images(64, 3)  # resized back to 28x28 inside
    agree = (digit_classifier.predict(large) == labels).double().mean()
    assert agree >= 0.95


def test_bad_input_shapes_are_refused(digit_classifier):
    with pytest.raises(GanforgeError, match=r"\(N, 1 or 3, H, W\), got shape \(2, 28, 28\)"):
        digit_classifier.features(torch.zeros(2, 28, 28))
    with pytest.raises(GanforgeError, match="no images"):
        digit_classifier.features(torch.zeros(0, 1, 28, 28))


def test_held_out_split_is_stratified_disjoint_and_seeded():
    _, labels = load_digit_images(8, 1)
    train, held_out = held_out_split(labels, 0.2, seed=0)
    assert len(set(train.tolist()) & set(held_out.tolist())) == 0 and len(train) + len(held_out) == len(labels)
    for digit in range(10):
        count = int((labels == digit).sum())
        assert int((labels[held_out] == digit).sum()) == round(0.2 * count)
    assert torch.equal(held_out_split(labels, 0.2, seed=0)[1], held_out)
    assert not torch.equal(held_out_split(labels, 0.2, seed=1)[1], held_out)


def test_random_shifts_move_each_image_by_at_most_max_shift():
    images = torch.full((200, 1, 28, 28), -1.0)
    images[:, 0, 14, 14] = 1.0  # one lit pixel in the middle
    shifted = random_shifts(images, 2, torch.Generator().manual_seed(0))
    lit = (shifted[:, 0] == 1.0).nonzero()[:, 1:]  # (200, 2) row and column of the lit pixel
    assert len(lit) == 200 and ((lit - 14).abs() <= 2).all()
    assert len({tuple(p) for p in lit.tolist()}) == 25  # all 5 x 5 offsets occur
    assert torch.equal(random_shifts(images, 0, torch.Generator()), images)


# --- label statistics ------------------------------------------------------------------------------


def test_classifier_score_is_10_for_confident_even_predictions_and_1_for_identical_ones():
    one_hot = F.one_hot(torch.arange(100) % 10, 10).double()
    assert classifier_score(one_hot) == pytest.approx(10.0, rel=1e-9)
    assert classifier_score(one_hot[:1].expand(50, -1)) == pytest.approx(1.0, abs=1e-9)
    assert classifier_score(torch.full((20, 10), 0.1)) == pytest.approx(1.0, abs=1e-9)
    half = F.one_hot(torch.arange(100) % 5, 10).double()  # five classes evenly
    assert classifier_score(half) == pytest.approx(5.0, rel=1e-9)
    with pytest.raises(GanforgeError, match=r"\(N, K\)"):
        classifier_score(torch.ones(10))


def test_class_histogram_counts_labels_or_the_argmax_of_probabilities():
    labels = torch.tensor([0, 3, 3, 9, 3])
    assert class_histogram(labels, 10).tolist() == [1, 0, 0, 3, 0, 0, 0, 0, 0, 1]
    assert torch.equal(class_histogram(F.one_hot(labels, 10).float() * 0.9 + 0.01, 10), class_histogram(labels, 10))
    assert classes_covered(labels, 10) == 3 and classes_covered(labels, 10, min_count=2) == 1
    with pytest.raises(GanforgeError, match="0..9"):
        class_histogram(torch.tensor([10]), 10)


def test_kl_to_uniform_is_0_when_even_and_log_k_on_one_class():
    assert kl_to_uniform(torch.full((10,), 7)) == pytest.approx(0.0, abs=1e-12)
    assert kl_to_uniform(torch.tensor([5, 0, 0, 0])) == pytest.approx(math.log(4))
    assert kl_to_uniform(torch.tensor([1, 1, 0, 0])) == pytest.approx(math.log(2))
