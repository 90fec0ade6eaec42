"""How the digit classifier reads a stacked-digits generator's samples, beside real images.

The stacked-digits KL counts each channel's argmax class. A skewed count can mean that G draws the wrong mix
of digits, or that it draws unclear digits the classifier reads as other ones. This tells the two apart:
for generated and real digits (every channel of every image) it prints each class's share by argmax, the
mix of real classes whose mean classifier features best give the digits' mean features (non-negative least
squares, summing to one), the share the classifier is unsure of (first choice below 0.9), and the argmax
shares among the digits it is surest of (above 0.99). Each share is printed as a multiple of 1/10.

    python benchmarks/stacked_reading.py RUN_OR_CHECKPOINT [--samples 6000]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.optimize import nnls
from torch import Tensor

import ganforge
from ganforge.errors import GanforgeError
from ganforge.evaluation.evaluator import Evaluator, per_channel

CLASSES = 10
UNSURE_BELOW = 0.9
SURE_ABOVE = 0.99


def read(evaluator: Evaluator, images: Tensor) -> tuple[Tensor, Tensor]:
    """Classifier features (N * 3, 128) and probabilities (N * 3, 10) of every channel of images (N, 3, H, W)."""
    features, logits = evaluator.classifier.features_and_logits(per_channel(images))
    return features, logits.softmax(dim=1)


def shares(digits: Tensor) -> list[float]:
    """Each class's share of digits (N,), times 10."""
    counts = torch.bincount(digits, minlength=CLASSES).double()
    return [round(float(x), 3) for x in counts / counts.sum() * CLASSES]


def feature_mix(class_means: Tensor, mean_features: Tensor) -> list[float]:
    """Weights w >= 0, sum 1, with sum_c w_c * class_means[c] closest to mean_features; times 10."""
    stiffness = 100.0  # a heavily weighted row of ones makes the weights sum to one
    matrix = np.vstack([class_means.double().T.numpy(), np.full((1, CLASSES), stiffness)])
    target = np.concatenate([mean_features.double().numpy(), [stiffness]])
    weights, _ = nnls(matrix, target)
    return [round(float(w) * CLASSES, 3) for w in weights]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a stacked-digits run folder or one of its checkpoints")
    parser.add_argument("--samples", type=int, default=6000, help="generated and real images to read")
    args = parser.parse_args()
    try:
        generator = ganforge.load(args.run, device="cpu")
    except GanforgeError as error:
        parser.error(str(error))
    if generator.config.data.data != "stacked-digits":
        parser.error(f"{args.run} trained on {generator.config.data.data}, not stacked-digits")
    evaluator = Evaluator(generator.config, "modes_covered,reverse_kl")
    real_features, real_probabilities = read(evaluator, evaluator.real[:args.samples])
    real_digits = real_probabilities.argmax(dim=1)
    class_means = torch.stack([real_features[real_digits == c].mean(dim=0) for c in range(CLASSES)])
    pieces = [read(evaluator, batch) for batch in generator.sample_batches(args.samples, seed=0)]
    fake_features = torch.cat([f for f, _ in pieces])
    fake_probabilities = torch.cat([p for _, p in pieces])
    for name, features, probabilities in (("real", real_features, real_probabilities),
                                          ("generated", fake_features, fake_probabilities)):
        confidence, digits = probabilities.max(dim=1)
        sure = confidence > SURE_ABOVE
        print(f"{name} ({len(digits)} digits)")
        print(f"  argmax share x10:         {shares(digits)}")
        print(f"  feature-mean mix x10:     {feature_mix(class_means, features.mean(dim=0))}")
        print(f"  unsure (first < {UNSURE_BELOW}):     {float((confidence < UNSURE_BELOW).double().mean()):.3f}")
        print(f"  sure (first > {SURE_ABOVE}): {float(sure.double().mean()):.3f} of digits, "
              f"argmax share x10 {shares(digits[sure])}")


if __name__ == "__main__":
    with torch.no_grad():
        main()
