"""evaluate(): mixture and image metrics with their real-data floors, stacked digits, and the inception extractor."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import ganforge
import ganforge.evaluation.evaluator as evaluation
from ganforge.config.resolve import resolve_model
from ganforge.config.schema import DataConfig, ModelConfig, RunConfig
from ganforge.data.digits import load_digit_images, load_stacked_digits
from ganforge.errors import GanforgeError
from ganforge.evaluation.evaluator import Evaluator, evaluate, per_channel, stacked_metrics
from ganforge.evaluation.metrics.classifier import load_or_train_digit_classifier
from ganforge.evaluation.metrics.inception import (
    FID_WEIGHTS_FILE,
    FID_WEIGHTS_URL,
    InceptionFeatures,
    InceptionV3FID,
    load_inception,
    resize_bilinear_tf1,
)
from ganforge.evaluation.registry import CLASS_METRICS, FEATURE_METRICS, MIXTURE_METRICS, available_metrics
from ganforge.evaluation.results import format_results, write_results
from ganforge.models import build_models
from ganforge.sampling.generator import TrainedGenerator

SAMPLES = 200  # generated (and real) images per image evaluation in these tests: KID on 200 is fast


@pytest.fixture(scope="session")
def cache(classifier_cache: Path) -> Path:
    """The data cache with the digit classifier (trained once per session, see conftest.py)."""
    return classifier_cache


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedGenerator:
    out = tmp_path_factory.mktemp("toy")
    ganforge.train(out=out, model="toy", data="ring8", steps=300, width=16, batch_size=32, log_every=100,
                   sample_every=0, checkpoint_every=0, show_progress=False)
    return ganforge.load(out, device="cpu")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedGenerator:
    """A 28x28 DCGAN after 2 steps: still an untrained generator."""
    out = tmp_path_factory.mktemp("digits")
    ganforge.train(out=out, model="dcgan", data="digits", image_size=28, width=4, batch_size=8, steps=2,
                   log_every=1, sample_every=0, checkpoint_every=0, show_progress=False)
    return ganforge.load(out, device="cpu")


@pytest.fixture
def no_torch_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point torch hub's cache at an empty folder, so no Inception weights are found."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def config_for(data: str, model: str = "dcgan", image_size: int | None = 28, channels: int | None = 1) -> RunConfig:
    if model == "toy":
        image_size = channels = None
    return RunConfig(model=resolve_model(ModelConfig(model, image_size, channels, width=4)), data=DataConfig(data))


def with_floors(names: tuple[str, ...] | list[str]) -> list[str]:
    return [key for name in names for key in (name, f"{name}_floor")]


# --- mixtures ---------------------------------------------------------------------------------------


def test_a_toy_run_gets_the_mixture_metrics_in_range_with_their_floors(toy_run):
    results = evaluate(toy_run)
    assert list(results) == [*with_floors(MIXTURE_METRICS), "num_samples", "step"]
    assert results["num_samples"] == 2500 and results["step"] == 300
    assert 0 <= results["modes_covered_strict"] <= results["modes_covered"] <= 8
    assert 0 <= results["high_quality"] <= 1 and 0 <= results["reverse_kl"] <= math.log(8) + 1e-9
    # real points: every mode, about 1 - exp(-4.5) = 98.9% within 3 std, nearly balanced
    assert results["modes_covered_floor"] == 8 and results["modes_covered_strict_floor"] == 8
    assert 0.98 <= results["high_quality_floor"] <= 0.995 and results["reverse_kl_floor"] < 0.01
    assert evaluate(toy_run) == results  # same seed, same numbers
    assert evaluate(toy_run, num_samples=500, metrics=["high_quality"])["num_samples"] == 500


def test_image_metrics_of_a_2d_run_are_refused_with_the_metrics_it_has(toy_run):
    with pytest.raises(GanforgeError, match=r"metric 'fid' needs images, but this run generates 2-D points \(ring8\)"
                                            r".*modes_covered"):
        evaluate(toy_run, metrics=["fid"])
    with pytest.raises(GanforgeError, match="unknown metric 'fdi': did you mean 'fid'"):
        evaluate(toy_run, metrics="fdi")


# --- digits ------------------------------------------------------------------------------------------


def test_a_digits_run_gets_every_image_metric_with_floors_from_classifier_features(digits_run, cache):
    results = evaluate(digits_run, num_samples=SAMPLES, data_cache=cache)
    assert list(results) == [*with_floors([*FEATURE_METRICS, *CLASS_METRICS]), "feature_extractor", "num_samples",
                             "step"]
    assert results["feature_extractor"] == "classifier" and results["num_samples"] == SAMPLES
    assert results["fid_floor"] < 0.2 * results["fid"]  # untrained G: far from the real digits
    assert results["kid_floor"] < results["kid"]
    for name in ("precision", "recall", "coverage"):
        assert 0 <= results[name] <= 1 and 0.6 <= results[f"{name}_floor"] <= 1
    assert 1 <= results["classifier_score"] <= 10 and 1 <= results["classes_covered"] <= 10
    assert 0 <= results["class_kl"] <= math.log(10) + 1e-9
    # real digits: confident, balanced predictions over the ten classes
    assert results["classifier_score_floor"] > 8.5 and results["classes_covered_floor"] == 10
    assert results["class_kl_floor"] < 0.05
    assert json.loads(json.dumps(results)) == results  # eval.json holds exactly this


def test_an_evaluator_computes_the_floors_once_and_repeats_itself(digits_run, cache, monkeypatch):
    evaluator = Evaluator(digits_run.config, ["fid", "classes_covered"], SAMPLES, data_cache=cache)
    first = evaluator(digits_run)
    monkeypatch.setattr(evaluator, "_real_batches", lambda: pytest.fail("the real images were analysed again"))
    assert evaluator(digits_run) == first
    assert list(first) == ["fid", "fid_floor", "classes_covered", "classes_covered_floor", "feature_extractor",
                           "num_samples", "step"]


def test_a_new_evaluator_reads_the_real_analysis_and_floors_from_the_disk_cache(digits_run, cache, monkeypatch):
    metrics = ["fid", "precision", "classes_covered"]
    first = Evaluator(digits_run.config, metrics, SAMPLES, data_cache=cache, seed=5)(digits_run)
    files = sorted((cache / "evaluations").glob("real-*"))
    assert {path.suffix for path in files} == {".json", ".safetensors"}
    again = Evaluator(digits_run.config, metrics, SAMPLES, data_cache=cache, seed=5)
    monkeypatch.setattr(again, "_real_batches", lambda: pytest.fail("the real images were analysed again"))
    assert again(digits_run) == first
    monkeypatch.undo()
    for path in (cache / "evaluations").glob("real-*.safetensors"):
        path.write_bytes(b"torn")  # an unreadable cache is computed again, to the same numbers
    assert Evaluator(digits_run.config, metrics, SAMPLES, data_cache=cache, seed=5)(digits_run) == first
    other_seed = Evaluator(digits_run.config, metrics, SAMPLES, data_cache=cache, seed=6)
    monkeypatch.setattr(other_seed, "_real_batches", lambda: pytest.fail("called"))
    with pytest.raises(pytest.fail.Exception):
        other_seed(digits_run)  # another real subset is another cache entry


def test_evaluation_leaves_the_generator_mode_and_the_global_rng_alone(digits_run, cache):
    digits_run.generator.train()
    state = torch.get_rng_state()
    evaluate(digits_run, metrics=["fid"], num_samples=SAMPLES, data_cache=cache)
    assert torch.equal(torch.get_rng_state(), state) and digits_run.generator.training
    digits_run.generator.eval()


def test_mixture_metrics_of_an_image_run_and_too_few_samples_are_refused(digits_run, cache):
    with pytest.raises(GanforgeError, match=r"metric 'high_quality' needs a 2-D mixture .* images \(digits\)"):
        evaluate(digits_run, metrics=["high_quality"], data_cache=cache)
    with pytest.raises(GanforgeError, match="at least 20 samples"):
        evaluate(digits_run, num_samples=10, data_cache=cache)
    with pytest.raises(GanforgeError, match="positive integer"):
        evaluate(digits_run, num_samples=0, data_cache=cache)


def test_classifier_features_on_data_that_is_not_digits_suggest_inception():
    with pytest.raises(GanforgeError, match="knows only digits and stacked-digits, not cifar10: "
                                            "use --feature-extractor inception"):
        Evaluator(config_for("cifar10", image_size=32, channels=3))


def test_available_metrics_follow_the_data():
    assert available_metrics(config_for("ring8", model="toy")) == list(MIXTURE_METRICS)
    assert available_metrics(config_for("digits")) == [*FEATURE_METRICS, *CLASS_METRICS]
    assert available_metrics(config_for("stacked-digits", channels=3)) == [*FEATURE_METRICS, "modes_covered",
                                                                           "reverse_kl"]
    assert available_metrics(config_for("cifar10", image_size=32, channels=3)) == list(FEATURE_METRICS)
    assert evaluation.resolve_feature_extractor(config_for("digits"), "auto") == "classifier"
    assert evaluation.resolve_feature_extractor(config_for("cifar10"), "auto") == "inception"


def test_results_print_as_a_table_and_save_as_eval_json(tmp_path):
    results = {"fid": 3.104, "fid_floor": 1.2, "classes_covered": 9, "classes_covered_floor": 10,
               "feature_extractor": "classifier", "num_samples": 10000, "step": 2000}
    table = format_results(results)
    assert "fid" in table and "3.104  (floor 1.2)  [lower is better]" in table
    assert "(floor 10)  [higher is better]" in table and "classifier" in table and "10,000" in table
    path = write_results(results, tmp_path / "run")
    assert path == tmp_path / "run" / "eval.json" and json.loads(path.read_text()) == results


# --- stacked digits ----------------------------------------------------------------------------------


def test_stacked_digits_labels_name_the_digit_of_each_channel():
    digits, digit_labels = load_digit_images(8, 1)
    images, labels = load_stacked_digits(image_size=8, count=60, seed=3)
    assert images.shape == (60, 3, 8, 8) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    flat = digits.flatten(1)
    for image, label in zip(images, labels, strict=True):
        for channel, place in zip(image, (100, 10, 1), strict=True):
            matches = (flat == channel.flatten()).all(dim=1)  # the digit images this channel is a copy of
            assert matches.any() and int(label) // place % 10 in digit_labels[matches].tolist()
    again, again_labels = load_stacked_digits(image_size=8, count=60, seed=3)
    assert torch.equal(again, images) and torch.equal(again_labels, labels)
    assert not torch.equal(load_stacked_digits(image_size=8, count=60, seed=4)[1], labels)
    assert load_stacked_digits(image_size=8, count=20_000)[1].unique().numel() == 1000  # every mode occurs


def test_stacked_metrics_count_modes_and_their_balance():
    assert stacked_metrics(torch.arange(1000), ["modes_covered", "reverse_kl"]) == {"modes_covered": 1000,
                                                                                    "reverse_kl": 0.0}
    one_mode = stacked_metrics(torch.full((26,), 417), ["modes_covered", "reverse_kl"])
    assert one_mode["modes_covered"] == 1 and one_mode["reverse_kl"] == pytest.approx(math.log(1000))


def test_each_channel_is_classified_on_its_own(cache):
    classifier = load_or_train_digit_classifier(cache)
    images, labels = load_stacked_digits(28, count=300, seed=0)
    predicted = classifier.predict(per_channel(images)).reshape(-1, 3)
    mode_ids = predicted[:, 0] * 100 + predicted[:, 1] * 10 + predicted[:, 2]
    assert (mode_ids == labels).double().mean() >= 0.95


def test_a_stacked_digits_generator_gets_modes_out_of_1000(cache):
    config = config_for("stacked-digits", channels=3)
    generator, _ = build_models(config.model, seed=0)
    run = TrainedGenerator(generator, config, 0, torch.device("cpu"))
    results = evaluate(run, num_samples=SAMPLES, data_cache=cache)
    assert list(results) == [*with_floors([*FEATURE_METRICS, "modes_covered", "reverse_kl"]), "feature_extractor",
                             "num_samples", "step"]
    assert 1 <= results["modes_covered"] <= SAMPLES and results["modes_covered"] < 20  # untrained: a few modes
    # 200 real samples over 1,000 even modes: about 1000 (1 - exp(-0.2)) = 181 distinct ones
    assert 165 <= results["modes_covered_floor"] <= 195
    assert results["reverse_kl_floor"] < results["reverse_kl"] <= math.log(1000) + 1e-9
    assert results["fid_floor"] < results["fid"]


# --- inception ---------------------------------------------------------------------------------------


def test_tensorflow_resize_samples_at_i_times_in_over_out():
    x = torch.tensor([[[[0.0, 10.0], [20.0, 30.0]]]])  # (1, 1, 2, 2)
    out = resize_bilinear_tf1(x, 4)  # rows and columns sample at 0, 0.5, 1, 1.5 (clamped to the last pixel)
    assert out[0, 0, 0].tolist() == [0.0, 5.0, 10.0, 10.0]
    assert out[0, 0, :, 0].tolist() == [0.0, 10.0, 20.0, 20.0]
    assert torch.equal(resize_bilinear_tf1(x, 2), x)


@pytest.mark.slow
def test_the_inception_network_gives_2048_features_and_round_trips_its_weights(tmp_path):
    torch.manual_seed(0)
    network = InceptionV3FID()  # random weights: the code path without the 91 MB download
    assert sum(p.numel() for p in network.parameters()) == 23_850_960  # pytorch-fid's Inception-v3 + 1008-way fc
    extractor = InceptionFeatures(network)
    images = torch.rand(2, 1, 28, 28) * 2 - 1
    features = extractor.features(images)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    as_uint8 = ((images + 1) * 127.5).round().to(torch.uint8)
    assert torch.equal(extractor.features(as_uint8), features)  # floats are rounded to 8-bit pixels
    torch.save(network.state_dict(), tmp_path / "weights.pth")
    assert torch.equal(load_inception(tmp_path / "weights.pth").features(images), features)


def test_missing_inception_weights_name_the_file_the_url_and_the_folder(digits_run, cache, no_torch_hub):
    expected = torch.hub.get_dir()
    with pytest.raises(GanforgeError) as error:
        evaluate(digits_run, metrics=["fid"], feature_extractor="inception", data_cache=cache)
    message = str(error.value)
    assert FID_WEIGHTS_FILE in message and FID_WEIGHTS_URL in message and expected in message
    assert "--inception-weights" in message and "\n" not in message
    with pytest.raises(GanforgeError, match=f"nowhere.pth does not exist: pass the path of {FID_WEIGHTS_FILE}"):
        load_inception(no_torch_hub / "nowhere.pth")


def test_inception_weights_are_found_in_torch_hub_and_checked(no_torch_hub, tmp_path):
    state = {"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}  # far from the whole network
    checkpoints = no_torch_hub / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / FID_WEIGHTS_FILE)
    with pytest.raises(GanforgeError, match=r"is not the FID Inception-v3 weights \(missing: "):
        load_inception(cache_dir=tmp_path)
    (checkpoints / FID_WEIGHTS_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(GanforgeError, match="cannot read Inception weights"):
        load_inception(cache_dir=tmp_path)
