"""Run folders written by an earlier release still sample and resume.

tests/fixtures/release-0.1.0/ holds two tiny runs made with ganforge 0.1.0 (before the package
restructure): a toy model on ring8 and a DCGAN on digits with a moving average of G. Beside each
are the samples 0.1.0 drew from it (``sample RUN -n 8 --seed 0``) and the log row it wrote on
resuming to step 6. Float results are compared with a tolerance, since CPUs round differently.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import ganforge
from ganforge.runs.checkpoint import list_checkpoints, read_checkpoint

RELEASE = Path(__file__).resolve().parents[1] / "fixtures" / "release-0.1.0"
RUNS = ("toy-ring8", "dcgan-digits")


@pytest.fixture
def old_run(request, tmp_path) -> Path:
    """A writable copy of one fixture run (the originals stay untouched)."""
    copy = tmp_path / request.param
    shutil.copytree(RELEASE / request.param, copy)
    return copy


@pytest.mark.parametrize("old_run", RUNS, indirect=True)
def test_an_old_run_samples_what_it_sampled_before(old_run):
    generator = ganforge.load(old_run, device="cpu")
    expected = np.load(RELEASE / f"{old_run.name}-samples.npy")
    samples = generator.sample(8, 0).numpy()
    assert generator.step == 4 and samples.shape == expected.shape
    np.testing.assert_allclose(samples, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("old_run", RUNS, indirect=True)
def test_an_old_run_resumes_to_the_numbers_it_gave_before(old_run):
    result = ganforge.resume(old_run, steps=6, device="cpu", show_progress=False)
    assert result.step == 6 and read_checkpoint(old_run).step == 6
    assert [path.name for path in list_checkpoints(old_run)][-1] == "step_0000006"
    expected = json.loads((RELEASE / f"{old_run.name}-resumed-row.json").read_text())
    row = [json.loads(line) for line in (old_run / "metrics.jsonl").read_text().splitlines()][-1]
    timing = {"seconds_per_step", "images_per_second"}
    assert row.keys() == expected.keys() | {"threads"}  # the threads column came after release 0.1.0
    for key in expected.keys() - timing:
        assert row[key] == pytest.approx(expected[key], rel=1e-3, abs=1e-5), key
