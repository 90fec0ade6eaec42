"""The run report, the progress animation, the decision surface and the failure signs."""

from __future__ import annotations

import html
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import ganforge
from ganforge.errors import GanforgeError
from ganforge.report.animate import animate, sample_grids
from ganforge.report.page import html_page, style_sheet
from ganforge.report.run_page import SECTIONS, timeline_frames, write_report
from ganforge.report.svg import Series, line_chart, nice_ticks
from ganforge.runs.metrics_log import read_metrics, training_history
from ganforge.runs.pictures import scatter_plot
from ganforge.train.diagnostics import (
    COLLAPSE_FRACTION,
    SIGN_MIN_ROWS,
    SIGN_MIN_STEPS,
    STARVED_D_FAKE,
    decision_surface,
    detect_failure_signs,
    diversity,
    failure_signs,
)

TINY_IMAGE_RUN = {"model": "dcgan", "data": "digits", "image_size": 28, "width": 4, "batch_size": 8, "steps": 20,
                  "log_every": 5, "sample_every": 5, "checkpoint_every": 0, "tensorboard": False, "seed": 0}
TINY_TOY_RUN = {"model": "toy", "data": "ring8", "width": 16, "batch_size": 32, "steps": 10, "log_every": 2,
                "sample_every": 5, "checkpoint_every": 0, "tensorboard": False, "seed": 0}
HOSTILE = '<script>alert("x")</script> & co'  # a config value that must appear escaped, never as markup


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 steps of a 4-filter DCGAN: 4 log rows, 4 sample grids, one checkpoint; a config value with markup."""
    out = tmp_path_factory.mktemp("report") / "digits <run>"
    return ganforge.train(out, data_root=HOSTILE, show_progress=False, **TINY_IMAGE_RUN).run_dir


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "ring8"
    return ganforge.train(out, show_progress=False, **TINY_TOY_RUN).run_dir


@pytest.fixture(scope="module")
def image_page(image_run: Path) -> str:
    return write_report([image_run]).read_text()


def section(page: str, key: str) -> str:
    """The HTML of <section id=key>."""
    match = re.search(rf'<section id="{re.escape(key)}">(.*?)</section>', page, re.S)
    assert match, f"no section {key}"
    return match.group(1)


# --------------------------------------------------------------------------- the report


def test_report_is_written_into_the_run_folder_with_every_section(image_run: Path, image_page: str) -> None:
    assert (image_run / "report.html").is_file()
    assert re.findall(r'<section id="([^"]+)">', image_page) == [key for key, _ in SECTIONS]
    assert {key for key, _ in SECTIONS} == {"warnings", "config", "losses", "d-outputs", "metrics", "samples",
                                            "interpolation", "evaluation"}


def test_report_charts_have_one_point_per_logged_row(image_run: Path, image_page: str) -> None:
    rows = read_metrics(image_run)
    assert [row["step"] for row in rows] == [5, 10, 15, 20]
    for key, chart in (("d_loss", "losses"), ("g_loss", "losses"), ("d_real", "d-outputs"), ("d_fake", "d-outputs")):
        label = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x)", "d_fake": "D(G(z))"}[key]
        lines = re.findall(rf'<polyline class="series" data-label="{re.escape(html.escape(label))}" points="([^"]+)"',
                           section(image_page, chart))
        assert len(lines) == 1, (key, lines)
        assert len(lines[0].split()) == len(rows)
    assert '<svg class="chart" id="chart-metric-seconds_per_step"' in section(image_page, "metrics")


def test_report_embeds_every_sample_grid_and_the_interpolation_strip(image_page: str) -> None:
    samples = section(image_page, "samples")
    assert len(re.findall(r"<img ", samples)) == 4
    assert [int(step) for step in re.findall(r"<figcaption>step (\d+)</figcaption>", samples)] == [5, 10, 15, 20]
    assert len(re.findall(r'src="data:image/png;base64,', samples)) == 4
    assert 'id="interpolation-strip"' in section(image_page, "interpolation")


def test_report_is_self_contained_and_escapes_what_it_shows(image_page: str) -> None:
    assert "http://" not in image_page and "https://" not in image_page
    for reference in re.findall(r'(?:src|href)="([^"]*)"', image_page):
        assert reference.startswith(("data:image/png;base64,", "#")), reference
    assert "<script" not in image_page
    assert html.escape(HOSTILE) in section(image_page, "config")
    assert "digits &lt;run&gt;" in image_page  # the run folder's name


def test_evaluation_table_shows_each_metric_beside_its_floor(image_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "evaluated"
    shutil.copytree(image_run, run)
    (run / "eval.json").write_text(json.dumps({"fid": 41.25, "fid_floor": 3.5, "kid": 0.0123, "kid_floor": 0.0004,
                                               "feature_extractor": "classifier <digits>", "num_samples": 1000}))
    evaluation = section(write_report([run]).read_text(), "evaluation")
    assert re.search(r"<th scope=\"row\">fid</th><td>41.25</td><td class=\"floor\">3.5</td>", evaluation)
    assert re.search(r"<th scope=\"row\">kid</th><td>0.0123</td><td class=\"floor\">0.0004</td>", evaluation)
    assert "fid_floor</th>" not in evaluation
    assert "classifier &lt;digits&gt;" in evaluation


def test_comparison_overlays_both_runs_and_lists_differing_keys_first(image_run: Path, toy_run: Path,
                                                                      tmp_path: Path) -> None:
    out = write_report([image_run, toy_run], tmp_path / "compare.html")
    page = out.read_text()
    losses = section(page, "losses")
    legend = re.findall(r'<text class="legend"[^>]*>([^<]*)</text>', losses)
    assert legend == ["digits &lt;run&gt; \u00b7 D loss", "digits &lt;run&gt; \u00b7 G loss",
                      "ring8 \u00b7 D loss", "ring8 \u00b7 G loss"]
    config_rows = re.findall(r'<tr( class="differs")?><td class="section">[^<]*</td><th scope="row">([^<]*)</th>',
                             section(page, "config"))
    differing = [key for differs, key in config_rows if differs]
    assert "model" in differing and "steps" in differing and "seed" not in differing
    assert config_rows[: len(differing)] == [(' class="differs"', key) for key in differing]  # differences first
    assert write_report([image_run, toy_run]) == image_run / "comparison.html"


def test_toy_run_report_shows_the_decision_surface(toy_run: Path) -> None:
    page = write_report([toy_run]).read_text()
    generator = section(page, "interpolation")
    assert 'id="decision-surface"' in generator and "interpolation-strip" not in generator
    assert len(re.findall(r"<img ", section(page, "samples"))) == 2


def test_rollback_events_cut_the_history_and_are_reported(tmp_path: Path) -> None:
    rows = [{"step": s, "d_loss": 0.6, "g_loss": 0.8, "d_real": 0.6, "d_fake": 0.4} for s in (2, 4, 6)]
    rows += [{"step": 6, "event": "rollback", "to_step": 2}, {"step": 4, "d_loss": 0.5, "g_loss": 0.7,
                                                               "d_real": 0.5, "d_fake": 0.5}]
    assert [(row["step"], row["d_loss"]) for row in training_history(rows)] == [(2, 0.6), (4, 0.5)]
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows) + '{"step": 8, "d_lo')
    page = write_report([run]).read_text()
    assert len(re.findall(r'data-label="D loss" points="([^"]+)"', page)[0].split()) == 2
    assert "rollback at step 6" in section(page, "warnings")
    assert 'class="mark-label"' in section(page, "losses")


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(GanforgeError, match="not a run folder"):
        write_report([tmp_path])
    with pytest.raises(GanforgeError, match="does not exist"):
        write_report([tmp_path / "missing"])


def test_nice_ticks_cover_the_data_on_round_numbers() -> None:
    low, high, ticks = nice_ticks(0.13, 0.91)
    assert (low, high) == (0.0, 1.0) and ticks == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    low, high, ticks = nice_ticks(5, 5)
    assert low < 5 < high and len(ticks) >= 2
    svg = line_chart([Series("a", [1, 2, 3], [1.0, float("nan"), 3.0], "#000")], "t")
    assert len(re.findall(r"<polyline ", svg)) == 2  # a NaN breaks the line


def test_timeline_keeps_first_and_last_of_many_grids() -> None:
    grids = [(step, Path(f"step_{step}.png")) for step in range(0, 1000, 10)]
    shown = timeline_frames(grids, limit=12)
    assert len(shown) == 12 and shown[0] == grids[0] and shown[-1] == grids[-1]


def test_the_style_sheet_ships_with_the_package_and_is_inlined() -> None:
    css = style_sheet()
    assert "svg.chart" in css and css.endswith("\n")
    page = html_page("t", "", [("a", "A", "<p>body</p>")])
    assert f"<style>\n{css}</style>" in page and "<link" not in page, "the page needs no other file"


# --------------------------------------------------------------------------- the animation


def test_gif_has_one_frame_per_saved_grid(image_run: Path, tmp_path: Path) -> None:
    out = animate(image_run, tmp_path / "progress.gif", fps=5)
    with Image.open(out) as gif:
        assert gif.n_frames == len(list((image_run / "samples").glob("step_*.png"))) == 4
        assert gif.info["loop"] == 0
        assert gif.info["duration"] == 200


def test_gif_keeps_a_frame_for_each_grid_even_when_grids_repeat(image_run: Path, tmp_path: Path) -> None:
    """A stalled run saves identical grids; each frame is captioned with its step, so none is merged away."""
    run = tmp_path / "stalled"
    (run / "samples").mkdir(parents=True)
    grid = next((image_run / "samples").glob("step_*.png"))
    for step in (100, 9, 10):
        shutil.copy(grid, run / "samples" / f"step_{step}.png")
    assert [step for step, _ in sample_grids(run)] == [9, 10, 100]  # by number, not by name
    with Image.open(animate(run, tmp_path / "stalled.gif")) as gif:
        assert gif.n_frames == 3


def test_animate_explains_a_run_without_grids(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(GanforgeError, match="no sample grids.*--sample-every"):
        animate(tmp_path / "run", tmp_path / "out.gif")
    with pytest.raises(GanforgeError, match="use a .gif or .mp4"):
        animate(tmp_path / "run", tmp_path / "out.avi")


def test_mp4_without_imageio_says_what_to_install(image_run: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "imageio", None)  # as if imageio were not installed
    with pytest.raises(GanforgeError, match=r"pip install 'imageio\[ffmpeg\]'.*\.gif"):
        animate(image_run, tmp_path / "progress.mp4")


# --------------------------------------------------------------------------- the decision surface


class LogitIsX(nn.Module):
    """D(x) = sigmoid(scale * x-coordinate): says "real" on the right, "fake" on the left."""

    def __init__(self, scale: float = 4.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, points: torch.Tensor) -> torch.Tensor:  # (B, 2) -> (B, 1)
        return self.scale * points[:, :1]


def test_decision_surface_shades_where_d_says_real() -> None:
    modes = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
    points = torch.tensor([[0.0, 0.0]])
    picture = np.asarray(decision_surface(points, modes, LogitIsX(), size=128)).astype(int)
    left, middle, right = picture[64, 2], picture[64, 60], picture[64, 125]
    assert (left >= 245).all()  # D ~ 0 at x = -1.3: white
    assert right[0] > 240 and right[2] < 120  # D ~ 1 at x = +1.3: orange (red high, blue low)
    assert left[2] > middle[2] > right[2]  # more orange from left to right


def test_decision_surface_uses_the_scatter_plot_frame() -> None:
    """With D saying "fake" everywhere the shading is white, and the picture is scatter_plot's, pixel for pixel."""
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(200, 2, generator=generator)
    modes = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    never_real = nn.Linear(2, 1)
    nn.init.zeros_(never_real.weight)
    nn.init.constant_(never_real.bias, -100.0)
    never_real.train()
    surface = decision_surface(points, modes, never_real, size=256)
    assert np.array_equal(np.asarray(surface), np.asarray(scatter_plot(points, modes, size=256)))
    assert never_real.training  # its mode is restored


# --------------------------------------------------------------------------- failure signs


def rows_of(count: int, every: int = 25, **columns: object) -> list[dict]:
    """``count`` log rows every ``every`` steps; a column is a constant or a function of the row index."""
    base = {"d_loss": 0.65, "g_loss": 0.8, "d_real": 0.55, "d_fake": 0.45, "seconds_per_step": 0.01}
    base.update(columns)
    return [{"step": (i + 1) * every, **{k: v(i) if callable(v) else v for k, v in base.items()}} for i in range(count)]


def test_healthy_run_has_no_failure_signs() -> None:
    assert failure_signs(rows_of(40, diversity=lambda i: 0.5 + 0.01 * i)) == []


def test_starved_generator_suggests_the_nonsaturating_loss_for_minimax_runs() -> None:
    rows = rows_of(40, d_fake=lambda i: 0.3 if i < 20 else 0.01)
    minimax = ganforge.RunConfig.from_dict({"loss": "minimax"})
    [message] = failure_signs(rows, minimax)
    assert message.startswith("generator starved") and "--loss nonsaturating" in message
    assert "from step 525 to 1000 (still at the last log)" in message
    [message] = failure_signs(rows, ganforge.RunConfig.from_dict({"loss": "nonsaturating"}))
    assert "--loss nonsaturating" not in message and "--lr-d" in message


def test_discriminator_won_and_recovery_is_reported_as_such() -> None:
    rows = rows_of(40, d_loss=lambda i: 0.01 if 10 <= i < 30 else 0.6)
    [sign] = detect_failure_signs(rows)
    assert sign.kind == "discriminator-won"
    assert (sign.first_step, sign.last_step, sign.ongoing) == (275, 750, False)
    assert "then recovered" in sign.message


def test_a_sign_must_last_several_rows_and_steps() -> None:
    short = rows_of(40, d_fake=lambda i: 0.01 if i >= 40 - (SIGN_MIN_ROWS - 1) else 0.4)
    assert failure_signs(short) == []  # one row too few
    dense = rows_of(40, every=1, d_fake=0.01)  # 40 rows but only 40 steps
    assert 40 < SIGN_MIN_STEPS and failure_signs(dense) == []
    assert failure_signs(rows_of(40, d_fake=STARVED_D_FAKE)) == []  # the threshold itself is not below it


def test_mode_collapse_when_diversity_falls_below_a_fraction_of_its_peak() -> None:
    peak = 0.8
    rows = rows_of(20, diversity=lambda i: min(0.1 * (i + 1), peak) if i < 14 else peak * COLLAPSE_FRACTION * 0.5)
    [sign] = detect_failure_signs(rows)
    assert sign.kind == "mode-collapse" and sign.ongoing and sign.first_step == 375
    assert "below 20% of its peak 0.8" in sign.message
    rising = rows_of(20, diversity=lambda i: 0.01 * (i + 1))  # a generator that starts collapsed and spreads out
    assert failure_signs(rising) == []


def test_diversity_is_zero_for_copies_and_scale_free() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(16, 1, 8, 8, generator=generator) * 2 - 1
    assert diversity(images[:1].expand(16, -1, -1, -1)) == 0.0
    assert diversity(images) == pytest.approx(0.8, abs=0.1)  # uniform noise in [-1, 1]: about sqrt(2/3)
    bigger = torch.rand(16, 3, 32, 32, generator=generator) * 2 - 1
    assert diversity(bigger) == pytest.approx(diversity(images), abs=0.05)
    with pytest.raises(ValueError, match="at least 2 samples"):
        diversity(images[:1])


# --------------------------------------------------------------------------- failure signs from evaluations

RING8 = ganforge.RunConfig.from_dict({"model": "toy", "data": "ring8"})


def test_missing_modes_at_the_last_evaluation_are_a_sign() -> None:
    rows = rows_of(10, diversity=0.5)
    rows[-1].update(modes_covered=6, high_quality=0.99, reverse_kl=0.2)
    [sign] = detect_failure_signs(rows, RING8)
    assert sign.kind == "modes-lost" and "found 6 of 8 modes" in sign.message and sign.last_step == 250


def test_samples_between_the_modes_are_a_sign_even_with_every_mode_covered() -> None:
    rows = rows_of(10, diversity=0.5)
    rows[-1].update(modes_covered=8, high_quality=0.009, reverse_kl=0.01)
    [sign] = detect_failure_signs(rows, RING8)
    assert sign.kind == "low-quality" and "only 0.9% of samples" in sign.message
    healthy = rows_of(10, diversity=0.5)
    healthy[-1].update(modes_covered=8, high_quality=0.95, reverse_kl=0.01)
    assert detect_failure_signs(healthy, RING8) == []


def test_fid_rising_at_three_evaluations_in_a_row_is_a_sign() -> None:
    rows = rows_of(8, diversity=0.5)
    for row, fid in zip(rows[-4:], (2.0, 2.5, 3.0, 3.1)):
        row["fid"] = fid
    [sign] = detect_failure_signs(rows)
    assert sign.kind == "fid-rising" and "from 2 (step 125) to 3.1 (step 200)" in sign.message
    rows[-2]["fid"] = 2.4  # one fall among the last three changes: no sign
    assert detect_failure_signs(rows) == []


def test_evaluation_signs_wait_for_the_end_of_training_when_asked() -> None:
    rows = rows_of(10, diversity=0.5)
    rows[-1].update(modes_covered=3, high_quality=0.1)
    assert detect_failure_signs(rows, RING8, evaluations=False) == []
    assert {sign.kind for sign in detect_failure_signs(rows, RING8)} == {"modes-lost", "low-quality"}


def test_report_of_an_unevaluated_run_never_claims_health_alone(toy_run: Path, tmp_path: Path) -> None:
    warnings = section(write_report([toy_run], tmp_path / "plain.html").read_text(), "warnings")
    assert "sample quality not measured" in warnings and "ganforge eval RUN" in warnings
    assert "No known failure signs" not in warnings


def test_report_reads_the_failure_signs_of_eval_json(toy_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "evaluated"
    shutil.copytree(toy_run, run)
    (run / "eval.json").write_text(json.dumps({"step": 10, "modes_covered": 8, "modes_covered_floor": 8,
                                               "high_quality": 0.009, "high_quality_floor": 0.99,
                                               "reverse_kl": 0.01, "reverse_kl_floor": 0.001}))
    warnings = section(write_report([run]).read_text(), "warnings")
    assert 'data-kind="low-quality"' in warnings and "only 0.9% of samples" in warnings
    assert "not measured" not in warnings
