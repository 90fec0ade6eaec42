"""Errors that lead somewhere: file-system problems as one line naming the path and the fix, advice that fits
the run's state, reports that never replace a file ganforge did not write, and progress where a wait is long."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import sys

import pytest
from typer.testing import CliRunner

import ganforge
import ganforge.algorithm.losses
from ganforge import cli
from ganforge.errors import CheckpointError, GanforgeError, TrainingDivergedError, filesystem_error
from ganforge.evaluation.metrics import classifier
from ganforge.report.page import PAGE_MARK


def invoke(*args: object):
    return CliRunner().invoke(cli.app, [str(arg) for arg in args])


def run_main(monkeypatch, capsys, *args: object) -> tuple[int, str]:
    """``ganforge ARGS`` through :func:`ganforge.cli.main` in this process: (exit status, stderr)."""
    monkeypatch.setattr(sys, "argv", ["ganforge", *map(str, args)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return exited.value.code, capsys.readouterr().err


def test_a_file_system_error_in_any_command_is_one_line_naming_the_path(toy_run, tmp_path, monkeypatch, capsys):
    (tmp_path / "file.txt").write_text("x")
    code, stderr = run_main(monkeypatch, capsys, "sample", toy_run, "-n", 4, "--out",
                            tmp_path / "file.txt" / "sub" / "points.npy")
    assert code == 2 and "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not use ") and "file.txt" in lines[0], stderr
    assert "a part of the path is a file, not a folder" in lines[0]


@pytest.mark.parametrize("code, fix", [
    (errno.EROFS, "read-only: write to a folder on a writable disk (--out)"),
    (errno.EACCES, "choose another folder (--out) or change its permissions"),
    (errno.ENOSPC, "free disk space, then run the command again"),
    (errno.ELOOP, "check the path, its permissions and the free disk space"),
])
def test_file_system_errors_name_the_path_the_reason_and_the_fix(code, fix):
    message = filesystem_error(OSError(code, os.strerror(code), "/runs/a/eval.json"))
    assert message.startswith(f"could not use /runs/a/eval.json ({os.strerror(code)}): ") and fix in message
    assert "--resume" not in message


def test_eval_prints_its_results_before_a_failed_write_and_says_they_are_not_saved(toy_run, monkeypatch):
    def read_only(results, run_dir):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(run_dir / "eval.json"))

    monkeypatch.setattr("ganforge.evaluation.results.write_results", read_only)
    result = invoke("eval", toy_run, "--metrics", "modes_covered", "-n", 500)
    assert isinstance(result.exception, GanforgeError)
    assert "modes_covered" in result.output, "the measured values are shown before the write fails"
    message = str(result.exception)
    assert message.startswith("the results above are not saved: could not use ") and "Read-only" in message


def test_divergence_before_any_checkpoint_does_not_advise_resuming(tmp_path, tiny_toy, monkeypatch):
    family = ganforge.algorithm.losses.LOSS_FAMILIES["nonsaturating"]
    nan_loss = dataclasses.replace(family, generator=lambda logits: family.generator(logits) * float("nan"))
    monkeypatch.setitem(ganforge.algorithm.losses.LOSS_FAMILIES, "nonsaturating", nan_loss)
    with pytest.raises(TrainingDivergedError) as caught:
        ganforge.train(out=tmp_path / "run", steps=4, show_progress=False, **tiny_toy)
    message = str(caught.value)
    assert "no checkpoint had been written yet, so start again with lower --lr-d/--lr-g" in message
    assert "--resume" not in message


def test_divergence_after_a_checkpoint_names_the_resume_command(tmp_path, tiny_toy, monkeypatch):
    run = ganforge.train(out=tmp_path / "run", steps=2, show_progress=False, **tiny_toy).run_dir
    family = ganforge.algorithm.losses.LOSS_FAMILIES["nonsaturating"]
    nan_loss = dataclasses.replace(family, generator=lambda logits: family.generator(logits) * float("nan"))
    monkeypatch.setitem(ganforge.algorithm.losses.LOSS_FAMILIES, "nonsaturating", nan_loss)
    with pytest.raises(TrainingDivergedError, match=f"continue from it with lower rates: ganforge train --resume {run} "
                                                    "--lr-d R --lr-g R"):
        ganforge.resume(run, steps=4, show_progress=False)


def test_train_has_the_inception_weights_flag_that_the_missing_weights_error_suggests(tmp_path, tiny_toy):
    weights = tmp_path / "missing.pth"
    result = invoke("train", "--model", "dcgan", "--data", "digits", "--image-size", 28, "--width", 4,
                    "--batch-size", 8, "--steps", 2, "--eval-every", 2, "--feature-extractor", "inception",
                    "--inception-weights", weights, "--no-tensorboard", "-q", "--out", tmp_path / "run")
    assert isinstance(result.exception, GanforgeError), result.output
    assert f"Inception weights file {weights} does not exist" in str(result.exception)


def test_a_report_never_replaces_a_file_ganforge_did_not_write(toy_run, tmp_path):
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>")
    result = invoke("report", toy_run, "--out", mine)
    assert isinstance(result.exception, GanforgeError)
    assert "is not a page ganforge wrote" in str(result.exception) and "another --out" in str(result.exception)
    assert mine.read_text() == "<html>my notes</html>"


def test_a_report_replaces_an_earlier_report_of_this_or_an_older_version(toy_run, tmp_path):
    out = tmp_path / "page.html"
    assert invoke("report", toy_run, "--out", out).exit_code == 0
    assert PAGE_MARK in out.read_text()
    out.write_text('<html><head></head><body><p class="generated">generated 2026-01-01 by ganforge</p></body>')
    assert invoke("report", toy_run, "--out", out).exit_code == 0
    assert PAGE_MARK in out.read_text()


def test_a_report_without_evaluation_names_the_command_that_fills_it(toy_run):
    assert invoke("report", toy_run).exit_code == 0
    assert f"<code>ganforge eval {toy_run}</code>" in (toy_run / "report.html").read_text()


def test_training_the_digit_classifier_says_so_and_shows_its_progress(tmp_path, monkeypatch, caplog):
    epochs_seen = []

    def quick_training(recipe, on_epoch=None):
        for epoch in range(1, recipe.epochs + 1):  # as the real training tells each finished epoch
            on_epoch(epoch)
            epochs_seen.append(epoch)
        return classifier.DigitClassifier(classifier.DigitNet(), accuracy=0.99)

    monkeypatch.setattr(classifier, "train_digit_classifier", quick_training)
    with caplog.at_level(logging.INFO, logger="ganforge"):
        classifier.load_or_train_digit_classifier(tmp_path)
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("training the digit classifier that the image metrics use (once; cached in ")
    assert messages[-1].startswith("digit classifier trained in ") and "99.0% held-out accuracy" in messages[-1]
    assert epochs_seen == list(range(1, classifier.TrainingRecipe().epochs + 1))


def test_a_full_disk_before_the_first_checkpoint_does_not_advise_resuming(tmp_path, tiny_toy, monkeypatch):
    def disk_full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr("ganforge.runs.checkpoint._write_synced", disk_full)
    with pytest.raises(CheckpointError) as caught:
        ganforge.train(out=tmp_path / "run", steps=2, show_progress=False, **tiny_toy)
    message = str(caught.value)
    assert "no earlier checkpoint was written; free disk space, then start the run again" in message
    assert "--resume" not in message
