"""Sample-quality maths: mixture mode statistics and distances between feature sets.

Pure functions compute a metric in one call; the classes accumulate batches with
update() and finish with compute() -> dict[str, float], declaring higher_is_better
for each key. The feature extractors: the digit classifier ganforge trains itself
(classifier.py) and Inception-v3 with the FID weights (inception.py).
"""

from ganforge.evaluation.metrics.classifier import (
    DigitClassifier,
    class_histogram,
    classes_covered,
    classifier_score,
    kl_to_uniform,
    load_or_train_digit_classifier,
)
from ganforge.evaluation.metrics.feature_metrics import (
    DensityCoverage,
    FrechetDistance,
    KernelDistance,
    PrecisionRecall,
    density_coverage,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    kernel_distance,
    poly_mmd2_unbiased,
    precision_recall,
)
from ganforge.evaluation.metrics.inception import InceptionFeatures, find_inception_weights, load_inception
from ganforge.evaluation.metrics.mixtures import MixtureModeStats, mean_and_stderr, mixture_mode_stats

__all__ = [
    "DensityCoverage",
    "DigitClassifier",
    "FrechetDistance",
    "InceptionFeatures",
    "KernelDistance",
    "MixtureModeStats",
    "PrecisionRecall",
    "class_histogram",
    "classes_covered",
    "classifier_score",
    "density_coverage",
    "find_inception_weights",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "kernel_distance",
    "kl_to_uniform",
    "load_inception",
    "load_or_train_digit_classifier",
    "mean_and_stderr",
    "mixture_mode_stats",
    "poly_mmd2_unbiased",
    "precision_recall",
]
