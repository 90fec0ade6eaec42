"""Sample-quality maths: mixture mode statistics and distances between feature sets.

Pure functions compute a metric in one call; the classes accumulate batches with
update() and finish with compute() -> dict[str, float], declaring higher_is_better
for each key.
"""

from ganforge.metrics.feature_metrics import (
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
from ganforge.metrics.mixtures import MixtureModeStats, mean_and_stderr, mixture_mode_stats

__all__ = [
    "DensityCoverage",
    "FrechetDistance",
    "KernelDistance",
    "MixtureModeStats",
    "PrecisionRecall",
    "density_coverage",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "kernel_distance",
    "mean_and_stderr",
    "mixture_mode_stats",
    "poly_mmd2_unbiased",
    "precision_recall",
]
