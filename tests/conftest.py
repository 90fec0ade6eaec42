"""Shared test set-up: a deterministic torch on one thread, and tiny runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.evaluation.metrics.classifier import DigitClassifier, load_or_train_digit_classifier

torch.set_num_threads(1)  # small ops are faster on one thread, and results do not depend on the core count

TINY_TOY = {"model": "toy", "data": "ring8", "width": 16, "batch_size": 32, "log_every": 2,
            "sample_every": 0, "checkpoint_every": 0, "tensorboard": False,
            "preset": "lecture"}  # the loop's mechanics, not ring8's tuned preset (whose schedule spans --steps)
TINY_DCGAN = {"model": "dcgan", "data": "digits", "image_size": 28, "width": 4, "batch_size": 8, "log_every": 2,
              "sample_every": 0, "checkpoint_every": 0, "tensorboard": False,
              "preset": "lecture"}  # the lectures' loss, as the tests of the loop's mechanics expect (digits: rpgan)


@pytest.fixture
def tiny_toy() -> dict:
    """Config keys of a toy run that trains in milliseconds per step."""
    return dict(TINY_TOY)


@pytest.fixture
def tiny_dcgan() -> dict:
    """Config keys of a 28x28 DCGAN run on the embedded digits with 4 base filters."""
    return dict(TINY_DCGAN)


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data cache holding the trained digit classifier: trained once per test session, shared by all tests."""
    cache = tmp_path_factory.getbasetemp() / "ganforge-cache"
    load_or_train_digit_classifier(cache)
    return cache


@pytest.fixture(scope="session")
def digit_classifier(classifier_cache: Path) -> DigitClassifier:
    return load_or_train_digit_classifier(classifier_cache)


@pytest.fixture
def dcgan_run(tmp_path: Path, tiny_dcgan: dict) -> Path:
    """A 2-step tiny DCGAN run on the digits, to sample and evaluate from."""
    return ganforge.train(out=tmp_path / "dcgan", steps=2, show_progress=False, **tiny_dcgan).run_dir


@pytest.fixture
def toy_run(tmp_path: Path, tiny_toy: dict) -> Path:
    """A 2-step toy run on ring8 (test modules that need another one define their own)."""
    return ganforge.train(out=tmp_path / "toy", steps=2, show_progress=False, **tiny_toy).run_dir
