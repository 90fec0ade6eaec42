"""One process at a time in a run folder (issue 18, case 8), and a failed start that leaves nothing behind (case 13)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ganforge
from ganforge.errors import GanforgeError
from ganforge.runs.lock import LOCK_FILE, hold_run_folder
from ganforge.runs.metrics_log import read_metrics
from ganforge.train import loop

SECONDS = 120  # the most a process may take here before the test fails instead of hanging
TOY_FLAGS = ["--model", "toy", "--data", "ring8", "--width", "16", "--batch-size", "32", "--sample-every", "0",
             "--log-every", "1", "--checkpoint-every", "5", "--no-tensorboard", "--quiet"]


def locked_by_another_process(run_dir: Path, pid: int) -> int:
    """A lock on ``run_dir`` as another process holds it: its own open file, flocked, naming ``pid``."""
    descriptor = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(descriptor, json.dumps({"pid": pid, "host": "gpu-box"}).encode())
    return descriptor


def test_a_folder_another_process_holds_is_refused_naming_that_process(tmp_path):
    descriptor = locked_by_another_process(tmp_path, 4242)
    try:
        with pytest.raises(GanforgeError, match=r"is being trained by process 4242 on gpu-box: wait for it to finish"):
            with hold_run_folder(tmp_path):
                pass
        assert (tmp_path / LOCK_FILE).exists(), "a refused process leaves the owner's lock alone"
    finally:
        os.close(descriptor)


def test_the_lock_names_its_owner_and_goes_at_the_end_with_the_folder_it_created(tmp_path):
    run_dir = tmp_path / "runs" / "new"
    with pytest.raises(RuntimeError, match="start failed"):
        with hold_run_folder(run_dir):
            assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()
            raise RuntimeError("start failed")
    assert not (tmp_path / "runs").exists(), "the folders this attempt created are gone again"
    (tmp_path / "kept").mkdir()
    with hold_run_folder(tmp_path / "kept"):
        (tmp_path / "kept" / "config.yaml").write_text("steps: 1\n")
    assert os.listdir(tmp_path / "kept") == ["config.yaml"]


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_warning(tmp_path, caplog):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 999999999, "host": "vm"}))  # no flock: its owner is gone
    with hold_run_folder(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert "left by process 999999999 on vm, which ended without removing it" in caplog.text
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_folder_this_process_holds_can_be_held_again_inside(tmp_path):
    with hold_run_folder(tmp_path):
        with hold_run_folder(tmp_path):  # an experiment's runner holds the run its training holds too
            pass
        assert (tmp_path / LOCK_FILE).exists(), "the inner hold leaves the outer one's lock in place"
    assert not (tmp_path / LOCK_FILE).exists()


def test_an_out_that_is_a_file_is_one_error(tmp_path, tiny_toy):
    (tmp_path / "existing.txt").write_text("notes")
    with pytest.raises(GanforgeError, match=r"existing.txt is a file, not a folder: name a new folder"):
        ganforge.train(out=tmp_path / "existing.txt", steps=2, show_progress=False, **tiny_toy)
    assert (tmp_path / "existing.txt").read_text() == "notes"


def test_a_trainer_refused_by_the_lock_leaves_the_folder_untouched(tmp_path, tiny_toy):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 3}\n')  # the live run's rows
    descriptor = locked_by_another_process(run_dir, 4242)
    try:
        with pytest.raises(GanforgeError, match="is being trained by process 4242"):
            ganforge.train(out=run_dir, steps=2, show_progress=False, **tiny_toy)
    finally:
        os.close(descriptor)
    assert (run_dir / "metrics.jsonl").read_text() == '{"step": 3}\n'


def failing_first_step(trainer):
    raise RuntimeError("out of memory in the first step")


def test_a_start_that_fails_leaves_no_files_and_no_folder(tmp_path, tiny_toy, monkeypatch):
    monkeypatch.setattr(loop, "train_step", failing_first_step)
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="out of memory"):  # after config.yaml, metrics.jsonl and tensorboard/
        ganforge.train(out=run_dir, steps=4, show_progress=False, **{**tiny_toy, "tensorboard": True})
    assert not run_dir.exists()
    with pytest.raises(GanforgeError, match="learns images"):  # a model that does not fit the data, found later
        ganforge.train(out=run_dir, steps=4, show_progress=False, **{**tiny_toy, "model": "dcgan"})
    assert not run_dir.exists()


def test_a_failed_start_keeps_what_the_folder_held_before(tmp_path, tiny_toy, monkeypatch):
    run_dir = tmp_path / "run"
    ganforge.train(out=run_dir, steps=4, show_progress=False, **{**tiny_toy, "checkpoint_every": 2})
    before = {path.relative_to(run_dir): path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    monkeypatch.setattr(loop, "train_step", failing_first_step)
    with pytest.raises(RuntimeError, match="out of memory"):
        ganforge.resume(run_dir, steps=8, lr_d=1e-3, show_progress=False)
    after = {path.relative_to(run_dir): path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    assert after == before, "config.yaml still describes the run that happened, metrics.jsonl keeps its rows"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="out of memory"):
        ganforge.train(out=tmp_path / "mine", steps=4, show_progress=False, **tiny_toy)
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]


@pytest.mark.slow
def test_a_second_trainer_or_resume_of_a_run_in_training_is_one_error_naming_the_trainer(tmp_path):
    run = tmp_path / "race"
    command = [sys.executable, "-m", "ganforge", "train", *TOY_FLAGS, "--steps", "1000000", "--out", str(run)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + SECONDS
        while not (run / "checkpoints").is_dir() and time.monotonic() < deadline:  # the first one trains
            time.sleep(0.05)
        others = [subprocess.Popen(other, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for other in (command, [sys.executable, "-m", "ganforge", "train", "--resume", str(run), "--quiet"])]
        for other in others:
            _, stderr = other.communicate(timeout=SECONDS)
            assert other.returncode == 2
            assert stderr.strip() == (f"error: {run} is being trained by process {first.pid} on {os.uname().nodename}: "
                                       "wait for it to finish or stop it (two processes in one run folder would "
                                       "mix their logs and checkpoints)")
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=SECONDS)
    finally:
        first.kill()
    assert first.returncode == 130, stderr
    steps = [row["step"] for row in read_metrics(run)]
    assert steps == list(range(1, len(steps) + 1)), "one trainer's rows, none interleaved"
    assert not (run / LOCK_FILE).exists()
