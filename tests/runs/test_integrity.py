"""A checkpoint is checked before it is trusted: checksums, state.json fields and finite tensors.

The damage is done for real to a tiny toy run: a NaN planted in the weights, a flipped bit, ``"step": -3``,
random values in every state.json field and random byte flips in every file (hypothesis). Edits that a
hostile hand would "re-sign" (recomputing the checksums, so that only the other checks can catch them) are
re-signed here too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import ganforge
from conftest import TINY_TOY
from ganforge.cli import app
from ganforge.errors import CheckpointError
from ganforge.models import build_models
from ganforge.runs.checkpoint import CHECKPOINT_FILES, TENSOR_FILES, find_checkpoint, list_checkpoints, read_checkpoint
from ganforge.runs.integrity import state_checksum
from ganforge.train.divergence import diverged

RELEASE = Path(__file__).resolve().parents[1] / "fixtures" / "release-0.1.0"
PROPERTY = settings(max_examples=100, deadline=5000, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """A toy run with checkpoints at steps 1 and 2; copy it before changing it."""
    return ganforge.train(out=tmp_path_factory.mktemp("good") / "run", steps=2, show_progress=False,
                          **{**TINY_TOY, "checkpoint_every": 1, "keep_checkpoints": 0}).run_dir


@pytest.fixture
def run(good_run, tmp_path) -> Path:
    return Path(shutil.copytree(good_run, tmp_path / "run"))


def newest(run: Path) -> Path:
    return run / "checkpoints" / "step_0000002"


def read_state(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "state.json").read_text())


def write_state(folder: Path, state: dict[str, Any], sign: bool) -> None:
    """Write state.json; with ``sign``, with the checksums recomputed for the files and content as they are now."""
    if sign:
        state["checksums"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in TENSOR_FILES}
        state["checksums"]["state.json"] = state_checksum(state)
    (folder / "state.json").write_text(json.dumps(state, indent=1))


def plant_nan(folder: Path, sign: bool) -> str:
    """A NaN in G's first floating tensor, as a checkpoint written mid-divergence would hold; returns its name."""
    path = folder / "generator.safetensors"
    tensors = load_file(path)
    key = next(key for key, tensor in tensors.items() if tensor.is_floating_point())
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = float("nan")
    save_file(tensors, path)
    if sign:
        write_state(folder, read_state(folder), sign=True)
    return key


def one_line_checkpoint_error(call, *fragments: str) -> str:
    with pytest.raises(CheckpointError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def sample_cli(source: Path, out: Path):
    return CliRunner().invoke(app, ["sample", str(source), "-n", "4", "--out", str(out)])


# --- checksums ------------------------------------------------------------------------------------


def test_state_json_holds_the_sha256_of_every_other_file_and_of_its_own_content(good_run):
    folder = newest(good_run)
    state = read_state(folder)
    assert state["checksums"] == {**{name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                                     for name in TENSOR_FILES}, "state.json": state_checksum(state)}
    reordered = dict(reversed(list({key: value for key, value in state.items() if key != "checksums"}.items())))
    assert state_checksum(reordered) == state["checksums"]["state.json"], "the layout of the file does not count"


@pytest.mark.parametrize("name", TENSOR_FILES)
def test_a_flipped_data_bit_is_a_checksum_error_naming_the_file(run, name):
    path = newest(run) / name
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # in the last tensor's data: the file still parses, with one weight changed
    path.write_bytes(bytes(data))
    one_line_checkpoint_error(lambda: read_checkpoint(newest(run)), f"checkpoint file {path} does not match its "
                              "checksum in state.json: it changed after it was written")
    assert read_checkpoint(run).step == 1, "the run folder falls back to the intact checkpoint"


def test_a_file_swapped_for_another_runs_is_a_checksum_error(run, tmp_path):
    other = ganforge.train(out=tmp_path / "other", steps=2, show_progress=False,
                           **{**TINY_TOY, "checkpoint_every": 1, "seed": 1}).run_dir
    shutil.copy(newest(other) / "generator.safetensors", newest(run) / "generator.safetensors")
    one_line_checkpoint_error(lambda: ganforge.load(newest(run), device="cpu"),
                              str(newest(run) / "generator.safetensors"), "does not match its checksum")


def test_a_changed_number_in_state_json_is_a_checksum_error(run):
    state = read_state(newest(run))
    state["optimizers"]["discriminator"][0]["lr"] *= 3  # a valid value: only the checksum can tell
    write_state(newest(run), state, sign=False)
    one_line_checkpoint_error(lambda: read_checkpoint(newest(run)), f"checkpoint {newest(run)} has a damaged "
                              "state.json (its content does not match its checksum")


@pytest.mark.parametrize("umask", [0o027, 0o002])
def test_checkpoint_files_get_the_umask_permissions_like_every_other_file(tmp_path, umask):
    previous = os.umask(umask)
    try:
        run = ganforge.train(out=tmp_path / "run", steps=1, show_progress=False, **TINY_TOY).run_dir
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    assert (run / "config.yaml").stat().st_mode & 0o777 == expected
    for name in CHECKPOINT_FILES:
        assert (list_checkpoints(run)[-1] / name).stat().st_mode & 0o777 == expected, name


# --- non-finite tensors -------------------------------------------------------------------------


def test_a_nan_in_the_generator_is_an_error_naming_the_file_and_resume_falls_back_with_a_warning(run, tmp_path,
                                                                                              caplog):
    folder = newest(run)
    key = plant_nan(folder, sign=True)
    weights = folder / "generator.safetensors"
    problem = f"checkpoint file {weights} holds NaN or infinite values in '{key}'"
    one_line_checkpoint_error(lambda: read_checkpoint(folder), problem)
    one_line_checkpoint_error(lambda: ganforge.load(folder, device="cpu"), problem)
    result = sample_cli(folder, tmp_path / "nan.npy")
    assert isinstance(result.exception, CheckpointError) and problem in str(result.exception), result.output
    assert not (tmp_path / "nan.npy").exists(), "no NaN samples are written"
    result = CliRunner().invoke(app, ["eval", str(folder)])
    assert isinstance(result.exception, CheckpointError) and problem in str(result.exception), result.output
    assert not list(run.rglob("eval.json")), "no metrics of NaN samples are written"

    with caplog.at_level(logging.WARNING, logger="ganforge"):
        assert find_checkpoint(run) == run / "checkpoints" / "step_0000001", "never 'the last good one'"
        result = sample_cli(run, tmp_path / "fallback.npy")
        assert result.exit_code == 0 and "from step 1" in result.output, result.output
        assert np.isfinite(np.load(tmp_path / "fallback.npy")).all()
        assert ganforge.resume(run, steps=3, show_progress=False).step == 3
    warnings = [record.getMessage() for record in caplog.records if record.name == "ganforge"]
    assert warnings == [f"{problem}; using the previous checkpoint {run / 'checkpoints' / 'step_0000001'}"]
    assert read_checkpoint(folder).step == 2, "the resumed run wrote a good step 2 in its place"


def test_a_divergence_names_the_last_good_checkpoint_not_a_damaged_newer_one(run):
    plant_nan(newest(run), sign=True)
    message = str(diverged(run, 2, {"d_loss": math.nan}))
    assert f"the last good checkpoint is {run / 'checkpoints' / 'step_0000001'};" in message, message


def test_a_nan_without_a_matching_checksum_is_a_checksum_error(run):
    plant_nan(newest(run), sign=False)
    one_line_checkpoint_error(lambda: read_checkpoint(newest(run)), "generator.safetensors does not match its checksum")


def test_a_run_whose_every_checkpoint_holds_a_nan_is_one_error(run, tmp_path):
    for folder in list_checkpoints(run):
        plant_nan(folder, sign=True)
    result = sample_cli(run, tmp_path / "s.npy")
    message = str(result.exception)
    assert isinstance(result.exception, CheckpointError) and "\n" not in message
    assert f"{newest(run) / 'generator.safetensors'} holds NaN" in message and "no earlier readable" in message


# --- state.json fields --------------------------------------------------------------------------


def test_a_negative_step_is_an_error_and_resume_writes_no_step_0(run, caplog):
    state = read_state(newest(run))
    state["step"] = -3
    write_state(newest(run), state, sign=True)
    problem = f"checkpoint {newest(run)} has a damaged state.json ('step' is -3, not a whole number from 0 to"
    one_line_checkpoint_error(lambda: read_checkpoint(newest(run)), problem)
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        assert ganforge.resume(run, steps=3, show_progress=False).step == 3
    assert any(problem in record.getMessage() for record in caplog.records)
    assert [p.name for p in list_checkpoints(run)] == ["step_0000001", "step_0000002", "step_0000003"]


@pytest.mark.parametrize("where, value, fragment", [
    (["step"], "2", "'step' is '2', not a whole number"),
    (["step"], 2.0, "'step' is 2.0, not a whole number"),
    (["step"], True, "'step' is True, not a whole number"),
    (["step"], 10**12, "'step' is 1000000000000, not a whole number from 0 to 1,000,000,000"),
    (["step"], 1, "'step' is 1 in a folder named for step 2"),
    (["format_version"], True, "has format version True, this ganforge reads version 1"),
    (["config"], [], "'config' is [], not a mapping of the sections model, data, train"),
    (["config", "model"], None, "'config' is {"),
    (["config", "data", "data"], None, "'config' names no data"),
    (["config", "model", "model"], "dcgan", "'config' does not hold a valid run config: "),
    (["config", "train", "batch_size"], 0, "'config' does not hold a valid run config: batch_size"),
    (["config", "model", "width"], "wide", "'config' does not hold a valid run config"),
    (["optimizers"], {"generator": []}, "'optimizers' is {'generator': []}, not a mapping of generator and"),
    (["optimizers", "generator"], [], "the generator optimizer's groups are [], not a list"),
    (["optimizers", "generator", 0, "lr"], -1, "the generator optimizer's 'lr' is -1, not a finite number >= 0"),
    (["optimizers", "generator", 0, "lr"], math.nan, "'lr' is nan"),
    (["optimizers", "discriminator", 0, "eps"], "small", "the discriminator optimizer's 'eps' is 'small'"),
    (["optimizers", "discriminator", 0, "betas"], [0.5], "'betas' is [0.5], not two numbers from 0 to below 1"),
    (["optimizers", "discriminator", 0, "betas"], [0.5, 1.0], "'betas' is [0.5, 1.0]"),
    (["optimizers", "generator", 0, "params"], "all", "'params' is 'all', not a list of parameter indices"),
    (["optimizers", "generator", 0, "params", 0], 5, "'params' are [5, 1, 2, 3, 4, 5, ...], not 0, 1, 2, ... in"),
    (["optimizers", "generator", 0, "amsgrad"], True, "'amsgrad' is True: ganforge's Adam always has it false"),
    (["optimizers", "generator", 0, "maximize"], None, "'maximize' is None: ganforge's Adam always has it false"),
    (["optimizers", "generator", 0, "fused"], "yes", "'fused' is 'yes', not true, false or null"),
    (["optimizers", "generator", 0, "extra"], {"a": 1}, "'extra' is {'a': 1}, not a plain value"),
    (["extra"], 1, "field 'extra' is unknown"),
])
def test_every_state_json_field_is_checked_even_when_the_checksums_agree(run, where, value, fragment):
    state = read_state(newest(run))
    parent = state
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = value
    write_state(newest(run), state, sign=True)
    one_line_checkpoint_error(lambda: read_checkpoint(newest(run)), str(newest(run)), fragment)


@pytest.mark.parametrize("checksums, fragment", [
    ({"generator.safetensors": "0" * 64}, "'checksums' is {'generator.safetensors': '000"),
    ("abc", "'checksums' is 'abc', not one sha256 for each of"),
])
def test_malformed_checksums_are_an_error(run, checksums, fragment):
    state = read_state(newest(run))
    state["checksums"] = checksums
    write_state(newest(run), state, sign=False)
    one_line_checkpoint_error(lambda: read_checkpoint(newest(run)), fragment)


def test_a_checksum_that_is_not_hex_is_an_error(run):
    state = read_state(newest(run))
    state["checksums"]["training.safetensors"] = "z" * 64
    write_state(newest(run), state, sign=False)
    one_line_checkpoint_error(lambda: read_checkpoint(newest(run)), "the checksum of training.safetensors is 'zzz")


def test_a_checkpoint_of_release_0_1_0_without_checksums_loads_and_is_still_checked(tmp_path):
    old = Path(shutil.copytree(RELEASE / "toy-ring8", tmp_path / "old"))
    folder = list_checkpoints(old)[-1]
    assert "checksums" not in read_state(folder) and read_checkpoint(folder).step == 4
    state = read_state(folder)
    state["step"] = -3
    write_state(folder, state, sign=False)
    one_line_checkpoint_error(lambda: read_checkpoint(folder), "'step' is -3")
    write_state(folder, {**state, "step": 4}, sign=False)
    plant_nan(folder, sign=False)
    one_line_checkpoint_error(lambda: read_checkpoint(folder), f"{folder / 'generator.safetensors'} holds NaN")
    assert read_checkpoint(old).step == 2, "an old run folder falls back too"


# --- properties: random field values and random byte flips ----------------------------------------


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)


def values_like(original: Any) -> st.SearchStrategy:
    """Values of the field's own type near its own value, so that many pass the checks and must then work."""
    if isinstance(original, bool) or original is None:
        return st.one_of(st.none(), st.booleans())
    if isinstance(original, int):
        return st.integers(-2, 2 * original + 2)
    if isinstance(original, float):
        return st.one_of(st.floats(-1, 2), st.sampled_from([0.0, 1.0, math.inf]))
    if isinstance(original, str):
        return st.one_of(st.just(original.upper()), st.just(original + "x"), st.just(""))
    if isinstance(original, list):
        return st.one_of(st.just(original[:-1]), st.just(original[::-1]), st.just([*original, *original[:1]]))
    return st.just({})


def field_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value: each key of each mapping and each index of each list, nested ones included."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    return [path for key, inner in items for path in ((*prefix, key), *field_paths(inner, (*prefix, key)))]


@pytest.fixture(scope="module")
def state_paths(good_run) -> list[tuple]:
    return [path for path in field_paths(read_state(newest(good_run))) if path[0] != "checksums"]


def assert_usable(checkpoint) -> None:
    """What loaded can be restored and trained one optimizer step, or is refused with a CheckpointError."""
    generator, discriminator = build_models(checkpoint.config.model)
    try:
        checkpoint.restore_models(generator, discriminator)
        for name, network in (("generator", generator), ("discriminator", discriminator)):
            optimizer = torch.optim.Adam(network.parameters())
            checkpoint.restore_optimizer(name, optimizer)
            for parameter in network.parameters():
                parameter.grad = torch.ones_like(parameter)
            optimizer.step()
    except CheckpointError as error:
        assert "\n" not in str(error)


@PROPERTY
@given(data=st.data(), sign=st.booleans())
def test_random_state_json_field_values_load_or_raise_one_line_checkpoint_error(good_run, state_paths, data, sign):
    where = data.draw(st.one_of(st.sampled_from(state_paths), st.tuples(st.text(min_size=1, max_size=8))))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(shutil.copytree(newest(good_run), Path(scratch) / "step_0000002"))
        state = read_state(folder)
        parent = state
        for key in where[:-1]:
            parent = parent[key]
        original = parent[where[-1]] if isinstance(parent, list) or where[-1] in parent else None
        parent[where[-1]] = data.draw(st.one_of(json_values, values_like(original)), label="value")
        write_state(folder, state, sign)
        try:
            checkpoint = read_checkpoint(folder)
        except CheckpointError as error:
            assert "\n" not in str(error), str(error)
            event("refused")
            return
        event("loaded")
        assert sign or state == read_state(newest(good_run)), "only a re-signed change can load"
        assert_usable(checkpoint)


@PROPERTY
@given(data=st.data(), name=st.sampled_from(CHECKPOINT_FILES), mask=st.integers(1, 255))
def test_random_byte_flips_in_any_checkpoint_file_are_an_error_or_harmless(good_run, data, name, mask):
    original = read_checkpoint(newest(good_run))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(shutil.copytree(newest(good_run), Path(scratch) / "step_0000002"))
        damaged = bytearray((folder / name).read_bytes())
        offset = data.draw(st.integers(0, len(damaged) - 1), label="offset")
        damaged[offset] ^= mask
        (folder / name).write_bytes(bytes(damaged))
        try:
            checkpoint = read_checkpoint(folder)
        except CheckpointError as error:
            message = str(error)
            assert "\n" not in message and re.search(re.escape(str(folder)), message), message
            event("detected")
            return
    event("harmless")  # e.g. 1e-08 written 1E-08: the same values
    assert checkpoint.step == original.step and checkpoint.state == original.state
    for part in ("generator", "discriminator", "training"):
        loaded, expected = getattr(checkpoint, part), getattr(original, part)
        assert loaded.keys() == expected.keys()
        assert all(torch.equal(loaded[key], expected[key]) for key in expected), part
