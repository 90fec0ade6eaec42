"""`ganforge sample` into files: folders that already hold samples, sizes checked first, arrays streamed to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ganforge
from ganforge.cli import app
from ganforge.errors import GanforgeError
from ganforge.sampling.generator import SAMPLE_BATCH
from ganforge.sampling.write import write_sample_batches


def sample(*args: object):
    return CliRunner().invoke(app, ["sample", *map(str, args)])


def sample_error(*args: object) -> str:
    result = sample(*args)
    assert result.exit_code != 0 and isinstance(result.exception, GanforgeError), (result.output, result.exception)
    assert "\n" not in str(result.exception)
    return str(result.exception)


def files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_sampling_into_a_folder_of_earlier_samples_is_refused_and_leaves_them(dcgan_run, tmp_path):
    out = tmp_path / "samples"
    assert sample(dcgan_run, "-n", 10, "--out", out).exit_code == 0
    before = files(out)
    message = sample_error(dcgan_run, "-n", 4, "--seed", 1, "--out", out)
    assert f"{out} already holds 10 files (10 sample images)" in message and "--overwrite" in message
    assert files(out) == before


def test_overwrite_replaces_the_earlier_samples_so_the_folder_holds_one_sessions_samples(dcgan_run, tmp_path):
    out = tmp_path / "samples"
    assert sample(dcgan_run, "-n", 10, "--out", out).exit_code == 0
    assert sample(dcgan_run, "-n", 4, "--seed", 1, "--out", out, "--overwrite").exit_code == 0
    fresh = tmp_path / "fresh"
    assert sample(dcgan_run, "-n", 4, "--seed", 1, "--out", fresh).exit_code == 0
    assert files(out) == files(fresh) and sorted(files(out)) == [f"{index:06d}.png" for index in range(4)]


def test_overwrite_never_deletes_files_ganforge_did_not_write(dcgan_run, tmp_path):
    out = tmp_path / "samples"
    assert sample(dcgan_run, "-n", 3, "--out", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    before = files(out)
    message = sample_error(dcgan_run, "-n", 3, "--out", out, "--overwrite")
    assert "did not write (notes.txt)" in message and "empty folder" in message
    assert files(out) == before


def test_a_file_where_a_folder_is_wanted_is_one_error(dcgan_run, tmp_path):
    (tmp_path / "taken").write_text("x")
    assert "is a file, not a folder" in sample_error(dcgan_run, "-n", 2, "--out", tmp_path / "taken")


def test_batched_samples_equal_the_samples_drawn_at_once(toy_run, dcgan_run):
    for run, count in ((toy_run, 2 * SAMPLE_BATCH + 17), (dcgan_run, SAMPLE_BATCH + 3)):
        generator = ganforge.load(run)
        batches = list(generator.sample_batches(count, seed=3))
        assert [len(batch) for batch in batches] == [SAMPLE_BATCH] * (count // SAMPLE_BATCH) + [count % SAMPLE_BATCH]
        latents = torch.randn(count, generator.generator.z_dim, generator=torch.Generator().manual_seed(3))
        assert torch.equal(torch.cat(batches), generator.generate(latents))


def test_an_array_is_streamed_to_disk_and_equals_the_samples(toy_run, tmp_path):
    count = 2 * SAMPLE_BATCH + 5
    assert sample(toy_run, "-n", count, "--seed", 2, "--out", tmp_path / "points.npy").exit_code == 0
    saved = np.load(tmp_path / "points.npy", mmap_mode="r")
    assert saved.shape == (count, 2) and saved.dtype == np.float32
    np.testing.assert_array_equal(saved, ganforge.load(toy_run).sample(count, seed=2).numpy())
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


@pytest.mark.parametrize("out, needs", [("huge.npy", "8.0 TB"), ("huge/", "1.3 TB")])
def test_more_samples_than_the_disk_holds_are_refused_before_any_is_drawn(toy_run, dcgan_run, tmp_path, out, needs):
    run, count = (toy_run, 10**12) if out.endswith(".npy") else (dcgan_run, 10**12 // 784)
    message = sample_error(run, "-n", count, "--out", tmp_path / out)
    assert f"needs about {needs}" in message and "free" in message and "-n" in message
    assert not (tmp_path / "huge.npy").exists() and not (tmp_path / "huge").exists()


def test_a_picture_of_more_samples_than_memory_holds_is_refused(dcgan_run, tmp_path):
    message = sample_error(dcgan_run, "-n", 10**12, "--out", tmp_path / "grid.png")
    assert "of memory" in message and "samples.npy" in message
    assert not (tmp_path / "grid.png").exists()


def test_an_interrupted_array_leaves_no_partial_file(tmp_path):
    def batches():
        yield torch.zeros(4, 2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_sample_batches(batches(), 8, (2,), tmp_path / "points.npy")
    assert list(tmp_path.iterdir()) == []
