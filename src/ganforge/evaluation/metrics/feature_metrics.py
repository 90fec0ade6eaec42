"""Sample-quality metrics on two sets of feature vectors: real (N, D) and generated (M, D).

The features come from any fixed network (Inception for FID/KID proper, or a
small classifier for digits); this module only does the maths, in float64 (KID and the k-NN metrics
take ``dtype=torch.float32`` for speed, as the evaluator uses them):

- Frechet distance between Gaussians fitted to each set (FID, Heusel et al. 2017);
- KID, the unbiased polynomial-kernel MMD^2 averaged over random subsets (Binkowski et al. 2018);
- precision and recall on k-NN manifolds (Kynkaanniemi et al. 2019);
- density and coverage (Naeem et al. 2020).

Each metric is a pure function plus an accumulator with update(features, real) and
compute() -> dict[str, float], so features can be fed batch by batch. Pairwise
distances are computed `chunk_size` rows at a time: 10,000 real and 10,000 generated
samples of dimension 128 peak at about 300 MB, never a full 10,000 x 10,000 matrix.

torchmetrics has FID and KID only as classes (FrechetInceptionDistance,
KernelInceptionDistance) whose maths sits in private helpers, and has neither
precision/recall nor density/coverage; the tests check our FID and KID against it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ganforge.errors import GanforgeError

# Rows per torch.cdist block: a (1024, 10_000) float64 block is 80 MB.
DEFAULT_CHUNK_SIZE = 1024
# KID defaults of Binkowski et al. and torch-fidelity: 100 subsets of 1000 samples.
DEFAULT_KID_SUBSET_SIZE = 1000
DEFAULT_KID_SUBSETS = 100


def _check_features(features: Tensor, name: str, min_samples: int, purpose: str) -> Tensor:
    """Return features detached, after checking they are a finite (N, D) matrix with N >= min_samples."""
    if features.dim() != 2:
        raise GanforgeError(f"{name} features have shape {tuple(features.shape)}; expected a matrix (N, D)")
    if features.shape[0] < min_samples:
        raise GanforgeError(
            f"{purpose} needs at least {min_samples} {name} samples but got {features.shape[0]}; pass more samples"
        )
    if not torch.isfinite(features).all():
        raise GanforgeError(f"{name} features contain NaN or inf; check that the generator has not diverged")
    return features.detach()


def _check_pair(real: Tensor, fake: Tensor, min_samples: int, purpose: str,
                dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Check both sets and return them in ``dtype`` (float64 unless asked) on the real features' device."""
    real = _check_features(real, "real", min_samples, purpose).to(dtype)
    fake = _check_features(fake, "generated", min_samples, purpose).to(dtype)
    if real.shape[1] != fake.shape[1]:
        raise GanforgeError(
            f"real features have dimension {real.shape[1]} but generated ones {fake.shape[1]}; "
            "extract both with the same network"
        )
    return real, fake.to(real.device)


def _check_positive_int(value: int, name: str, minimum: int = 1) -> None:
    """Raise GanforgeError unless value is an int >= minimum."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise GanforgeError(f"{name} is {value!r}; pass an integer >= {minimum}")


# ---------------------------------------------------------------------------
# Frechet distance
# ---------------------------------------------------------------------------


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D), in float64, of features (N, D) with N >= 2."""
    x = _check_features(features, "input", 2, "a covariance").double()
    mu = x.mean(dim=0)
    centred = x - mu
    return mu, centred.T @ centred / (x.shape[0] - 1)


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix; rounding negatives clamped to 0."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def frechet_distance_from_stats(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Frechet distance ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) between N(mu1, S1) and N(mu2, S2).

    S1 S2 is not symmetric, but it is similar to A = S1^{1/2} S2 S1^{1/2}, which is symmetric PSD, so
    Tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i(A)) with real eigenvalues from eigvalsh; this avoids the complex
    parts and singular-matrix warnings of scipy.linalg.sqrtm. Computed in float64; the result is clamped at 0.
    """
    device = mu1.device
    mu1, sigma1, mu2, sigma2 = (t.detach().double().to(device) for t in (mu1, sigma1, mu2, sigma2))
    if mu1.dim() != 1:
        raise GanforgeError(f"mu1 has shape {tuple(mu1.shape)}; expected a vector (D,)")
    dim = mu1.shape[0]
    for name, mu in (("mu1", mu1), ("mu2", mu2)):
        if mu.shape != (dim,):
            raise GanforgeError(f"{name} has shape {tuple(mu.shape)}; expected ({dim},) like mu1")
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        if sigma.shape != (dim, dim):
            raise GanforgeError(f"{name} has shape {tuple(sigma.shape)}; expected ({dim}, {dim}) to match the means")
    sqrt_sigma1 = _sqrtm_psd(sigma1)
    a = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
    a = 0.5 * (a + a.T)  # remove rounding asymmetry before eigvalsh
    trace_sqrt = torch.linalg.eigvalsh(a).clamp(min=0).sqrt().sum()
    distance = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return float(distance.clamp(min=0))


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """Frechet distance between Gaussians fitted to real (N, D) and generated (M, D) features; N, M >= 2."""
    real, fake = _check_pair(real, fake, 2, "the Frechet distance (a covariance)")
    return frechet_distance_from_stats(*gaussian_stats(real), *gaussian_stats(fake))


class _RunningMoments:
    """Count, mean and centred scatter matrix of a stream of (B, D) batches, merged with Chan et al.'s update.

    Merging centred batch statistics avoids the cancellation of sum(x x^T) - N mu mu^T when features have a
    large mean compared with their spread.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None  # (D,) float64
        self.scatter: Tensor | None = None  # (D, D) float64, sum of (x - mean)(x - mean)^T

    def update(self, x: Tensor) -> None:
        """Fold a float64 batch (B, D) into the statistics."""
        batch_mean = x.mean(dim=0)
        centred = x - batch_mean
        batch_scatter = centred.T @ centred
        if self.mean is None or self.scatter is None:
            self.count, self.mean, self.scatter = x.shape[0], batch_mean, batch_scatter
            return
        total = self.count + x.shape[0]
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (x.shape[0] / total)
        self.scatter = self.scatter + batch_scatter + torch.outer(delta, delta) * (self.count * x.shape[0] / total)
        self.count = total

    def covariance(self) -> Tensor:
        """Unbiased covariance (D, D); needs count >= 2."""
        assert self.scatter is not None
        return self.scatter / (self.count - 1)


class FrechetDistance:
    """Frechet distance accumulated over batches: update(features, real) for both sets, then compute().

    Keeps only running means and covariances (D + D^2 numbers per set), never the features themselves.
    """

    higher_is_better: ClassVar[dict[str, bool]] = {"frechet_distance": False}

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget both sets."""
        self._moments = {True: _RunningMoments(), False: _RunningMoments()}

    def update(self, features: Tensor, real: bool) -> None:
        """Add a batch of real (real=True) or generated (real=False) features (B, D)."""
        name = "real" if real else "generated"
        x = _check_features(features, name, 1, "FrechetDistance.update()").double()
        for moments in self._moments.values():
            if moments.mean is not None and moments.mean.shape[0] != x.shape[1]:
                raise GanforgeError(
                    f"{name} features have dimension {x.shape[1]} but earlier ones {moments.mean.shape[0]}; "
                    "extract all features with the same network"
                )
        self._moments[real].update(x)

    def compute(self) -> dict[str, float]:
        """Frechet distance between everything passed to update() so far."""
        for real, name in ((True, "real"), (False, "generated")):
            if self._moments[real].count < 2:
                raise GanforgeError(
                    f"FrechetDistance has {self._moments[real].count} {name} samples; "
                    f"call update(features, real={real}) with at least 2 in total before compute()"
                )
        real, fake = self._moments[True], self._moments[False]
        assert real.mean is not None and fake.mean is not None
        return {
            "frechet_distance": frechet_distance_from_stats(
                real.mean, real.covariance(), fake.mean, fake.covariance()
            )
        }


# ---------------------------------------------------------------------------
# Kernel distance (KID)
# ---------------------------------------------------------------------------


def _poly_kernel_sum(x: Tensor, y: Tensor, chunk_size: int) -> Tensor:
    """Sum over all pairs of k(x_i, y_j) = (x_i . y_j / D + 1)^3, `chunk_size` rows of x at a time."""
    dim = x.shape[1]
    total = x.new_zeros((), dtype=torch.float64)  # float32 kernels are summed in float64
    for start in range(0, x.shape[0], chunk_size):
        total += ((x[start : start + chunk_size] @ y.T) / dim + 1).pow(3).sum(dtype=torch.float64)
    return total


def poly_mmd2_unbiased(x: Tensor, y: Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE,
                       dtype: torch.dtype = torch.float64) -> float:
    """Unbiased MMD^2 between samples x (n, D) and y (m, D) under the cubic kernel k(a, b) = (a . b / D + 1)^3.

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (n (n-1)) + sum_{i != j} k(y_i, y_j) / (m (m-1))
              - 2 sum_{i, j} k(x_i, y_j) / (n m).
    Unbiased, so it can be slightly negative when both samples come from the same distribution. n, m >= 2.
    ``dtype`` float32 computes the kernels about four times faster on a CPU (sums stay float64), changing KID
    by about 1e-6 of its value, far below its spread over subsets.
    """
    _check_positive_int(chunk_size, "chunk_size")
    x, y = _check_pair(x, y, 2, "the unbiased MMD", dtype)
    n, m, dim = x.shape[0], y.shape[0], x.shape[1]
    diag_xx = ((x * x).sum(dim=1) / dim + 1).pow(3).sum(dtype=torch.float64)
    diag_yy = ((y * y).sum(dim=1) / dim + 1).pow(3).sum(dtype=torch.float64)
    k_xx = (_poly_kernel_sum(x, x, chunk_size) - diag_xx) / (n * (n - 1))
    k_yy = (_poly_kernel_sum(y, y, chunk_size) - diag_yy) / (m * (m - 1))
    k_xy = _poly_kernel_sum(x, y, chunk_size) / (n * m)
    return float(k_xx + k_yy - 2 * k_xy)


def kernel_distance(
    real: Tensor,
    fake: Tensor,
    subset_size: int = DEFAULT_KID_SUBSET_SIZE,
    num_subsets: int = DEFAULT_KID_SUBSETS,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[float, float]:
    """KID: mean and std (ddof=0, as torch-fidelity and torchmetrics) of `poly_mmd2_unbiased` over random subsets.

    Each of `num_subsets` draws takes `subset_size` real and `subset_size` generated samples without replacement.
    Pass a seeded CPU torch.Generator for reproducible subsets; None uses torch's global RNG. Lower is better.
    """
    _check_positive_int(subset_size, "KID subset_size", minimum=2)
    _check_positive_int(num_subsets, "KID num_subsets")
    real, fake = _check_pair(real, fake, subset_size, f"KID with subset_size={subset_size}", dtype)
    scores = []
    for _ in range(num_subsets):
        real_idx = torch.randperm(real.shape[0], generator=generator)[:subset_size].to(real.device)
        fake_idx = torch.randperm(fake.shape[0], generator=generator)[:subset_size].to(real.device)
        scores.append(poly_mmd2_unbiased(real[real_idx], fake[fake_idx], dtype=dtype))
    values = torch.tensor(scores, dtype=torch.float64)
    return float(values.mean()), float(values.std(correction=0))


# ---------------------------------------------------------------------------
# k-NN manifolds: precision/recall and density/coverage
# ---------------------------------------------------------------------------


def _kth_neighbour_radii(x: Tensor, k: int, chunk_size: int) -> Tensor:
    """Distance (N,) from each row of x (N, D) to its k-th nearest neighbour within x.

    Taken as the (k+1)-th smallest distance including the point itself, as the reference implementations do.
    """
    radii = [
        torch.cdist(x[start : start + chunk_size], x).kthvalue(k + 1, dim=1).values
        for start in range(0, x.shape[0], chunk_size)
    ]
    return torch.cat(radii)


def _ball_membership(queries: Tensor, centres: Tensor, radii: Tensor, chunk_size: int) -> tuple[Tensor, Tensor]:
    """For closed balls B(centres_i, radii_i): how many balls hold each query (Q,), and which balls hold any (C,)."""
    counts = []
    holds_any = torch.zeros(centres.shape[0], dtype=torch.bool, device=centres.device)
    for start in range(0, queries.shape[0], chunk_size):
        inside = torch.cdist(queries[start : start + chunk_size], centres) <= radii  # (chunk, C)
        counts.append(inside.sum(dim=1))
        holds_any |= inside.any(dim=0)
    return torch.cat(counts), holds_any


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, chunk_size: int = DEFAULT_CHUNK_SIZE,
                     dtype: torch.dtype = torch.float64) -> dict[str, float]:
    """Improved precision and recall of Kynkaanniemi et al. 2019 between real (N, D) and generated (M, D) features.

    The real manifold is the union of closed balls around each real sample with radius its distance to its k-th
    nearest real neighbour; likewise for the generated manifold. precision = fraction of generated samples inside
    the real manifold (quality); recall = fraction of real samples inside the generated manifold (diversity).
    Needs more than k samples in each set. Both in [0, 1], higher is better.
    """
    _check_positive_int(k, "k")
    _check_positive_int(chunk_size, "chunk_size")
    real, fake = _check_pair(real, fake, k + 1, f"precision/recall with k={k}", dtype)
    fake_in_real, _ = _ball_membership(fake, real, _kth_neighbour_radii(real, k, chunk_size), chunk_size)
    real_in_fake, _ = _ball_membership(real, fake, _kth_neighbour_radii(fake, k, chunk_size), chunk_size)
    return {
        "precision": float((fake_in_real > 0).double().mean()),
        "recall": float((real_in_fake > 0).double().mean()),
    }


def density_coverage(real: Tensor, fake: Tensor, k: int = 5, chunk_size: int = DEFAULT_CHUNK_SIZE,
                     dtype: torch.dtype = torch.float64) -> dict[str, float]:
    """Density and coverage of Naeem et al. 2020 between real X (N, D) and generated Y (M, D) features.

    With B_i the closed ball around X_i of radius NND_k(X_i), the distance to its k-th nearest real neighbour:
    density = (1 / (k M)) sum_j sum_i 1[Y_j in B_i]   (about 1 when Y matches X; above 1 when Y crowds
              into dense real regions), and
    coverage = (1 / N) sum_i 1[exists j: Y_j in B_i]  (in [0, 1]).
    Only real balls are used, so outliers among generated samples cannot inflate the scores. Needs more than
    k real samples. Higher is better for both.
    """
    _check_positive_int(k, "k")
    _check_positive_int(chunk_size, "chunk_size")
    real = _check_features(real, "real", k + 1, f"density/coverage with k={k}")
    real, fake = _check_pair(real, fake, 1, "density/coverage", dtype)
    counts, covered = _ball_membership(fake, real, _kth_neighbour_radii(real, k, chunk_size), chunk_size)
    return {
        "density": float(counts.sum()) / (k * fake.shape[0]),
        "coverage": float(covered.double().mean()),
    }


# ---------------------------------------------------------------------------
# Accumulators that keep the features
# ---------------------------------------------------------------------------


class _FeatureStore:
    """Keeps real and generated feature batches for metrics that need every sample at compute()."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget both sets."""
        self._batches: dict[bool, list[Tensor]] = {True: [], False: []}

    def update(self, features: Tensor, real: bool) -> None:
        """Add a batch of real (real=True) or generated (real=False) features (B, D)."""
        name = "real" if real else "generated"
        x = _check_features(features, name, 1, f"{type(self).__name__}.update()")
        for batches in self._batches.values():
            if batches and batches[0].shape[1] != x.shape[1]:
                raise GanforgeError(
                    f"{name} features have dimension {x.shape[1]} but earlier ones {batches[0].shape[1]}; "
                    "extract all features with the same network"
                )
        self._batches[real].append(x)

    def _features(self) -> tuple[Tensor, Tensor]:
        """All real and all generated features so far."""
        if not self._batches[True] or not self._batches[False]:
            raise GanforgeError(
                f"{type(self).__name__}.compute() needs real and generated features; "
                "call update(features, real=True) and update(features, real=False) first"
            )
        return torch.cat(self._batches[True]), torch.cat(self._batches[False])


class KernelDistance(_FeatureStore):
    """KID accumulated over batches; compute() draws subsets from a generator seeded with `seed`, so repeats agree."""

    # kid_std is a spread, not a score: smaller means a more trustworthy kid_mean.
    higher_is_better: ClassVar[dict[str, bool]] = {"kid_mean": False, "kid_std": False}

    def __init__(
        self, subset_size: int = DEFAULT_KID_SUBSET_SIZE, num_subsets: int = DEFAULT_KID_SUBSETS, seed: int = 0
    ) -> None:
        _check_positive_int(subset_size, "KID subset_size", minimum=2)
        _check_positive_int(num_subsets, "KID num_subsets")
        self.subset_size, self.num_subsets, self.seed = subset_size, num_subsets, seed
        super().__init__()

    def compute(self) -> dict[str, float]:
        """KID mean and std over subsets of everything passed to update()."""
        generator = torch.Generator().manual_seed(self.seed)
        mean, std = kernel_distance(*self._features(), self.subset_size, self.num_subsets, generator)
        return {"kid_mean": mean, "kid_std": std}


class PrecisionRecall(_FeatureStore):
    """Improved precision and recall (k-NN manifolds) accumulated over batches."""

    higher_is_better: ClassVar[dict[str, bool]] = {"precision": True, "recall": True}

    def __init__(self, k: int = 3, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        _check_positive_int(k, "k")
        self.k, self.chunk_size = k, chunk_size
        super().__init__()

    def compute(self) -> dict[str, float]:
        """Precision and recall of everything passed to update()."""
        return precision_recall(*self._features(), k=self.k, chunk_size=self.chunk_size)


class DensityCoverage(_FeatureStore):
    """Density and coverage accumulated over batches."""

    higher_is_better: ClassVar[dict[str, bool]] = {"density": True, "coverage": True}

    def __init__(self, k: int = 5, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        _check_positive_int(k, "k")
        self.k, self.chunk_size = k, chunk_size
        super().__init__()

    def compute(self) -> dict[str, float]:
        """Density and coverage of everything passed to update()."""
        return density_coverage(*self._features(), k=self.k, chunk_size=self.chunk_size)
