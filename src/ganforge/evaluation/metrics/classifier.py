"""A small CNN digit classifier that ganforge trains itself, and the label statistics it gives.

The Inception network of FID was trained on ImageNet, which is no help for 28x28
digits and needs a 91 MB download. The digits carry their own labels, so ganforge
trains a small CNN on them once (a few seconds on a CPU) and caches it in the data
cache. Its penultimate layer gives the features for FID, KID, precision/recall and
density/coverage; its softmax gives an Inception-Score-style score, the class
histogram of generated samples and the number of classes (modes) they cover. On
stacked digits it classifies each channel, which counts the 1,000 modes.

The held-out accuracy is measured on a fixed stratified 20% of the 1,797 digits that
training never sees; training refuses to return a classifier below 97%.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import Tensor, nn

from ganforge.data.digits import load_digit_images
from ganforge.errors import GanforgeError

# Bump when the architecture, the data or the recipe changes: a cache of another version is retrained.
CLASSIFIER_VERSION = 1
NUM_CLASSES = 10
INPUT_SIZE = 28  # the classifier sees 1 x 28 x 28 images in [-1, 1]; other sizes are resized
FEATURE_DIM = 128  # width of the penultimate layer, the feature vector
MIN_HELD_OUT_ACCURACY = 0.97
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, RGB -> grayscale
INFERENCE_BATCH = 256  # images per forward pass in features() / probabilities(): small maps stay in cache


@dataclass(frozen=True)
class TrainingRecipe:
    """How the digit classifier is trained; saved in the cache's JSON beside the weights."""

    seed: int = 0
    held_out_fraction: float = 0.2  # of each class, never trained on
    epochs: int = 15  # about 5 s of one CPU core; held-out accuracy 99.7% with seed 0
    batch_size: int = 128
    lr: float = 4e-3  # peak Adam learning rate of the one-cycle schedule
    max_shift: int = 2  # augmentation: random shifts of up to this many pixels in x and y


class MaxPool2x2(nn.Module):
    """2x2 max pooling with stride 2 of an even-sized (B, C, H, W) map, the same values as nn.MaxPool2d(2).

    Without gradients it takes the maximum of four strided views, about four times faster on a CPU; with
    gradients F.max_pool2d, whose backward pass is the faster one.
    """

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H / 2, W / 2)
        if torch.is_grad_enabled() and x.requires_grad:
            return F.max_pool2d(x, 2)
        return torch.maximum(torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]),
                             torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]))


class DigitNet(nn.Module):
    """conv(16) -> pool -> conv(32) -> pool -> fc(128) -> fc(10); about 0.2 M parameters.

    The features are the 128 ReLU activations that feed the last layer, times ``feature_scale``.
    """

    def __init__(self) -> None:
        super().__init__()
        # Set after training so that the features' mean square over the training digits is 1 (then KID's kernel
        # (x . y / D + 1)^3 sees inputs of order 1, as with Inception features); the logits do not use it.
        self.register_buffer("feature_scale", torch.ones(()))
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), MaxPool2x2(),  # 16 x 14 x 14
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), MaxPool2x2(),  # 32 x 7 x 7
            nn.Flatten(), nn.Linear(32 * 7 * 7, FEATURE_DIM), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # (B, 1, 28, 28) -> features (B, 128), logits (B, 10)
        hidden = self.body(x)
        return hidden * self.feature_scale, self.head(hidden)


class DigitClassifier(nn.Module):
    """A trained DigitNet with its held-out accuracy; accepts images of any size, 1 or 3 channels.

    Inputs are (N, C, H, W), float in [-1, 1] or uint8 in [0, 255]; RGB is turned into luma, other sizes are
    resized to 28x28 (bilinear, antialiased). Outputs are on the classifier's device.
    """

    def __init__(self, net: DigitNet, accuracy: float) -> None:
        super().__init__()
        self.net = net.eval()
        self.accuracy = accuracy  # held-out accuracy, in [0, 1]

    def prepare(self, images: Tensor) -> Tensor:
        """(N, C, H, W) uint8 or float -> (N, 1, 28, 28) float32 in [-1, 1] on the classifier's device."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise GanforgeError(
                f"the digit classifier takes images (N, 1 or 3, H, W), got shape {tuple(images.shape)}"
            )
        device = next(self.net.parameters()).device
        x = images.to(device)
        x = x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float()
        if x.shape[1] == 3:
            x = (x * x.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
        return x

    @torch.no_grad()
    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Features (N, 128) and logits (N, 10) of images (N, C, H, W), from one pass."""
        if len(images) == 0:
            raise GanforgeError("the digit classifier got no images; pass at least one")
        pieces = [self.net(self.prepare(chunk)) for chunk in images.split(INFERENCE_BATCH)]
        return torch.cat([f for f, _ in pieces]), torch.cat([logits for _, logits in pieces])

    def features(self, images: Tensor) -> Tensor:
        """Penultimate-layer activations (N, 128), scaled to mean square 1 on the digits, of images (N, C, H, W)."""
        return self.features_and_logits(images)[0]

    def probabilities(self, images: Tensor) -> Tensor:
        """Softmax class probabilities (N, 10) of images (N, C, H, W)."""
        return self.features_and_logits(images)[1].softmax(dim=1)

    def predict(self, images: Tensor) -> Tensor:
        """The most likely digit (N,) int64 of images (N, C, H, W)."""
        return self.features_and_logits(images)[1].argmax(dim=1)

    def forward(self, images: Tensor) -> Tensor:  # (N, C, H, W) -> logits (N, 10)
        return self.features_and_logits(images)[1]


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def held_out_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Stratified split: (train indices, held-out indices), the held-out set being ``round(fraction * n_c)`` of each
    class c, chosen by a permutation seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    train, held_out = [], []
    for label in labels.unique(sorted=True):
        members = (labels == label).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=generator)]
        cut = round(fraction * len(members))
        held_out.append(members[:cut])
        train.append(members[cut:])
    return torch.cat(train).sort().values, torch.cat(held_out).sort().values


def random_shifts(images: Tensor, max_shift: int, generator: torch.Generator, background: float = -1.0) -> Tensor:
    """Shift each image (B, C, H, W) by its own random offset in [-max_shift, max_shift]^2, filling with background."""
    if max_shift == 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4, value=background)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, batch), generator=generator)
    rows = offsets[0, :, None] + torch.arange(height)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(width)  # (B, W)
    index = torch.arange(batch)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def accuracy_of(net: DigitNet, images: Tensor, labels: Tensor) -> float:
    """Fraction of images (N, 1, 28, 28) in [-1, 1] whose argmax logit is their label."""
    net.eval()
    with torch.no_grad():
        predictions = torch.cat([net(chunk)[1].argmax(dim=1) for chunk in images.split(INFERENCE_BATCH)])
    return float((predictions == labels).double().mean())


def train_digit_classifier(recipe: TrainingRecipe = TrainingRecipe(),
                           on_epoch: Callable[[int], None] | None = None) -> DigitClassifier:
    """Train DigitNet on the digits with ``recipe``, deterministic given its seed; a few seconds on a CPU.
    ``on_epoch(n)`` is told each finished epoch (a progress bar).

    Raises GanforgeError if the held-out accuracy is below 97% (it should be about 99%).
    """
    images, labels = load_digit_images(INPUT_SIZE, 1)
    x = images.float().div(127.5).sub(1.0)  # (1797, 1, 28, 28) in [-1, 1]
    train_idx, held_idx = held_out_split(labels, recipe.held_out_fraction, recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    with torch.random.fork_rng(devices=[]):  # seed the weight initialisation without touching the global RNG
        torch.manual_seed(recipe.seed)
        net = DigitNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    steps_per_epoch = math.ceil(len(train_idx) / recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, epochs=recipe.epochs,
                                                   steps_per_epoch=steps_per_epoch)
    net.train()
    for epoch in range(recipe.epochs):
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        for batch in order.split(recipe.batch_size):
            _, logits = net(random_shifts(x[batch], recipe.max_shift, generator))
            loss = F.cross_entropy(logits, labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if on_epoch is not None:
            on_epoch(epoch + 1)
    accuracy = accuracy_of(net, x[held_idx], labels[held_idx])
    with torch.no_grad():
        hidden = torch.cat([net(chunk)[0] for chunk in x[train_idx].split(INFERENCE_BATCH)])
        net.feature_scale.fill_(float(hidden.square().mean().rsqrt()))
    if accuracy < MIN_HELD_OUT_ACCURACY:
        raise GanforgeError(
            f"the digit classifier reached {accuracy:.1%} held-out accuracy, below the {MIN_HELD_OUT_ACCURACY:.0%} "
            "its metrics need; this is a bug in ganforge's recipe (please report it), or use --feature-extractor inception"
        )
    return DigitClassifier(net, accuracy)


# ---------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------


def classifier_paths(cache_dir: Path, recipe: TrainingRecipe = TrainingRecipe()) -> tuple[Path, Path]:
    """(weights .safetensors, info .json) of the cached digit classifier under ``cache_dir / "classifiers"``."""
    stem = cache_dir / "classifiers" / f"digits-v{CLASSIFIER_VERSION}-seed{recipe.seed}"
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_cache(weights_path: Path, info_path: Path, recipe: TrainingRecipe) -> DigitClassifier:
    """The cached classifier; raises ValueError/OSError/KeyError/RuntimeError on any mismatch or damage."""
    info: dict[str, Any] = json.loads(info_path.read_text())
    if info["version"] != CLASSIFIER_VERSION or info["recipe"] != asdict(recipe):
        raise ValueError(f"cache holds version {info['version']} / recipe {info['recipe']}")
    data = weights_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != info["weights_sha256"]:
        raise ValueError("weights do not match their recorded sha256")
    accuracy = float(info["held_out_accuracy"])
    if not MIN_HELD_OUT_ACCURACY <= accuracy <= 1:
        raise ValueError(f"recorded accuracy {accuracy} is out of range")
    with torch.random.fork_rng(devices=[]):  # the random initialisation is overwritten: leave the caller's RNG alone
        net = DigitNet()
    net.load_state_dict(load_tensors(data))
    return DigitClassifier(net, accuracy)


def load_or_train_digit_classifier(cache_dir: Path, recipe: TrainingRecipe = TrainingRecipe()) -> DigitClassifier:
    """The digit classifier from ``cache_dir / "classifiers"``, trained and cached there first if missing.

    The cache is a .safetensors file and a .json (held-out accuracy, version, recipe, training time, sha256 of the
    weights), each written atomically, the JSON last. A cache that is damaged, or of another version or recipe,
    is retrained with a warning; a cache folder that cannot be written only warns.
    """
    weights_path, info_path = classifier_paths(Path(cache_dir), recipe)
    if weights_path.exists() or info_path.exists():
        try:
            return _read_cache(weights_path, info_path, recipe)
        except Exception as error:  # noqa: BLE001 - any damage means retrain; the cache is ours to replace
            warnings.warn(f"digit classifier cache {info_path} is unusable ({type(error).__name__}: {error}); "
                          "retraining it", stacklevel=2)
    start = time.perf_counter()
    log = logging.getLogger("ganforge")
    log.info("training the digit classifier that the image metrics use (once; cached in %s)", weights_path.parent)
    progress = Progress(TextColumn("digit classifier"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                        disable=not sys.stderr.isatty())
    with progress:
        task = progress.add_task("", total=recipe.epochs)
        classifier = train_digit_classifier(recipe, on_epoch=lambda epoch: progress.update(task, completed=epoch))
    seconds = time.perf_counter() - start
    log.info("digit classifier trained in %.0f s: %.1f%% held-out accuracy", seconds, 100 * classifier.accuracy)
    state = {name: tensor.contiguous() for name, tensor in classifier.net.state_dict().items()}
    data = save_tensors(state)
    info = {
        "version": CLASSIFIER_VERSION,
        "recipe": asdict(recipe),
        "held_out_accuracy": classifier.accuracy,
        "train_seconds": round(seconds, 2),
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        "torch": torch.__version__,
    }
    try:
        _write_atomically(weights_path, data)
        _write_atomically(info_path, (json.dumps(info, indent=2) + "\n").encode())
    except OSError as error:
        warnings.warn(f"could not cache the digit classifier in {weights_path.parent} ({error}); "
                      "it will be retrained next time", stacklevel=2)
    return classifier


# ---------------------------------------------------------------------------
# Label statistics (pure functions)
# ---------------------------------------------------------------------------


def classifier_score(probabilities: Tensor, eps: float = 1e-12) -> float:
    """Inception-Score-style score exp(E_x[KL(p(y|x) || p(y))]) of class probabilities (N, K), with p(y) their mean.

    1 when every sample gets the same prediction, K when predictions are confident and spread evenly over the K
    classes. Computed over all N samples at once (not the 10 splits of the Inception Score paper), in float64.
    """
    if probabilities.dim() != 2 or len(probabilities) == 0:
        raise GanforgeError(f"classifier_score takes probabilities (N, K) with N >= 1, got {tuple(probabilities.shape)}")
    p = probabilities.detach().double()
    marginal = p.mean(dim=0, keepdim=True)
    kl = (p * (torch.log(p + eps) - torch.log(marginal + eps))).sum(dim=1)
    return float(torch.exp(kl.mean()))


def class_histogram(predictions: Tensor, classes: int) -> Tensor:
    """Counts (classes,) int64 of each class among labels (N,) or the argmax of probabilities (N, classes)."""
    if predictions.dim() == 2:
        if predictions.shape[1] != classes:
            raise GanforgeError(f"probabilities have {predictions.shape[1]} columns but {classes} classes were asked for")
        predictions = predictions.argmax(dim=1)
    if predictions.dim() != 1:
        raise GanforgeError(f"class_histogram takes labels (N,) or probabilities (N, K), got {tuple(predictions.shape)}")
    labels = predictions.long().cpu()
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise GanforgeError(f"labels must lie in 0..{classes - 1}, got {int(labels.min())}..{int(labels.max())}")
    return torch.bincount(labels, minlength=classes)


def classes_covered(predictions: Tensor, classes: int, min_count: int = 1) -> int:
    """How many of the classes hold at least ``min_count`` of the labels (N,) or probabilities' argmax (N, classes)."""
    return int((class_histogram(predictions, classes) >= min_count).sum())


def kl_to_uniform(counts: Tensor) -> float:
    """KL(p || u) = sum_k p_k log(p_k K) in nats of the histogram p = counts / sum(counts) against uniform over K bins.

    0 for a perfectly even histogram, log K when everything falls in one bin; 0 log 0 = 0.
    """
    counts = counts.detach().double().flatten()
    total = float(counts.sum())
    if total <= 0:
        raise GanforgeError("kl_to_uniform got an empty histogram; pass counts with at least one sample")
    p = counts[counts > 0] / total
    return max(float((p * torch.log(p * counts.numel())).sum()), 0.0)
