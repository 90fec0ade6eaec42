"""The data of a run: found from any directory, and never changed under a resumed run unnoticed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

import ganforge
from ganforge.cli import app
from ganforge.config.schema import DataConfig
from ganforge.data import load_data
from ganforge.errors import DataError, GanforgeError
from ganforge.runs.checkpoint import read_checkpoint
from ganforge.runs.metrics_log import events, read_metrics

TINY_MLP = {"model": "mlp", "image_size": 8, "channels": 1, "width": 8, "z_dim": 4, "batch_size": 8, "steps": 2,
            "log_every": 1, "sample_every": 0, "checkpoint_every": 0, "tensorboard": False, "device": "cpu"}


def write_images(folder: Path, count: int, start: int = 0) -> None:
    """`count` 8x8 greyscale noise PNGs named by their index, from `start`."""
    folder.mkdir(exist_ok=True)
    for index in range(start, start + count):
        pixels = np.random.default_rng(index).integers(0, 256, (8, 8), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:02d}.png")


@pytest.fixture
def folder_run(tmp_path, monkeypatch) -> Path:
    """A 2-step run trained on `--data imgs` (50 images), given relative to the working directory tmp_path."""
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "imgs", 50)
    return ganforge.train(out="run", data="imgs", show_progress=False, **TINY_MLP).run_dir.resolve()


def assert_refused(run: Path, *fragments: str) -> None:
    """Resuming is a one-line DataError holding every fragment, and leaves the run as it was."""
    before = (run / "metrics.jsonl").read_text()
    with pytest.raises(DataError) as refused:
        ganforge.resume(run, steps=4, show_progress=False)
    message = str(refused.value)
    assert "\n" not in message
    for fragment in (*fragments, "--allow-data-change"):
        assert fragment in message, (fragment, message)
    assert read_checkpoint(run).step == 2 and (run / "metrics.jsonl").read_text() == before


def test_resuming_after_11_of_50_images_were_deleted_is_an_error_naming_both_counts(folder_run):
    for index in range(11):
        (folder_run.parent / "imgs" / f"{index:02d}.png").unlink()
    assert_refused(folder_run, "the data has 39 images, the run trained on 50")


def test_resuming_after_images_were_added_is_an_error_naming_both_counts(folder_run):
    write_images(folder_run.parent / "imgs", 5, start=50)
    assert_refused(folder_run, "the data has 55 images, the run trained on 50")


def test_resuming_after_an_image_was_replaced_is_an_error(folder_run):
    other = np.random.default_rng(99).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(other).save(folder_run.parent / "imgs" / "07.png")
    assert_refused(folder_run, "the data's 50 images are not the 50 the run trained on")


def test_files_touched_but_unchanged_resume_without_a_word(folder_run, caplog):
    for file in (folder_run.parent / "imgs").iterdir():
        os.utime(file, (1e9, 1e9))
    assert ganforge.resume(folder_run, steps=3, show_progress=False).step == 3
    assert not events(read_metrics(folder_run)) and "warning" not in caplog.text.lower()


def test_allow_data_change_resumes_on_the_changed_data_with_a_warning_and_an_event(folder_run, caplog):
    for index in range(11):
        (folder_run.parent / "imgs" / f"{index:02d}.png").unlink()

    result = ganforge.resume(folder_run, steps=9, show_progress=False, allow_data_change=True)

    assert result.step == 9, "a new epoch of the 39 images: no index beyond them"
    change = "the data has 39 images, the run trained on 50"
    assert f"resuming {folder_run} on changed data: {change}" in caplog.text
    [event] = events(read_metrics(folder_run))
    assert event == {"step": 2, "event": "data_changed", "change": change,
                     "data": f"{folder_run.parent / 'imgs'} (39 images)"}
    assert ganforge.resume(folder_run, steps=10, show_progress=False).step == 10, "the new data is the run's now"


def test_a_relative_data_path_is_stored_absolute_so_the_run_resumes_from_another_directory(folder_run, monkeypatch):
    imgs = folder_run.parent / "imgs"
    saved = yaml.safe_load((folder_run / "config.yaml").read_text())["data"]
    assert saved["data"] == str(imgs) and saved["data_as_given"] == "imgs"
    assert ganforge.resume(folder_run, steps=3, data="imgs", show_progress=False).step == 3, "the same path again"

    elsewhere = folder_run.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert ganforge.resume(folder_run, steps=4, show_progress=False).step == 4
    config = read_checkpoint(folder_run).config
    assert len(load_data(config.data, 8, 1, 0, "cpu")) == 50, "what eval loads, from here"
    assert config.data == DataConfig(data=str(imgs), data_as_given="imgs")


@pytest.mark.slow
def test_the_cli_says_how_many_images_a_folder_gave_and_refuses_changed_data_in_one_line(tmp_path):
    write_images(tmp_path / "imgs", 50)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in TINY_MLP.items() if key != "tensorboard"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "ganforge", "train", "--no-tensorboard", *flags]

    trained = subprocess.run([*command, "--data", "imgs", "--out", "run"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)

    assert trained.returncode == 0, trained.stderr
    lines = trained.stderr.splitlines()
    assert f"read 50 images from {tmp_path / 'imgs'} (1 of 51 files skipped)" in lines, trained.stderr
    (tmp_path / "imgs" / "00.png").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run([*command, "--resume", tmp_path / "run", "--steps", "3", "-q"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr
    assert [line for line in resumed.stderr.splitlines() if not line.startswith("warning: ")] == [
        f"error: --resume {tmp_path / 'run'}: the data has 49 images, the run trained on 50 ({tmp_path / 'imgs'} "
        "(49 images)): resume on the run's own data, or pass --allow-data-change to continue on this data (its order "
        "restarts with a new epoch)"]


def test_allow_data_change_without_resume_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run"), "--allow-data-change"])
    assert isinstance(result.exception, GanforgeError)
    assert str(result.exception) == ("--allow-data-change applies to --resume RUN: a new run has no earlier data "
                                     "to differ from")
    assert not (tmp_path / "run").exists()
