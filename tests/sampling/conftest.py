"""Trained runs to sample from: a 2-step tiny DCGAN on the digits and a 2-step toy on ring8."""

from __future__ import annotations

from pathlib import Path

import pytest

import ganforge


@pytest.fixture
def dcgan_run(tmp_path, tiny_dcgan) -> Path:
    return ganforge.train(out=tmp_path / "dcgan", steps=2, show_progress=False, **tiny_dcgan).run_dir


@pytest.fixture
def toy_run(tmp_path, tiny_toy) -> Path:
    return ganforge.train(out=tmp_path / "toy", steps=2, show_progress=False, **tiny_toy).run_dir
