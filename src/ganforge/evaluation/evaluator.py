"""Evaluate a trained generator: one flat dict of metrics, each beside its real-data floor.

What is measured depends on the run's data:

- 2-D mixtures (ring8, grid25), the protocol of VEEGAN and PacGAN: 2,500 generated points; ``modes_covered``,
  ``modes_covered_strict``, ``high_quality`` and ``reverse_kl`` (see ganforge.evaluation.metrics.mixtures).
- Images: ``fid``, ``kid``, ``precision``, ``recall`` (k=3), ``density``, ``coverage`` (k=5) between features of
  generated and real images. The features come from ``feature_extractor``: ``classifier`` (the small CNN ganforge
  trains on the digits, for digits and stacked-digits; no download) or ``inception`` (Inception-v3 FID features,
  weights on disk).
- Digits: ``classifier_score`` (Inception-Score-style, at most 10), ``classes_covered`` (of 10) and ``class_kl``
  (KL of the generated class histogram from uniform), from the digit classifier.
- Stacked digits, the 1,000-mode benchmark: ``modes_covered`` (of 1,000) and ``reverse_kl`` (KL of the mode
  histogram from uniform), on 26,000 samples as in the papers, each channel classified by the digit classifier.

The floor, ``<name>_floor``, is what real data scores, so a user reads "FID 3.1 (floor 1.2)":

- metrics between two sets (fid, kid, precision, recall, density, coverage) are computed between two disjoint
  random halves of the real images used, so the floor uses half as many samples on each side as the metric; FID
  is biased upwards at smaller sample sizes, so its floor is a slight over-estimate (KID is unbiased);
- metrics of one set (mode and class statistics) are computed on as many real samples as generated ones (or all
  the real data if it is smaller).

For periodic evaluation during training, build one :class:`Evaluator` and call it at each evaluation: the real
data, the feature extractor, the real features and the floors are computed once.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ganforge.config.resolve import learns_points
from ganforge.config.schema import RunConfig
from ganforge.data import TensorData, load_data
from ganforge.data import data_cache as default_data_cache
from ganforge.data.digits import STACKED_DIGITS_MODES, stacked_mode_ids
from ganforge.data.mixtures import mixture_modes, sample_mixture
from ganforge.errors import GanforgeError
from ganforge.evaluation import real_cache
from ganforge.evaluation.metrics.classifier import (
    CLASSIFIER_VERSION,
    NUM_CLASSES,
    DigitClassifier,
    class_histogram,
    classifier_score,
    kl_to_uniform,
    load_or_train_digit_classifier,
)
from ganforge.evaluation.metrics.feature_metrics import (
    DEFAULT_KID_SUBSET_SIZE,
    DEFAULT_KID_SUBSETS,
    density_coverage,
    frechet_distance,
    kernel_distance,
    precision_recall,
)
from ganforge.evaluation.metrics.inception import InceptionFeatures, load_inception
from ganforge.evaluation.metrics.mixtures import mixture_mode_stats
from ganforge.evaluation.registry import (
    CLASS_METRICS,
    DIGIT_DATA,
    FEATURE_METRICS,
    STACKED_METRICS,
    Results,
    resolve_feature_extractor,
    resolve_metrics,
)
from ganforge.sampling.generator import SAMPLE_BATCH, TrainedGenerator

MIXTURE_SAMPLES = 2_500  # generated points for the mixture metrics (VEEGAN, PacGAN)
IMAGE_SAMPLES = 10_000  # at most this many generated (and real) images for the feature and class metrics
STACKED_SAMPLES = 26_000  # generated images whose modes are counted on stacked digits (VEEGAN, PacGAN)
MIN_IMAGE_SAMPLES = 20  # the floor's halves need more than k = 5 neighbours each
PRECISION_RECALL_K = 3
DENSITY_COVERAGE_K = 5
METRIC_DTYPE = torch.float32  # KID's kernels and the k-NN distances: 4x faster than float64, same values to 1e-6

@dataclass
class Analysis:
    """What one pass of the feature extractor and the digit classifier over a set of images gives, in batches."""

    features: list[Tensor] = field(default_factory=list)  # (B, D) each
    probabilities: list[Tensor] = field(default_factory=list)  # (B, 10) digit class probabilities
    mode_ids: list[Tensor] = field(default_factory=list)  # (B,) stacked-digit modes 0..999


def feature_metrics(real: Tensor, fake: Tensor, names: Sequence[str], seed: int = 0) -> dict[str, float]:
    """fid, kid (mean over subsets), precision, recall, density, coverage among ``names``, of features (N, D), (M, D)."""
    results: dict[str, float] = {}
    if "fid" in names:
        results["fid"] = frechet_distance(real, fake)
    if "kid" in names:
        subset = min(DEFAULT_KID_SUBSET_SIZE, len(real), len(fake))
        generator = torch.Generator().manual_seed(seed)
        results["kid"] = kernel_distance(real, fake, subset, DEFAULT_KID_SUBSETS, generator, dtype=METRIC_DTYPE)[0]
    if "precision" in names or "recall" in names:
        results.update(precision_recall(real, fake, k=PRECISION_RECALL_K, dtype=METRIC_DTYPE))
    if "density" in names or "coverage" in names:
        results.update(density_coverage(real, fake, k=DENSITY_COVERAGE_K, dtype=METRIC_DTYPE))
    return {name: results[name] for name in FEATURE_METRICS if name in names}


def class_metrics(probabilities: Tensor, names: Sequence[str]) -> dict[str, float | int]:
    """classifier_score, classes_covered (of 10) and class_kl among ``names``, of digit probabilities (N, 10)."""
    counts = class_histogram(probabilities, NUM_CLASSES)
    values: dict[str, float | int] = {
        "classifier_score": classifier_score(probabilities),
        "classes_covered": int((counts > 0).sum()),
        "class_kl": kl_to_uniform(counts),
    }
    return {name: values[name] for name in CLASS_METRICS if name in names}


def stacked_metrics(mode_ids: Tensor, names: Sequence[str]) -> dict[str, float | int]:
    """modes_covered (of 1,000) and reverse_kl (KL of the mode histogram from uniform) of mode ids (N,)."""
    counts = torch.bincount(mode_ids.long().cpu(), minlength=STACKED_DIGITS_MODES)
    values: dict[str, float | int] = {"modes_covered": int((counts > 0).sum()), "reverse_kl": kl_to_uniform(counts)}
    return {name: values[name] for name in STACKED_METRICS if name in names}


def per_channel(images: Tensor) -> Tensor:
    """(N, C, H, W) -> (N * C, 1, H, W): each channel as its own grayscale image, channels of a sample adjacent."""
    return images.reshape(-1, 1, *images.shape[2:])


# ---------------------------------------------------------------------------
# The evaluator
# ---------------------------------------------------------------------------


class Evaluator:
    """Evaluates generators of one run configuration; real data, extractor, real features and floors are kept.

    ``num_samples``: generated samples for every metric; None = 2,500 points for mixtures, 26,000 images for the
    stacked-digits mode metrics, and min(real images, 10,000) for the feature and class metrics. At most as many
    real images as generated ones are used. ``seed`` fixes the generated latents, the real subset and its halves,
    and KID's subsets. ``device``: where the feature extractors and the feature metrics run.
    """

    def __init__(self, config: RunConfig, metrics: Sequence[str] | str | None = None, num_samples: int | None = None,
                 feature_extractor: str = "classifier", seed: int = 0, data_cache: Path | None = None,
                 inception_weights: Path | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.metrics = resolve_metrics(config, metrics)
        self.extractor_name = resolve_feature_extractor(config, feature_extractor)
        self.seed = seed
        if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(num_samples, int)
                                        or num_samples < 1):
            raise GanforgeError(f"the number of samples must be a positive integer, got {num_samples!r}")
        self.num_samples = num_samples
        self.cache_dir = Path(data_cache) if data_cache is not None else default_data_cache(config.data)
        self.inception_weights = inception_weights
        self.device = torch.device(device)
        self._floors: Results | None = None
        self._real: Analysis | None = None
        self._real_cache_read = False  # whether the disk cache was looked at (see _load_real_cache)
        self.points = learns_points(config)
        self.stacked = config.data.data == "stacked-digits"
        self.metric_device = self.device  # features stay where they were made: on a GPU the metrics run there too
        self.feature_names = [m for m in self.metrics if m in FEATURE_METRICS]
        self.class_names = [m for m in self.metrics if m in CLASS_METRICS]
        self.stacked_names = [m for m in self.metrics if m in STACKED_METRICS] if not self.points else []
        if self.points:
            self.modes, self.std = mixture_modes(config.data.data)
            return
        if self.feature_names and self.extractor_name == "classifier" and config.data.data not in DIGIT_DATA:
            raise GanforgeError(
                f"the classifier feature extractor is trained on the labelled digits and knows only "
                f"{' and '.join(DIGIT_DATA)}, not {config.data.data}: use --feature-extractor inception"
            )
        real = load_data(config.data, config.model.image_size, config.model.channels, config.train.seed,
                         torch.device("cpu"))
        if not isinstance(real, TensorData):
            raise GanforgeError(f"{real.description} is not a set of images held in memory; cannot evaluate images")
        self.real: Tensor = real.samples  # (N, C, H, W) uint8, or float in [-1, 1]
        if self.stacked and self.real.shape[1] != 3:
            raise GanforgeError(f"stacked digits have 3 channels (one digit each), but this run's images have "
                                f"{self.real.shape[1]}: train stacked-digits runs with --channels 3")
        self.order = torch.randperm(len(self.real), generator=torch.Generator().manual_seed(seed))
        self.feature_samples = self.num_samples or min(len(self.real), IMAGE_SAMPLES)
        self.mode_samples = self.num_samples or STACKED_SAMPLES
        if self.feature_names or self.class_names:
            used = min(self.feature_samples, len(self.real))
            if used < MIN_IMAGE_SAMPLES:
                raise GanforgeError(
                    f"image metrics need at least {MIN_IMAGE_SAMPLES} samples (the real-data floor splits them in "
                    f"two halves of more than {DENSITY_COVERAGE_K} each), got {used}: pass more samples or more data"
                )
        self.classifier: DigitClassifier | None = None
        if self.class_names or self.stacked_names or (self.feature_names and self.extractor_name == "classifier"):
            self.classifier = load_or_train_digit_classifier(self.cache_dir).to(self.device)
        self.inception: InceptionFeatures | None = None
        if self.feature_names and self.extractor_name == "inception":
            self.inception = load_inception(inception_weights, self.cache_dir, self.device)

    # --- one pass over a stream of images ---

    def _analyse(self, batches: Iterable[Tensor]) -> Analysis:
        """Features, class probabilities and stacked-digit mode ids of a stream of image batches (B, C, H, W).

        Features and probabilities are taken of the first ``feature_samples`` images, mode ids of the first
        ``mode_samples``; the classifier runs once per image for all three.
        """
        analysis = Analysis()
        seen = 0
        for images in batches:
            head = images[: max(0, self.feature_samples - seen)] if self.feature_names or self.class_names \
                else images[:0]
            stacked = images[: max(0, self.mode_samples - seen)] if self.stacked_names else images[:0]
            seen += len(images)
            if self.inception is not None and len(head):
                analysis.features.append(self.inception.features(head).to(self.metric_device))
            if self.classifier is None:
                continue
            classify = stacked if len(stacked) >= len(head) else head
            if not len(classify):
                continue
            digit_images = per_channel(classify) if self.stacked else classify
            features, logits = self.classifier.features_and_logits(digit_images)
            if self.stacked:  # one sample = three channels = three digits
                features = features.reshape(len(classify), -1)
                mode_ids = stacked_mode_ids(logits.argmax(dim=1).reshape(-1, 3))
                analysis.mode_ids.append(mode_ids[: len(stacked)].cpu())
            if self.inception is None and self.feature_names:
                analysis.features.append(features[: len(head)].to(self.metric_device))
            if self.class_names:
                analysis.probabilities.append(logits[: len(head)].softmax(dim=1).cpu())
        return analysis

    def _real_batches(self) -> Iterator[Tensor]:
        count = max(self.feature_samples if self.feature_names or self.class_names else 0,
                    self.mode_samples if self.stacked_names else 0)
        for chunk in self.order[:count].split(SAMPLE_BATCH):
            yield self.real[chunk]

    def _generated_batches(self, generator: TrainedGenerator) -> Iterator[Tensor]:
        latents = generator.latents(self._samples_drawn(), self.seed)
        for chunk in latents.split(SAMPLE_BATCH):
            images = generator.generate(chunk)  # (B, C, H, W) in [-1, 1], on the CPU
            if not torch.isfinite(images).all():
                raise GanforgeError(f"the generator of step {generator.step} made NaN or inf images; "
                                    "it has diverged: evaluate an earlier checkpoint")
            yield images

    def _image_metrics(self, analysis: Analysis, real: Analysis | None) -> Results:
        """The metrics of one analysed set: against ``real``'s features, or (real None) the floor's halves."""
        results: Results = {}
        if self.feature_names:
            features = torch.cat(analysis.features)
            if real is None:
                half = len(features) // 2
                reference, features = features[:half], features[half: 2 * half]
            else:
                reference = torch.cat(real.features)
            results.update(feature_metrics(reference, features, self.feature_names, self.seed))
        if self.class_names:
            results.update(class_metrics(torch.cat(analysis.probabilities), self.class_names))
        if self.stacked_names:
            results.update(stacked_metrics(torch.cat(analysis.mode_ids), self.stacked_names))
        return results

    # --- the real data, analysed once ---

    def real_analysis(self) -> Analysis:
        """Features, probabilities and mode ids of the real images used (the first of the seeded order),
        read from the disk cache of :mod:`ganforge.evaluation.real_cache` when an earlier evaluation saved them."""
        if self._real is None:
            self._load_real_cache()
        if self._real is None:
            self._real = self._analyse(self._real_batches())
        return self._real

    def floors(self) -> Results:
        """``<name>_floor`` for every requested metric: what real data scores (see the module docstring)."""
        if self._floors is None:
            if self.points:
                real_points = sample_mixture(self.modes, self.std, self.num_samples or MIXTURE_SAMPLES,
                                             torch.Generator().manual_seed(self.seed))
                values: Results = dict(mixture_mode_stats(real_points, self.modes, self.std))
                self._floors = {f"{name}_floor": values[name] for name in self.metrics}
            else:
                self._load_real_cache()
            if self._floors is None:
                values = self._image_metrics(self.real_analysis(), None)
                self._floors = {f"{name}_floor": values[name] for name in self.metrics}
                self._save_real_cache()
        return self._floors

    @functools.cached_property
    def _real_cache_path(self) -> Path:
        """The cache entry of this evaluator's real images: their bytes are hashed once."""
        settings = {"extractor": self.extractor_name, "classifier": CLASSIFIER_VERSION, "metrics": self.metrics,
                    "inception": str(self.inception_weights), "seed": self.seed, "features": self.feature_samples,
                    "modes": self.mode_samples if self.stacked_names else 0, "dtype": str(METRIC_DTYPE)}
        return real_cache.cache_path(self.cache_dir, self.real, settings)

    def _load_real_cache(self) -> None:
        """Read the real analysis and floors once; a miss leaves both to be computed (and then saved)."""
        if self._real_cache_read:
            return
        self._real_cache_read = True
        found = real_cache.load(self._real_cache_path)
        if found is None:
            return
        tensors, floors = found
        self._real = Analysis(*([tensors[key].to(self.metric_device if key == "features" else "cpu")]
                                if key in tensors else [] for key in ("features", "probabilities", "mode_ids")))
        self._floors = floors

    def _save_real_cache(self) -> None:
        analysis = self.real_analysis()
        tensors = {key: torch.cat(values) for key, values in (("features", analysis.features),
                   ("probabilities", analysis.probabilities), ("mode_ids", analysis.mode_ids)) if values}
        assert self._floors is not None
        real_cache.save(self._real_cache_path, tensors, self._floors)

    # --- one evaluation ---

    def __call__(self, generator: TrainedGenerator) -> Results:
        """The metrics of ``generator``, each followed by its floor, then feature_extractor, num_samples and step."""
        if generator.is_points != self.points:
            made = "2-D points" if generator.is_points else "images"
            raise GanforgeError(f"this evaluator was built for a run of {self.config.data.data}, "
                                f"but the generator makes {made}")
        was_training = generator.generator.training
        generator.generator.eval()
        try:
            if self.points:
                points = generator.sample(self.num_samples or MIXTURE_SAMPLES, self.seed)
                values: Results = dict(mixture_mode_stats(points, self.modes, self.std))
            else:
                values = self._image_metrics(self._analyse(self._generated_batches(generator)), self.real_analysis())
        finally:
            generator.generator.train(was_training)
        floors = self.floors()
        results: Results = {}
        for name in self.metrics:
            results[name] = values[name]
            results[f"{name}_floor"] = floors[f"{name}_floor"]
        if self.feature_names:
            results["feature_extractor"] = self.extractor_name
        results["num_samples"] = self._samples_drawn()
        results["step"] = generator.step
        return results

    def _samples_drawn(self) -> int:
        """Generated samples per evaluation: the most any requested metric needs."""
        if self.points:
            return self.num_samples or MIXTURE_SAMPLES
        counts = [self.feature_samples] if self.feature_names or self.class_names else []
        return max(counts + ([self.mode_samples] if self.stacked_names else []))


def evaluate(generator: TrainedGenerator, metrics: Sequence[str] | str | None = None, num_samples: int | None = None,
             feature_extractor: str = "classifier", seed: int = 0, data_cache: Path | None = None,
             inception_weights: Path | None = None) -> Results:
    """Evaluate a trained generator: one flat dict, the contents of ``eval.json``.

    Keys: each metric (all that apply to the run when ``metrics`` is None; see :func:`available_metrics`) followed
    by ``<name>_floor``, then ``feature_extractor`` (image runs with feature metrics: "classifier" or "inception"),
    ``num_samples`` (generated samples drawn) and ``step`` (the checkpoint's). ``data_cache``: where the digit
    classifier and the inception weights are kept (None = the run's data cache, ``~/.cache/ganforge``);
    ``inception_weights``: the weights file, overriding the caches. See :class:`Evaluator` for the rest.
    """
    evaluator = Evaluator(generator.config, metrics, num_samples, feature_extractor, seed, data_cache,
                          inception_weights, generator.device)
    return evaluator(generator)


