"""Tests of the sample-quality maths: Frechet distance, KID, precision/recall, density/coverage, mixture modes."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.evaluation.metrics import (
    DensityCoverage,
    FrechetDistance,
    KernelDistance,
    MixtureModeStats,
    PrecisionRecall,
    density_coverage,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    kernel_distance,
    mean_and_stderr,
    mixture_mode_stats,
    poly_mmd2_unbiased,
    precision_recall,
)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """Seeded float64 standard normal samples."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def on_line(*xs: float) -> torch.Tensor:
    """Points (len(xs), 2) on the x axis, so hand-computed distances are differences of xs."""
    return torch.tensor([[x, 0.0] for x in xs], dtype=torch.float64)


def clusters(*centres: float, offset: float = 0.0) -> torch.Tensor:
    """Five points per centre (c, offset): the centre and its four unit neighbours along the axes."""
    pattern = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    return torch.cat([pattern + torch.tensor([c, offset], dtype=torch.float64) for c in centres])


# ---------------------------------------------------------------------------
# Frechet distance
# ---------------------------------------------------------------------------


def test_frechet_distance_of_a_set_with_itself_is_zero() -> None:
    x = randn(200, 16)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_closed_form_on_diagonal_covariances() -> None:
    # ||(0,0) - (1,2)||^2 = 5; Tr(S1 + S2) = (1 + 4) + (4 + 9) = 18; (S1 S2)^{1/2} = diag(2, 6), trace 8.
    # So 5 + 18 - 2 * 8 = 7.
    mu1, mu2 = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 2.0])
    sigma1, sigma2 = torch.diag(torch.tensor([1.0, 4.0])), torch.diag(torch.tensor([4.0, 9.0]))
    assert frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) == pytest.approx(7.0, abs=1e-10)


def test_frechet_distance_closed_form_matches_scipy_sqrtm_on_full_covariances() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    a, b = randn(5, 5, seed=1), randn(5, 5, seed=2)
    sigma1, sigma2 = a @ a.T + 0.1 * torch.eye(5, dtype=torch.float64), b @ b.T
    mu1, mu2 = randn(5, seed=3), randn(5, seed=4)
    covmean = linalg.sqrtm(sigma1.numpy() @ sigma2.numpy()).real
    expected = float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace()) - 2 * float(covmean.trace())
    assert frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_of_unit_gaussians_is_squared_mean_gap() -> None:
    # N(mu1, I) vs N(mu2, I): the covariance terms cancel, leaving ||mu1 - mu2||^2 = 1 + 1 = 2.
    shift = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    real, fake = randn(20_000, 4, seed=1), randn(20_000, 4, seed=2) + shift
    assert frechet_distance(real, fake) == pytest.approx(2.0, abs=0.1)


def test_gaussian_stats_match_torch_cov() -> None:
    x = randn(50, 3)
    mu, sigma = gaussian_stats(x)
    assert torch.allclose(mu, x.mean(dim=0))
    assert torch.allclose(sigma, torch.cov(x.T))


def test_frechet_accumulator_in_batches_matches_one_shot_even_with_a_large_mean() -> None:
    real, fake = randn(90, 6, seed=1) + 1e4, 2 * randn(70, 6, seed=2) + 1e4
    metric = FrechetDistance()
    for batch in real.split(25):
        metric.update(batch, real=True)
    for batch in fake.split(1):
        metric.update(batch, real=False)  # single-sample batches exercise the merge
    assert metric.compute()["frechet_distance"] == pytest.approx(frechet_distance(real, fake), rel=1e-9)
    assert metric.higher_is_better == {"frechet_distance": False}


def test_frechet_distance_agrees_with_torchmetrics() -> None:
    fid_module = pytest.importorskip("torchmetrics.image.fid")
    real, fake = randn(300, 6, seed=1), 1.5 * randn(300, 6, seed=2) + 0.3
    identity = torch.nn.Identity()
    identity.num_features = 6  # tells torchmetrics the feature size, so it does not probe with a dummy image
    reference = fid_module.FrechetInceptionDistance(feature=identity)
    reference.update(real, real=True)
    reference.update(fake, real=False)
    assert frechet_distance(real, fake) == pytest.approx(float(reference.compute()), rel=1e-6)


# ---------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------


def naive_poly_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 with k(a, b) = (a . b / D + 1)^3, written as explicit loops over pairs."""
    dim = x.shape[1]

    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        return (float(a @ b) / dim + 1) ** 3

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_poly_mmd2_matches_naive_loops_and_chunking() -> None:
    x, y = randn(5, 3, seed=1), randn(6, 3, seed=2) + 0.5
    expected = naive_poly_mmd2(x, y)
    assert poly_mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-10)
    assert poly_mmd2_unbiased(x, y, chunk_size=2) == pytest.approx(expected, rel=1e-10)


def test_kernel_distance_with_whole_sets_as_subsets_is_the_full_mmd() -> None:
    x, y = randn(8, 3, seed=1), randn(8, 3, seed=2) + 0.5
    mean, std = kernel_distance(x, y, subset_size=8, num_subsets=3, generator=torch.Generator().manual_seed(0))
    assert mean == pytest.approx(naive_poly_mmd2(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kernel_distance_near_zero_for_same_distribution_and_positive_for_shifted() -> None:
    real, same, shifted = randn(200, 8, seed=1), randn(200, 8, seed=2), randn(200, 8, seed=3) + 1.0
    same_mean, same_std = kernel_distance(real, same, 100, 10, generator=torch.Generator().manual_seed(0))
    shifted_mean, _ = kernel_distance(real, shifted, 100, 10, generator=torch.Generator().manual_seed(0))
    assert abs(same_mean) < 0.05  # about -0.01: the unbiased estimate scatters around 0
    assert same_std > 0
    assert shifted_mean > 5.0  # about 8.3 for a unit shift in all 8 dimensions


def test_kernel_distance_is_reproducible_with_a_seeded_generator() -> None:
    real, fake = randn(60, 4, seed=1), randn(60, 4, seed=2)
    runs = [kernel_distance(real, fake, 20, 5, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert runs[0] == runs[1]
    metric = KernelDistance(subset_size=20, num_subsets=5, seed=7)
    metric.update(real[:30], real=True)
    metric.update(real[30:], real=True)
    metric.update(fake, real=False)
    assert metric.compute() == {"kid_mean": runs[0][0], "kid_std": runs[0][1]}
    assert metric.compute() == metric.compute()


def test_poly_mmd2_agrees_with_torchmetrics() -> None:
    kid_module = pytest.importorskip("torchmetrics.image.kid")
    x, y = randn(40, 5, seed=1), randn(40, 5, seed=2) + 0.2
    assert poly_mmd2_unbiased(x, y) == pytest.approx(float(kid_module.poly_mmd(x, y)), rel=1e-10)


# ---------------------------------------------------------------------------
# Precision / recall and density / coverage
# ---------------------------------------------------------------------------


def test_precision_recall_of_identical_sets_is_one() -> None:
    x = randn(100, 8)
    assert precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}


def test_precision_recall_of_far_apart_sets_is_zero() -> None:
    x = randn(100, 8)
    assert precision_recall(x, x + 100.0) == {"precision": 0.0, "recall": 0.0}


def test_precision_recall_on_constructed_clusters() -> None:
    # Real: clusters at 0, 100, 200, 300 (5 points each, k=3 radii <= sqrt 2). Generated: exact copies of the
    # clusters at 0 and 100 plus a cluster at 1000 that no real sample is near.
    # precision = 10 of 15 generated inside the real manifold; recall = 10 of 20 real inside the generated one.
    real, fake = clusters(0, 100, 200, 300), clusters(0, 100, 1000)
    result = precision_recall(real, fake, k=3)
    assert result["precision"] == pytest.approx(10 / 15)
    assert result["recall"] == pytest.approx(10 / 20)
    assert precision_recall(real, fake, k=3, chunk_size=3) == result


def test_density_coverage_on_a_hand_computed_line() -> None:
    # Real X at 0, 1, 2, 3, 10 with k=2: radii 2, 1, 1, 2, 8, i.e. balls [-2, 2], [0, 2], [1, 3], [1, 5], [2, 18].
    # Generated Y: -1.5 lies in 1 ball; 2.5 in 3 ([1,3], [1,5], [2,18]); 4.5 in 2 ([1,5], [2,18]); 20 and 30 in none.
    # density = (1 + 3 + 2) / (k * M) = 6 / 10; coverage: every ball but [0, 2] holds some Y, so 4 / 5.
    real, fake = on_line(0, 1, 2, 3, 10), on_line(-1.5, 2.5, 4.5, 20, 30)
    result = density_coverage(real, fake, k=2)
    assert result["density"] == pytest.approx(0.6)
    assert result["coverage"] == pytest.approx(0.8)
    assert density_coverage(real, fake, k=2, chunk_size=2) == result


def test_density_coverage_of_identical_sets() -> None:
    x = randn(100, 4)
    result = density_coverage(x, x)
    assert result["coverage"] == 1.0
    assert 0.8 < result["density"] < 1.5  # each point lies in its own ball and about k neighbours' balls


def test_manifold_accumulators_match_the_functions() -> None:
    real, fake = randn(60, 4, seed=1), randn(50, 4, seed=2) + 0.3
    pr, dc = PrecisionRecall(k=3), DensityCoverage(k=5)
    for metric in (pr, dc):
        for batch in real.split(16):
            metric.update(batch, real=True)
        metric.update(fake, real=False)
    assert pr.compute() == precision_recall(real, fake, k=3)
    assert dc.compute() == density_coverage(real, fake, k=5)
    assert pr.higher_is_better == {"precision": True, "recall": True}


# ---------------------------------------------------------------------------
# Gaussian-mixture modes
# ---------------------------------------------------------------------------

RING_STD = 0.02


def ring_modes(num_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """Modes (M, 2) evenly spaced on a circle, as in the 2-D ring benchmark."""
    angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def points_at(modes: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """counts[m] copies of mode m."""
    return torch.cat([modes[m].expand(c, 2) for m, c in enumerate(counts)])


def test_all_points_on_all_modes() -> None:
    modes = ring_modes()
    stats = mixture_mode_stats(points_at(modes, [10] * 8), modes, RING_STD)
    assert stats == {"high_quality": 1.0, "modes_covered": 8, "modes_covered_strict": 8, "reverse_kl": 0.0}


def test_all_points_on_one_mode() -> None:
    modes = ring_modes()
    stats = mixture_mode_stats(points_at(modes, [80]), modes, RING_STD)
    assert stats["high_quality"] == 1.0
    assert stats["modes_covered"] == stats["modes_covered_strict"] == 1
    assert stats["reverse_kl"] == pytest.approx(math.log(8))


def test_points_far_from_every_mode_are_not_high_quality() -> None:
    modes = ring_modes()
    stats = mixture_mode_stats(torch.full((50, 2), 100.0, dtype=torch.float64), modes, RING_STD)
    assert stats == {"high_quality": 0.0, "modes_covered": 0, "modes_covered_strict": 0,
                     "reverse_kl": pytest.approx(math.log(8))}


def test_high_quality_threshold_is_three_std() -> None:
    modes = ring_modes()
    inside = modes[0] + torch.tensor([2.9 * RING_STD, 0.0], dtype=torch.float64)
    outside = modes[0] + torch.tensor([3.1 * RING_STD, 0.0], dtype=torch.float64)
    assert mixture_mode_stats(torch.stack([inside, outside]), modes, RING_STD)["high_quality"] == 0.5


def test_strict_rule_on_an_imbalanced_set() -> None:
    # N = 128 points, M = 8 modes: the strict threshold is 0.25 * 128 / 8 = 4 points, counted over all N points.
    # Modes hold 60, 10, 4, 3, 1, 0, 0, 0 high-quality points (78 in all); 50 points lie far away.
    # Strict: 60, 10 and 4 pass (>= is inclusive); 3 fails, though it would pass a threshold on the 78 alone.
    modes = ring_modes()
    counts = [60, 10, 4, 3, 1]
    points = torch.cat([points_at(modes, counts), torch.full((50, 2), 50.0, dtype=torch.float64)])
    stats = mixture_mode_stats(points, modes, RING_STD)
    p = [c / 78 for c in counts]
    assert stats["high_quality"] == pytest.approx(78 / 128)
    assert stats["modes_covered"] == 5
    assert stats["modes_covered_strict"] == 3
    assert stats["reverse_kl"] == pytest.approx(sum(q * math.log(q * 8) for q in p))


def test_mixture_accumulator_matches_one_shot() -> None:
    modes = ring_modes()
    points = torch.cat([points_at(modes, [7, 5, 3, 1, 0, 2, 9, 4]), torch.full((3, 2), 9.0, dtype=torch.float64)])
    points = points[torch.randperm(len(points), generator=torch.Generator().manual_seed(0))]
    metric = MixtureModeStats(modes, RING_STD)
    for batch in points.split(6):
        metric.update(batch)
    assert metric.compute() == mixture_mode_stats(points, modes, RING_STD)
    assert metric.higher_is_better["reverse_kl"] is False


def test_mean_and_stderr_by_hand() -> None:
    # Mean 2.5; sample variance (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3; stderr sqrt(5/3 / 4) = sqrt(5/12).
    mean, stderr = mean_and_stderr([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert stderr == pytest.approx(math.sqrt(5 / 12))
    assert mean_and_stderr([7.0]) == (7.0, 0.0)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: frechet_distance(randn(1, 3), randn(5, 3)), "at least 2 real samples but got 1"),
        (lambda: precision_recall(randn(3, 2), randn(10, 2), k=3), "k=3 needs at least 4 real samples but got 3"),
        (lambda: precision_recall(randn(10, 2), randn(2, 2)), "at least 4 generated samples but got 2"),
        (lambda: density_coverage(randn(5, 2), randn(10, 2), k=5), "k=5 needs at least 6 real samples"),
        (lambda: kernel_distance(randn(10, 2), randn(50, 2), subset_size=20), "at least 20 real samples but got 10"),
        (lambda: kernel_distance(randn(10, 2), randn(10, 2), subset_size=1), "subset_size is 1; pass an integer >= 2"),
        (lambda: precision_recall(randn(10, 2), randn(10, 2), k=0), "k is 0; pass an integer >= 1"),
        (lambda: frechet_distance(randn(10, 2), randn(10, 3)), "dimension 2 but generated ones 3"),
        (lambda: frechet_distance(randn(10), randn(10, 3)), r"shape \(10,\); expected a matrix"),
        (lambda: frechet_distance(randn(10, 2), torch.full((10, 2), math.nan)), "NaN or inf"),
        (lambda: FrechetDistance().compute(), "0 real samples"),
        (lambda: PrecisionRecall().compute(), "call update"),
        (lambda: mixture_mode_stats(randn(10, 2), ring_modes(), std=0.0), "std 0.0 is not positive"),
        (lambda: mean_and_stderr([]), "no values"),
    ],
)
def test_bad_inputs_raise_one_line_errors(call, message: str) -> None:
    with pytest.raises(GanforgeError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_float32_kernels_and_distances_give_the_float64_values() -> None:
    """The evaluator's float32 KID and k-NN metrics agree with float64 far below their sampling spread."""
    generator = torch.Generator().manual_seed(3)
    real, fake = torch.randn(600, 128, generator=generator), 0.9 * torch.randn(600, 128, generator=generator) + 0.1
    exact = kernel_distance(real, fake, 200, 20, generator=torch.Generator().manual_seed(0))
    fast = kernel_distance(real, fake, 200, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    assert fast[0] == pytest.approx(exact[0], rel=1e-4) and abs(fast[0] - exact[0]) < 1e-3 * exact[1]
    assert precision_recall(real, fake, dtype=torch.float32) == precision_recall(real, fake)
    assert density_coverage(real, fake, dtype=torch.float32) == density_coverage(real, fake)
