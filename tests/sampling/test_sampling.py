"""Sampling from trained runs: `ganforge sample` and `ganforge interpolate`, slerp, eval-mode generation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import ganforge
from ganforge.cli import app
from ganforge.errors import GanforgeError
from ganforge.runs.pictures import GRID_PADDING, PLOT_SIZE
from ganforge.sampling.generator import slerp

SIZE = 28  # the tiny dcgan's images: 1 x 28 x 28
BLUE_POINT, RED_CROSS = (31, 119, 180), (214, 39, 40)


def cli(*args: object) -> None:
    """Run a ganforge subcommand in-process; it must succeed."""
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, (result.output, result.exception)


def cli_error(*args: object) -> BaseException:
    """Run a ganforge subcommand in-process; it must fail with a one-line GanforgeError, which is returned."""
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code != 0
    assert isinstance(result.exception, GanforgeError), result.exception
    assert "\n" not in str(result.exception)
    return result.exception


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] -> (N, H, W) uint8, as the PNG writers round them."""
    return ((images[:, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def max_difference(a: torch.Tensor, b: torch.Tensor) -> str:
    return f"max |difference| {(a - b).abs().max().item():.3g}"


def grid_cells(picture: np.ndarray, rows: int, columns: int, size: int = SIZE) -> np.ndarray:
    """Cut a padded grid picture (H, W) into its cells (rows * columns, size, size), row by row."""
    step = size + GRID_PADDING
    return np.stack([
        picture[GRID_PADDING + r * step : GRID_PADDING + r * step + size,
                GRID_PADDING + c * step : GRID_PADDING + c * step + size]
        for r in range(rows) for c in range(columns)
    ])


# --- ganforge sample -----------------------------------------------------------------------------


def test_sample_png_is_one_grid_of_the_samples(dcgan_run, tmp_path):
    cli("sample", dcgan_run, "-n", 10, "--out", tmp_path / "grid.png")
    cli("sample", dcgan_run, "-n", 10, "--out", tmp_path / "samples.npy")
    picture = Image.open(tmp_path / "grid.png")
    columns, rows = math.ceil(math.sqrt(10)), 3  # a square-ish grid: 4 columns, 3 rows for 10 samples
    step = SIZE + GRID_PADDING
    assert picture.size == (columns * step + GRID_PADDING, rows * step + GRID_PADDING)
    assert picture.mode == "L"
    pixels = np.asarray(picture)
    cells = grid_cells(pixels, rows, columns)
    assert np.array_equal(cells[:10], to_pixels(torch.from_numpy(np.load(tmp_path / "samples.npy"))))
    assert not cells[10:].any(), "the 2 unused cells stay black"


def test_sample_npy_is_the_raw_array_in_minus_one_one(dcgan_run, tmp_path):
    cli("sample", dcgan_run, "-n", 10, "--out", tmp_path / "samples.npy")
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (10, 1, SIZE, SIZE) and samples.dtype == np.float32
    assert samples.min() >= -1 and samples.max() <= 1
    assert np.array_equal(samples, ganforge.load(dcgan_run, device="cpu").sample(10, seed=0).numpy())


def test_sample_folder_writes_one_png_per_sample(dcgan_run, tmp_path):
    cli("sample", dcgan_run, "-n", 10, "--out", f"{tmp_path / 'folder'}/")
    files = sorted((tmp_path / "folder").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(10)]
    images = [Image.open(f) for f in files]
    assert all(image.size == (SIZE, SIZE) and image.mode == "L" for image in images)
    expected = to_pixels(ganforge.load(dcgan_run, device="cpu").sample(10, seed=0))
    assert np.array_equal(np.stack([np.asarray(image) for image in images]), expected)


def test_same_seed_same_samples_and_another_seed_other_samples(dcgan_run, tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        cli("sample", dcgan_run, "-n", 10, "--seed", seed, "--out", tmp_path / f"{name}.npy")
    a, b, c = (np.load(tmp_path / f"{name}.npy") for name in "abc")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sampling_from_a_checkpoint_folder_equals_sampling_from_its_run(dcgan_run, tmp_path):
    checkpoint = dcgan_run / "checkpoints" / "step_0000002"
    cli("sample", checkpoint, "-n", 10, "--out", tmp_path / "from_checkpoint.npy")
    cli("sample", dcgan_run, "-n", 10, "--out", tmp_path / "from_run.npy")
    assert np.array_equal(np.load(tmp_path / "from_checkpoint.npy"), np.load(tmp_path / "from_run.npy"))


def test_toy_run_samples_points_and_plots_them_over_the_modes(toy_run, tmp_path):
    cli("sample", toy_run, "-n", 100, "--out", tmp_path / "points.npy")
    cli("sample", toy_run, "-n", 100, "--out", tmp_path / "plot.png")
    points = np.load(tmp_path / "points.npy")
    assert points.shape == (100, 2) and points.dtype == np.float32 and np.isfinite(points).all()
    plot = Image.open(tmp_path / "plot.png")
    assert plot.size == (PLOT_SIZE, PLOT_SIZE) and plot.mode == "RGB"
    colours = {tuple(c) for c in np.asarray(plot).reshape(-1, 3).tolist()}
    assert BLUE_POINT in colours, "the generated points"
    assert RED_CROSS in colours, "the ring8 modes"


def test_toy_run_cannot_be_written_as_image_files(toy_run, tmp_path):
    error = cli_error("sample", toy_run, "-n", 5, "--out", tmp_path / "folder")
    assert "points" in str(error) and ".npy" in str(error)


def test_unsupported_suffix_is_a_clear_error(dcgan_run, tmp_path):
    error = cli_error("sample", dcgan_run, "-n", 10, "--out", tmp_path / "x.txt")
    assert "x.txt" in str(error) and ".png" in str(error) and ".npy" in str(error)
    assert not (tmp_path / "x.txt").exists()


def test_zero_samples_is_a_clear_error(dcgan_run, tmp_path):
    error = cli_error("sample", dcgan_run, "-n", 0, "--out", tmp_path / "s.npy")
    assert "at least 1" in str(error) and "got 0" in str(error)
    assert not (tmp_path / "s.npy").exists()


# --- ganforge interpolate ------------------------------------------------------------------------


def test_interpolate_writes_rows_of_walks(dcgan_run, tmp_path):
    cli("interpolate", dcgan_run, "--rows", 3, "--steps", 5, "--out", tmp_path / "walk.png")
    picture = Image.open(tmp_path / "walk.png")
    step = SIZE + GRID_PADDING
    assert picture.size == (5 * step + GRID_PADDING, 3 * step + GRID_PADDING), "5 columns, 3 rows"
    walks = ganforge.load(dcgan_run, device="cpu").interpolate(3, 5, seed=0)
    assert walks.shape == (15, 1, SIZE, SIZE)
    assert np.array_equal(grid_cells(np.asarray(picture), 3, 5), to_pixels(walks))


def test_interpolation_starts_and_ends_at_g_of_the_end_points(dcgan_run):
    generator = ganforge.load(dcgan_run, device="cpu")
    rows, steps = 3, 5
    walks = generator.interpolate(rows, steps, seed=4).reshape(rows, steps, 1, SIZE, SIZE)
    start, end = generator.latents(2 * rows, seed=4).chunk(2)
    first, last = generator.generate(start), generator.generate(end)
    # The latents are the end points exactly (test_slerp_keeps_the_end_points_exactly); the images may differ by
    # rounding, since a CPU's convolution kernels can depend on the batch size (1e-10 on an AMD EPYC, Zen 5).
    torch.testing.assert_close(walks[:, 0], first, rtol=0, atol=1e-6)
    torch.testing.assert_close(walks[:, -1], last, rtol=0, atol=1e-6)
    assert not torch.equal(walks[:, 0], walks[:, 2]), "the middle of a walk is neither end"


def test_interpolating_a_toy_run_is_a_clear_error(toy_run, tmp_path):
    error = cli_error("interpolate", toy_run, "--out", tmp_path / "walk.png")
    assert "2-D points" in str(error) and "ganforge sample" in str(error)
    assert not (tmp_path / "walk.png").exists()


# --- slerp ---------------------------------------------------------------------------------------


def test_slerp_keeps_the_end_points_exactly():
    generator = torch.Generator().manual_seed(0)
    start, end = torch.randn(16, 50, generator=generator), torch.randn(16, 50, generator=generator)
    at_start, at_end = slerp(start, end, 0.0), slerp(start, end, 1.0)
    assert torch.equal(at_start, start), max_difference(at_start, start)
    assert torch.equal(at_end, end), max_difference(at_end, end)


@pytest.mark.parametrize("weight", [0.1, 0.25, 0.5, 0.8])
def test_slerp_of_orthogonal_equal_norm_latents_keeps_their_norm(weight):
    start = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    end = torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, -2.0]])
    middle = slerp(start, end, weight)
    assert torch.allclose(middle.norm(dim=1), torch.tensor([3.0, 2.0]), rtol=1e-5)
    angle = weight * math.pi / 2  # on the quarter circle from start to end
    assert torch.allclose(middle, math.cos(angle) * start + math.sin(angle) * end, atol=1e-5)


def test_slerp_norm_lies_between_the_ends_for_orthogonal_latents_of_other_norms():
    start, end = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    norms = torch.stack([slerp(start, end, w).norm() for w in torch.linspace(0, 1, 11).tolist()])
    assert norms.min() >= 1 - 1e-6 and norms.max() <= 2 + 1e-6
    assert torch.all(torch.diff(norms) > 0), "growing from one end's norm to the other's"


# --- eval mode -----------------------------------------------------------------------------------


def test_sampling_runs_in_eval_mode_and_keeps_batch_norm_statistics(dcgan_run, tmp_path):
    generator = ganforge.load(dcgan_run, device="cpu")
    assert not any(module.training for module in generator.generator.modules())
    buffers = {name: b.clone() for name, b in generator.generator.named_buffers()}
    assert any("running_mean" in name for name in buffers), "the dcgan generator has BatchNorm"
    generator.sample(32, seed=1)
    generator.interpolate(2, 3, seed=1)
    assert all(torch.equal(buffers[name], b) for name, b in generator.generator.named_buffers())
    checkpoint_files = {p: p.read_bytes() for p in (dcgan_run / "checkpoints").rglob("*") if p.is_file()}
    cli("sample", dcgan_run, "-n", 32, "--out", tmp_path / "s.npy")
    assert {p: p.read_bytes() for p in (dcgan_run / "checkpoints").rglob("*") if p.is_file()} == checkpoint_files


def test_samples_do_not_depend_on_the_batch_they_are_drawn_with(dcgan_run):
    generator = ganforge.load(dcgan_run, device="cpu")
    latents = generator.latents(8, seed=2)
    together = generator.generate(latents)
    one_by_one = torch.cat([generator.generate(z.unsqueeze(0)) for z in latents])
    assert torch.allclose(together, one_by_one, atol=1e-5), "eval-mode BatchNorm uses running statistics"
