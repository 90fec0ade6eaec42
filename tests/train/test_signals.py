"""Ctrl-C while the checkpoint of a stop is saved (issue 18, case 7) and Ctrl-C during start-up (case 11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ganforge
from ganforge.runs import checkpoint as checkpoint_module
from ganforge.runs.checkpoint import checkpoint_path, list_checkpoints, read_checkpoint
from ganforge.runs.lock import LOCK_FILE
from ganforge.train import loop
from ganforge.train.monitor import tensorboard_available
from ganforge.train.signals import SAVING_MESSAGE

SECONDS = 120  # the most a process may take here before the test fails instead of hanging


@pytest.fixture
def ctrl_c_at_step_3(monkeypatch):
    """The first Ctrl-C, a real SIGINT, comes during step 3."""
    real_step = loop.train_step

    def step(trainer):
        if trainer.step == 2:
            signal.raise_signal(signal.SIGINT)
        real_step(trainer)

    monkeypatch.setattr(loop, "train_step", step)


def ctrl_c_while_saving(monkeypatch, times: int) -> None:
    """``times`` more real SIGINTs while the stop's checkpoint writes its discriminator file."""
    real_save = checkpoint_module._save_tensors

    def save(tensors, path):
        if path.name == "discriminator.safetensors" and path.parent.name.startswith(".step_0000003"):
            for _ in range(times):
                signal.raise_signal(signal.SIGINT)
        return real_save(tensors, path)  # its checksum, for state.json

    monkeypatch.setattr(checkpoint_module, "_save_tensors", save)


def test_a_second_ctrl_c_during_the_save_says_how_to_abort_and_the_checkpoint_is_written(
        tmp_path, tiny_toy, monkeypatch, ctrl_c_at_step_3, capfd):
    ctrl_c_while_saving(monkeypatch, times=1)
    result = ganforge.train(out=tmp_path / "run", steps=100, show_progress=False, **tiny_toy)
    assert result.stopped_by == "SIGINT" and result.step == 3
    assert SAVING_MESSAGE in capfd.readouterr().err
    assert read_checkpoint(tmp_path / "run").step == 3, "the checkpoint of the stop is complete"


def test_a_third_ctrl_c_aborts_the_save_and_names_the_last_good_checkpoint(tmp_path, tiny_toy, monkeypatch,
                                                                             ctrl_c_at_step_3, capfd):
    ctrl_c_while_saving(monkeypatch, times=2)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt) as aborted:
        ganforge.train(out=run, steps=100, show_progress=False, **{**tiny_toy, "checkpoint_every": 2})
    assert str(aborted.value) == (f"aborted at step 3 without saving a checkpoint; the last good checkpoint is "
                                  f"{checkpoint_path(run, 2)}: continue with ganforge train --resume {run} --steps 100")
    assert SAVING_MESSAGE in capfd.readouterr().err
    assert list_checkpoints(run) == [checkpoint_path(run, 2)]
    assert sorted(os.listdir(run / "checkpoints")) == ["step_0000002"], "no half-written folder is left"
    assert not (run / LOCK_FILE).exists()


def test_a_third_ctrl_c_before_any_checkpoint_says_there_is_none(tmp_path, tiny_toy, monkeypatch, ctrl_c_at_step_3):
    ctrl_c_while_saving(monkeypatch, times=2)
    with pytest.raises(KeyboardInterrupt, match=r"^aborted at step 3: no checkpoint was written, so this run cannot"):
        ganforge.train(out=tmp_path / "run", steps=100, show_progress=False, **tiny_toy)


def start(run: Path, *flags: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "ganforge", "train", "--model", "toy", "--data", "ring8", "--steps", "1000000",
               "--quiet", *flags, "--out", str(run)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + SECONDS
    while not condition() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="watches /proc/PID/maps for torch being loaded")
def test_ctrl_c_while_torch_is_imported_is_one_line_and_writes_nothing(tmp_path):
    run = tmp_path / "run"
    process = start(run, "--no-tensorboard")
    wait_for(lambda: "libtorch" in maps(process.pid), process)  # in the middle of `import torch`
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=SECONDS)
    assert process.returncode == 130, stderr
    assert len(stderr.splitlines()) == 1 and stderr.startswith("interrupted"), stderr
    assert not run.exists()


@pytest.mark.slow
@pytest.mark.skipif(not tensorboard_available(), reason="start-up imports tensorboard only when it is installed")
def test_ctrl_c_while_the_run_is_built_is_one_line_and_leaves_no_folder(tmp_path):
    run = tmp_path / "run"
    process = start(run, "--tensorboard")
    wait_for(lambda: (run / LOCK_FILE).exists(), process)  # data, models and the tensorboard import still to come
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=SECONDS)
    assert process.returncode == 130, stderr
    assert stderr == "interrupted before training started; nothing was written\n"
    assert not run.exists()
