"""The `ganforge` command: help, and one clear line plus a non-zero exit for every user error.

`ganforge.cli.main()` turns a GanforgeError into `error: <message>` on stderr and exit status 2;
the tests that check that contract run the installed command in a subprocess (a few, each
imports torch). The others call the Typer app in-process and check the error it raises.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer.main
import yaml
from PIL import Image
from typer.testing import CliRunner

import ganforge
import ganforge.algorithm.losses
from ganforge.cli import app
from ganforge.config.help import default_text
from ganforge.config.schema import config_keys
from ganforge.errors import CheckpointError, ConfigError, DataError, GanforgeError, TrainingDivergedError

GANFORGE = Path(sys.executable).with_name("ganforge")  # the console script installed beside this Python
SUBCOMMANDS = ("train", "sample", "interpolate", "describe", "report", "eval", "compare", "animate", "experiment")
TRAIN_FLAGS = ("--model", "--data", "--image-size", "--channels", "--z-dim", "--batch-size", "--steps", "--epochs",
               "--d-steps", "--g-steps", "--order", "--loss", "--lr-d", "--lr-g", "--seed", "--device", "--out",
               "--resume", "--config", "--conditional", "--spectral-norm", "--d-norm", "--ema", "--diffaug",
               "--sync-batch-norm")
CHECKPOINT_FILES = ("generator.safetensors", "discriminator.safetensors", "training.safetensors", "state.json")


def flags(keys: dict) -> list[str]:
    """Config keys as CLI flags: {"batch_size": 8, "tensorboard": False} -> ["--batch-size", "8", "--no-tensorboard"]."""
    result: list[str] = []
    for key, value in keys.items():
        name = key.replace("_", "-")
        if isinstance(value, bool):
            result.append(f"--{name}" if value else f"--no-{name}")
        else:
            result += [f"--{name}", str(value)]
    return result


def invoke(*args: object):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def cli(*args: object) -> None:
    """Run a subcommand in-process; it must succeed."""
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.exception)


def cli_error(*args: object) -> GanforgeError:
    """Run a subcommand in-process; it must fail with a one-line GanforgeError, which is returned."""
    result = invoke(*args)
    assert result.exit_code != 0
    assert isinstance(result.exception, GanforgeError), (result.output, result.exception)
    message = str(result.exception)
    assert message and "\n" not in message, message
    return result.exception


def run_command(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    """The installed `ganforge` command in a subprocess, output captured (no terminal, no colours)."""
    env = {key: value for key, value in os.environ.items() if key not in ("FORCE_COLOR", "COLUMNS")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([str(GANFORGE), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2 and exactly one `error: ...` line on stderr that holds every fragment."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""
    return lines[0]


def snapshot(folder: Path) -> dict[Path, bytes]:
    """Every file under `folder` and its bytes."""
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def flat_help(*args: str) -> str:
    """The help text of a command with the box drawing and line wrapping removed."""
    result = invoke(*args, "--help")
    assert result.exit_code == 0, result.output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


@pytest.fixture
def toy_run(tmp_path, tiny_toy) -> Path:
    """A finished 2-step toy run; its only checkpoint is step 2."""
    return ganforge.train(out=tmp_path / "run", steps=2, show_progress=False, **tiny_toy).run_dir


def write_digit_pngs(folder: Path, count: int) -> None:
    """`count` random 28x28 grayscale PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{index:02d}.png")


# --- help ----------------------------------------------------------------------------------------


def test_help_lists_the_subcommands():
    result = invoke("--help")
    assert result.exit_code == 0
    for name in SUBCOMMANDS:
        assert re.search(rf"(?m)^\W*{name}\s+\w", result.output), name


def test_train_help_documents_every_flag_of_the_contract():
    result = invoke("train", "--help")
    assert result.exit_code == 0
    for flag in TRAIN_FLAGS:  # each flag opens a row of the options table, not just a mention in some help text
        assert re.search(rf"(?m)^[\s│]*{flag}(?![\w-])", result.output), flag
    assert "the D loss is the average of its real and fake terms" in flat_help("train")


def test_train_help_shows_the_defaults_its_flags_document():
    text = flat_help("train")
    for default in ("[default: dcgan]", "[default: digits]", "[default: 2000; toy: 3000;", "toy on ring8: 9000",
                    "toy on grid25: 9000", "[default: 64; toy: 512; toy on grid25: 256]",
                    "[default: 2e-4; toy: 1e-3; dcgan on stacked-digits: 8e-4]",
                    "[default: nonsaturating; dcgan on digits: rpgan; dcgan on stacked-digits: rpgan]",
                    "[default: 1; toy on ring8: 2]", "[default: 0; dcgan on stacked-digits: 100]"):
        assert default in text, default


def test_train_help_shows_each_flags_default_as_the_config_computes_it():
    """Every config flag's [default: ...] is default_text's (which tests/config checks against the resolved
    values), in the help's source and on the screen; the other flags name no default."""
    params = {param.name: param for param in typer.main.get_command(app).commands["train"].params}
    assert set(params) - set(config_keys()) == {"out", "resume", "allow_data_change", "config", "quiet", "threads"}
    wide = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300"})  # no cell cut short with "…"
    assert wide.exit_code == 0, wide.output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", wide.output).split())
    for key in set(params) & set(config_keys()):
        assert re.fullmatch(rf".* \\\[default: {re.escape(default_text(key))}\]", params[key].help), (key, params[key].help)
        assert f"[default: {' '.join(default_text(key).split())}]" in text, key
    for key in ("out", "resume", "allow_data_change", "config", "quiet"):
        assert "default:" not in params[key].help, key
    assert params["threads"].default == "auto"  # a setting of this process, not of the run
    assert "while training. [default: auto]" in text and "[default: auto] [default: auto]" not in text


@pytest.mark.slow
def test_light_commands_import_neither_torch_nor_the_training_stack():
    """`ganforge --help` and the package's front door stay light; the API's names still resolve when used, and
    ganforge.train stays the training function whichever order the subpackage of that name is imported in."""
    code = """
import sys
import ganforge, ganforge.cli
from ganforge import RunConfig
heavy = sorted(name for name in ("torch", "numpy", "ganforge.api", "ganforge.train.loop") if name in sys.modules)
import ganforge.train.loop
from ganforge.train import distributed
assert callable(ganforge.train) and ganforge.train is ganforge.api.train, ganforge.train
from ganforge import load, TrainResult
assert load is ganforge.api.load and TrainResult.__name__ == "TrainResult" and RunConfig is ganforge.RunConfig
assert sorted(ganforge.__all__) == sorted(name for name in ganforge.__all__ if hasattr(ganforge, name))
print(heavy)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_unknown_flag_is_a_usage_error():
    result = invoke("train", "--no-such-flag")
    assert result.exit_code == 2
    assert "No such option: --no-such-flag" in result.output and "Usage:" in result.output


# --- the one-line contract of the installed command ----------------------------------------------


@pytest.mark.slow
def test_missing_data_folder_is_one_line_and_exit_2(tmp_path):
    result = run_command("train", "--data", "/nonexistent", "--out", "run", "--steps", 1, "-q", cwd=tmp_path)
    assert_one_line_error(result, "'/nonexistent'", "digits")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_truncated_generator_file_is_one_line_naming_the_file(toy_run, tmp_path):
    weights = toy_run / "checkpoints" / "step_0000002" / "generator.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = run_command("sample", toy_run, "-n", 4, "--out", "s.npy", cwd=tmp_path)
    assert_one_line_error(result, str(weights))
    assert not (tmp_path / "s.npy").exists()


@pytest.mark.slow
def test_divergence_from_an_absurd_learning_rate_is_one_line_naming_the_step(tmp_path, tiny_toy):
    keys = {**tiny_toy, "steps": 3, "checkpoint_every": 1, "lr_d": 1e30, "lr_g": 1e30}
    result = run_command("train", "--out", "run", "-q", *flags(keys), cwd=tmp_path)
    line = assert_one_line_error(result, "diverged")
    assert re.search(r"\bstep 1\b", line), line
    checkpoints = tmp_path / "run" / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir()), "no checkpoint of a diverged state"


# --- data errors ---------------------------------------------------------------------------------


def test_empty_data_folder_is_an_error(tmp_path, tiny_dcgan):
    (tmp_path / "images").mkdir()
    error = cli_error("train", "--out", tmp_path / "run", "-q",
                      *flags({**tiny_dcgan, "data": tmp_path / "images", "channels": 1, "steps": 1}))
    assert isinstance(error, DataError)
    assert "no image files" in str(error) and str(tmp_path / "images") in str(error)
    assert not (tmp_path / "run").exists()


def test_folder_of_only_unreadable_images_is_an_error(tmp_path, tiny_dcgan):
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png", "c.jpg"):
        (tmp_path / "images" / name).write_bytes(b"not an image")
    error = cli_error("train", "--out", tmp_path / "run", "-q",
                      *flags({**tiny_dcgan, "data": tmp_path / "images", "channels": 1, "steps": 1}))
    assert isinstance(error, DataError)
    assert "none of the 3 image files" in str(error) and "a.png" in str(error)
    assert not (tmp_path / "run").exists()


def test_folder_with_some_unreadable_images_trains_and_warns_with_a_count(tmp_path, tiny_dcgan, caplog):
    write_digit_pngs(tmp_path / "images", 10)
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    keys = {**tiny_dcgan, "data": tmp_path / "images", "image_size": 28, "channels": 1, "batch_size": 4, "steps": 1}
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        cli("train", "--out", tmp_path / "run", "-q", *flags(keys))
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 1 of 11" in warnings[0] and "broken.png" in warnings[0]
    assert (tmp_path / "run" / "checkpoints" / "step_0000001" / "state.json").is_file()
    generator = ganforge.load(tmp_path / "run", device="cpu")
    assert generator.sample(2).shape == (2, 1, 28, 28)


# --- config errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(("keys", "fragments"), [
    ({"model": "dcgan", "image_size": 48}, ("image size 48", "dcgan", "28, 32, 64 or 128")),
    ({"batch_size": 0}, ("batch_size", "got 0")),
    ({"epochs": 1}, ("--steps", "--epochs")),  # with the --steps 1 every case passes
    ({"channels": 2}, ("channels", "got 2")),
    ({"model": "toy", "data": "digits"}, ("toy", "digits", "images")),
    ({"model": "dcgan", "data": "ring8"}, ("dcgan", "ring8", "points")),
], ids=["dcgan-size-48", "batch-size-0", "steps-and-epochs", "channels-2", "toy-on-digits", "dcgan-on-ring8"])
def test_bad_values_and_model_data_mismatches_are_errors(tmp_path, tiny_dcgan, keys, fragments):
    error = cli_error("train", "--out", tmp_path / "run", "-q", *flags({**tiny_dcgan, "steps": 1, **keys}))
    assert isinstance(error, ConfigError)
    for fragment in fragments:
        assert fragment in str(error), (fragment, str(error))
    assert not (tmp_path / "run").exists(), "nothing written for a refused run"


@pytest.mark.parametrize(("text", "fragments"), [
    ("model: toy\ndata: ring8\nlos: minimax\n", ("'los'", "did you mean 'loss'")),
    ("train:\n  los: minimax\n", ("train.los", "did you mean 'loss'")),
    (None, ("run.yaml", "does not exist")),
], ids=["unknown-key", "unknown-key-in-a-section", "missing-file"])
def test_a_bad_config_file_is_refused_before_anything_is_written(tmp_path, text, fragments):
    """The --config file's keys are read as tests/config checks; here: the refusal reaches the user first."""
    if text is not None:
        (tmp_path / "run.yaml").write_text(text)
    error = cli_error("train", "--config", tmp_path / "run.yaml", "--out", tmp_path / "run", "--steps", 1, "-q")
    assert isinstance(error, ConfigError)
    for fragment in fragments:
        assert fragment in str(error), (fragment, str(error))
    assert not (tmp_path / "run").exists()


def test_config_file_values_are_used_and_flags_override_them(tmp_path, tiny_toy):
    config_file = tmp_path / "toy.yaml"
    config_file.write_text(yaml.safe_dump({
        "model": "toy", "data": "ring8", "width": 16,  # flat keys
        "train": {"loss": "minimax", "lr_d": 0.005, "steps": 50, "batch_size": 64,  # a section
                  "log_every": 2, "sample_every": 0, "checkpoint_every": 0},
    }))
    cli("train", "--config", config_file, "--out", tmp_path / "run", "-q", "--steps", 2, "--batch-size", 16)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["model"] == "toy" and saved["model"]["width"] == 16 and saved["data"]["data"] == "ring8"
    assert saved["train"]["loss"] == "minimax" and saved["train"]["lr_d"] == 0.005, "from the file"
    assert saved["train"]["lr_g"] == 1e-3, "not in the file: the toy preset"
    assert saved["train"]["steps"] == 2 and saved["train"]["batch_size"] == 16, "the flags win"
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_0000002"]


# --- checkpoint errors ---------------------------------------------------------------------------


def test_sampling_a_missing_folder_is_an_error(tmp_path):
    error = cli_error("sample", "/nonexistent", "--out", tmp_path / "grid.png")
    assert isinstance(error, CheckpointError) and "/nonexistent" in str(error) and "does not exist" in str(error)


def test_run_folder_without_checkpoints_is_an_error(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("model: {model: toy}\n")
    error = cli_error("sample", tmp_path / "run", "--out", tmp_path / "grid.png")
    assert isinstance(error, CheckpointError)
    assert str(tmp_path / "run") in str(error) and "no checkpoints" in str(error)


@pytest.mark.parametrize("name", ["generator.safetensors", "discriminator.safetensors", "training.safetensors"])
def test_truncated_weights_file_is_an_error_naming_it(toy_run, tmp_path, name):
    weights = toy_run / "checkpoints" / "step_0000002" / name
    weights.write_bytes(weights.read_bytes()[:100])
    error = cli_error("sample", toy_run, "--out", tmp_path / "s.npy")
    assert isinstance(error, CheckpointError) and str(weights) in str(error)


def test_garbage_state_json_is_an_error_naming_it(toy_run, tmp_path):
    checkpoint = toy_run / "checkpoints" / "step_0000002"
    (checkpoint / "state.json").write_text("{this is not json")
    error = cli_error("sample", toy_run, "--out", tmp_path / "s.npy")
    assert isinstance(error, CheckpointError)
    assert str(checkpoint) in str(error) and "state.json" in str(error)


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_missing_checkpoint_file_is_an_error_naming_it(toy_run, tmp_path, name):
    checkpoint = toy_run / "checkpoints" / "step_0000002"
    (checkpoint / name).unlink()
    error = cli_error("sample", toy_run, "--out", tmp_path / "s.npy")
    assert isinstance(error, CheckpointError)
    assert str(checkpoint) in str(error) and f"missing {name}" in str(error)


# --- resume and existing runs --------------------------------------------------------------------


def test_resume_with_another_model_is_refused(toy_run):
    before = snapshot(toy_run)
    error = cli_error("train", "--resume", toy_run, "--model", "mlp", "--steps", 4, "-q")
    assert isinstance(error, ConfigError)
    assert "differs" in str(error) and "'mlp'" in str(error) and "'toy'" in str(error)
    assert snapshot(toy_run) == before


def test_resume_of_a_run_already_at_the_requested_steps_is_refused(toy_run):
    before = snapshot(toy_run)
    error = cli_error("train", "--resume", toy_run, "--steps", 2, "-q")
    assert isinstance(error, ConfigError)
    assert "already at step 2" in str(error) and "--steps" in str(error)
    assert snapshot(toy_run) == before


def test_training_into_a_folder_with_checkpoints_is_refused_and_leaves_it_untouched(toy_run, tiny_toy):
    before = snapshot(toy_run)
    assert any(path.name == "generator.safetensors" for path in before)
    error = cli_error("train", "--out", toy_run, "-q", *flags({**tiny_toy, "steps": 4}))
    assert isinstance(error, ConfigError)
    assert str(toy_run) in str(error) and f"--resume {toy_run}" in str(error)
    assert snapshot(toy_run) == before


# --- divergence ----------------------------------------------------------------------------------


def test_loss_turning_nan_stops_training_and_keeps_the_checkpoints_before_it(tmp_path, tiny_toy, monkeypatch):
    real_loss = ganforge.algorithm.losses.LOSS_FAMILIES["nonsaturating"].generator
    calls = 0

    def loss_nan_from_step_3(fake_logits: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1  # one generator update per step: call n is step n
        loss = real_loss(fake_logits)
        return loss * float("nan") if calls >= 3 else loss

    monkeypatch.setitem(ganforge.algorithm.losses.LOSS_FAMILIES, "nonsaturating", dataclasses.replace(ganforge.algorithm.losses.LOSS_FAMILIES["nonsaturating"], generator=loss_nan_from_step_3))
    run = tmp_path / "run"
    keys = {**tiny_toy, "steps": 6, "checkpoint_every": 1, "keep_checkpoints": 0}
    error = cli_error("train", "--out", run, "-q", *flags(keys))
    assert isinstance(error, TrainingDivergedError)
    assert re.search(r"\bstep 3\b", str(error)) and "step_0000002" in str(error), str(error)
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["step_0000001", "step_0000002"]
    generator = ganforge.load(run, device="cpu")
    assert generator.step == 2
    assert all(torch.isfinite(p).all() for p in generator.generator.parameters())
    assert torch.isfinite(generator.sample(16)).all()
