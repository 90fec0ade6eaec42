"""Known failure signs of GAN training, read from ``metrics.jsonl`` rows.

Three signs from the lectures, each with what to do about it:

- the generator is starved: D(G(z)) stays near 0, where the minimax loss
  log(1 - D(G(z))) is flat and G gets almost no gradient;
- the discriminator won: its loss stays near 0, it separates real from fake
  perfectly and its verdict no longer tells G where to go;
- mode collapse: the fixed-noise samples become alike, measured by
  :func:`diversity` (the trainer logs it as ``"diversity"`` in the rows).

For 2-D data, :func:`decision_surface` draws the lectures' picture that makes
collapse visible: the generated points over the real modes, on D's verdict.

A sign must last :data:`SIGN_MIN_ROWS` log rows in a row and span
:data:`SIGN_MIN_STEPS` steps, so one noisy row never warns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor, nn

from ganforge.config.schema import RunConfig
from ganforge.data import MIXTURES, mixture_modes
from ganforge.data.digits import STACKED_DIGITS_MODES
from ganforge.runs.metrics_log import is_number, training_history
from ganforge.runs.pictures import PLOT_MARGIN, PLOT_SIZE

STARVED_D_FAKE = 0.05  # D(G(z)) below this: the minimax G gradient (∝ D(G(z))) is ~5% of the non-saturating one
WON_D_LOSS = 0.05  # D loss below this: D(x) ~ 1 and D(G(z)) ~ 0 on nearly every sample, real and fake are separated
COLLAPSE_FRACTION = 0.2  # diversity below this share of its peak: the fixed-noise samples have become near copies
SIGN_MIN_ROWS = 5  # consecutive log rows a loss sign must hold, so one noisy mean never warns
SIGN_MIN_STEPS = 100  # and the steps those rows must span, so a run logged every step needs more than 5 steps
COLLAPSE_MIN_ROWS = 3  # consecutive diversity values below the fraction (the trainer may log it less often)
DIVERSITY_KEY = "diversity"  # the metrics.jsonl key of diversity(G(fixed noise)), logged by the trainer
# Signs read from evaluations (--eval-every rows, or a run's eval.json):
REAL_HIGH_QUALITY = 1 - math.exp(-4.5)  # share of a 2-D isotropic Gaussian within 3 std of its mean (98.9%)
LOW_QUALITY_SHARE = 0.9  # high_quality below this share of the real data's: samples lie between the modes
FID_RISING_EVALS = 3  # FID rising at this many evaluations in a row: the generator is getting worse
DIGIT_CLASSES = 10

SURFACE_GRID = 128  # D is evaluated on this many points per side, then smoothly upscaled to the picture
SURFACE_REAL_RGB = (253, 174, 97)  # shade where D(x) = 1 ("real"); D(x) = 0 stays white
BOUNDARY_RGB = (90, 90, 90)  # the D(x) = 1/2 contour
POINT_RGB = (31, 119, 180)  # generated points, as in images.scatter_plot
MODE_RGB = (214, 39, 40)  # real modes, as in images.scatter_plot


@dataclass(frozen=True)
class FailureSign:
    """One failure sign found in a run's log, with the steps it spans."""

    kind: str  # "starved" | "discriminator-won" | "mode-collapse" | "modes-lost" | "low-quality" | "fid-rising"
    message: str  # one line: what was seen, what it means, what to try
    first_step: int
    last_step: int
    ongoing: bool  # still present in the last row that carries the statistic


@torch.no_grad()
def diversity(samples: Tensor) -> float:
    """Mean pairwise Euclidean distance of a batch, divided by sqrt(features per sample).

    (N, C, H, W) images or (N, 2) points; the division makes it the root-mean-square
    difference per coordinate, so images of any size compare on one scale
    (independent uniform noise images in [-1, 1] give about 0.82; identical samples give 0).
    Use the same fixed noise each time, so changes come from G alone.
    """
    if samples.ndim < 2 or samples.shape[0] < 2:
        raise ValueError(f"diversity needs a batch of at least 2 samples, got shape {tuple(samples.shape)}")
    flat = samples.detach().float().reshape(samples.shape[0], -1).cpu()
    return float(torch.pdist(flat).mean() / math.sqrt(flat.shape[1]))


def detect_failure_signs(rows: Sequence[dict[str, Any]], config: RunConfig | None = None,
                         evaluations: bool = True) -> list[FailureSign]:
    """The failure signs in metrics.jsonl rows (event rows and rolled-back rows are handled), longest stretch each;
    with ``evaluations``, also those of the evaluated rows (see :func:`evaluation_signs`)."""
    history = training_history(rows)
    signs = []
    loss = config.train.loss if config is not None else None

    probabilities = loss in (None, "nonsaturating", "minimax")  # D's outputs and loss on the scale the signs read
    starved = probabilities and _longest_stretch(history, "d_fake", lambda value, _: value < STARVED_D_FAKE,
                                                 SIGN_MIN_ROWS, SIGN_MIN_STEPS)
    if starved:
        first, last, ongoing = starved
        if loss == "minimax":
            advice = ("the minimax loss log(1 - D(G(z))) is flat there, so G gets almost no gradient: "
                      "train with --loss nonsaturating")
        elif loss == "nonsaturating":
            advice = "D rejects every sample G makes: try a lower --lr-d, fewer --d-steps or a narrower D"
        else:
            advice = ("with --loss minimax G gets almost no gradient there: train with --loss nonsaturating; "
                      "otherwise try a lower --lr-d or fewer --d-steps")
        signs.append(FailureSign(
            "starved",
            f"generator starved: D(G(z)) stayed below {STARVED_D_FAKE} {_span(first, last, ongoing)}; {advice}",
            first, last, ongoing))

    won = probabilities and _longest_stretch(history, "d_loss", lambda value, _: value < WON_D_LOSS,
                                             SIGN_MIN_ROWS, SIGN_MIN_STEPS)
    if won:
        first, last, ongoing = won
        signs.append(FailureSign(
            "discriminator-won",
            f"discriminator won: its loss stayed below {WON_D_LOSS} {_span(first, last, ongoing)}, so it separates "
            "real from fake perfectly and G learns little: try a lower --lr-d, a higher --lr-g or --d-steps 1",
            first, last, ongoing))

    peak = -math.inf  # the highest diversity before the current row

    def collapsed(value: float, row: dict[str, Any]) -> bool:
        nonlocal peak
        low = value < COLLAPSE_FRACTION * peak
        peak = max(peak, value)
        return low

    collapse = _longest_stretch(history, DIVERSITY_KEY, collapsed, COLLAPSE_MIN_ROWS, 0)
    if collapse:
        first, last, ongoing = collapse
        values = [(row["step"], row[DIVERSITY_KEY]) for row in history if _finite(row.get(DIVERSITY_KEY))]
        lowest = min(value for step, value in values if first <= step <= last)
        peak_step, peak_value = max(((step, value) for step, value in values if step < first), key=lambda item: item[1])
        signs.append(FailureSign(
            "mode-collapse",
            f"mode collapse: sample diversity fell to {lowest:.3g}, below {COLLAPSE_FRACTION:.0%} of its peak "
            f"{peak_value:.3g} (step {peak_step}), {_span(first, last, ongoing)}; the fixed-noise samples are "
            "near copies: look at the sample grids, try --loss nonsaturating, a lower --lr-g or a larger batch",
            first, last, ongoing))
    return signs + (evaluation_signs(history, config) if evaluations else [])


def evaluation_signs(history: Sequence[dict[str, Any]], config: RunConfig | None) -> list[FailureSign]:
    """Failure signs in the evaluated rows: modes or classes missing at the last evaluation, a high-quality
    share far below the real data's, FID rising at several evaluations in a row."""
    signs = []
    expected = _expected_modes(config)
    for key, what in (("modes_covered", "modes"), ("classes_covered", "classes")):
        rows = [row for row in history if _finite(row.get(key))]
        total = expected if key == "modes_covered" else DIGIT_CLASSES
        if rows and total is not None and rows[-1][key] < total:
            step = rows[-1]["step"]
            signs.append(FailureSign(
                "modes-lost",
                f"{what} lost: the evaluation at step {step} found {rows[-1][key]:g} of {total} {what}; the generator "
                "drops part of the data: train longer, try --pack 2 or the data's preset (--preset auto)",
                step, step, True))
    rows = [row for row in history if _finite(row.get("high_quality"))]
    if rows and rows[-1]["high_quality"] < LOW_QUALITY_SHARE * REAL_HIGH_QUALITY:
        step, share = rows[-1]["step"], rows[-1]["high_quality"]
        signs.append(FailureSign(
            "low-quality",
            f"blurred modes: at step {step} only {share:.1%} of samples lie within 3 std of a mode (real data: "
            f"{REAL_HIGH_QUALITY:.1%}), the rest fall between modes: train longer, or decay the learning rates "
            "(--lr-schedule cosine) so that late training sharpens the samples",
            step, step, True))
    rows = [row for row in history if _finite(row.get("fid"))]
    recent = rows[-(FID_RISING_EVALS + 1):]
    if len(recent) == FID_RISING_EVALS + 1 and all(b["fid"] > a["fid"] for a, b in zip(recent, recent[1:])):
        first, last = recent[0]["step"], recent[-1]["step"]
        signs.append(FailureSign(
            "fid-rising",
            f"FID rising: it grew at each of the last {FID_RISING_EVALS} evaluations, from {recent[0]['fid']:.3g} "
            f"(step {first}) to {recent[-1]['fid']:.3g} (step {last}); the generator is getting worse: sample from "
            "checkpoints/best (kept with --eval-every), or lower the learning rates",
            first, last, True))
    return signs


def _expected_modes(config: RunConfig | None) -> int | None:
    """How many modes a run's data has, where the evaluation counts them (mixtures, stacked digits)."""
    if config is None:
        return None
    if config.data.data in MIXTURES:
        return len(mixture_modes(config.data.data)[0])
    return STACKED_DIGITS_MODES if config.data.data == "stacked-digits" else None


def failure_signs(rows: Sequence[dict[str, Any]], config: RunConfig | None = None) -> list[str]:
    """One warning line per failure sign in metrics.jsonl rows; [] for a healthy run."""
    return [sign.message for sign in detect_failure_signs(rows, config)]


def _finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def _span(first: int, last: int, ongoing: bool) -> str:
    return f"from step {first} to {last}" + (" (still at the last log)" if ongoing else " (then recovered)")


def _longest_stretch(
    history: Sequence[dict[str, Any]],
    key: str,
    condition: Callable[[float, dict[str, Any]], bool],
    min_rows: int,
    min_steps: int,
) -> tuple[int, int, bool] | None:
    """(first step, last step, ongoing) of the longest run of consecutive rows carrying ``key`` where
    ``condition`` holds, if it has ``min_rows`` rows and spans ``min_steps`` steps; rows without the key are skipped.

    A stretch's span counts from the row before it (each row averages the steps since the previous log).
    """
    best: tuple[int, int, bool] | None = None
    best_rows = 0
    start = count = 0
    previous_step = 0  # the step of the last row carrying the key
    begin = 0
    rows = [row for row in history if key in row]
    for index, row in enumerate(rows):
        value = row[key]
        if _finite(value) and condition(float(value), row):
            if count == 0:
                start, begin = row["step"], previous_step
            count += 1
            spans = row["step"] - begin
            if count >= min_rows and spans >= min_steps and count > best_rows:
                best, best_rows = (start, row["step"], index == len(rows) - 1), count
        else:
            count = 0
        previous_step = row["step"]
    return best


@dataclass(frozen=True)
class PlotFrame:
    """The square of the plane a 2-D picture shows: the same mapping as :func:`ganforge.runs.pictures.scatter_plot`."""

    centre: Tensor  # (2,)
    span: float  # data units across the picture
    size: int  # pixels per side

    @classmethod
    def around(cls, points: Tensor, modes: Tensor | None, size: int = PLOT_SIZE) -> PlotFrame:
        """The frame scatter_plot uses: the modes' (else the points') bounding square plus the margin."""
        reference = (modes if modes is not None else points).detach().float().cpu()
        low = reference.min(dim=0).values
        high = reference.max(dim=0).values
        span = float((high - low).max().clamp(min=1e-6)) * (1 + 2 * PLOT_MARGIN)
        return cls((low + high) / 2, span, size)

    def to_pixel(self, xy: Tensor) -> tuple[float, float]:
        x, y = ((xy.float() - self.centre) / self.span + 0.5).tolist()
        return x * self.size, (1 - y) * self.size

    def pixel_centres(self, cells: int) -> Tensor:  # -> (cells * cells, 2), row-major from the top-left cell
        """Data coordinates of the centres of a cells x cells grid over the picture."""
        offsets = (torch.arange(cells, dtype=torch.float32) + 0.5) / cells - 0.5
        xs = self.centre[0] + offsets * self.span
        ys = self.centre[1] - offsets * self.span  # image rows go down, y goes up
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)


@torch.no_grad()
def decision_surface(points: Tensor, modes: Tensor | None, discriminator: nn.Module | Callable[[Tensor], Tensor],
                     size: int = PLOT_SIZE) -> Image.Image:
    """Generated points (blue) over the real modes (red crosses), on D's verdict D(x) = sigmoid(logit):
    white where D says fake (0), orange where it says real (1), a grey line where D(x) = 1/2.

    ``points`` (N, 2), ``modes`` (M, 2) or None; ``discriminator`` maps (B, 2) points to (B, 1) or (B,) logits
    and is run in eval mode on its own device (its mode is restored). The frame is scatter_plot's, so with
    D saying "fake" everywhere the picture equals ``scatter_plot(points, modes, size)``.
    """
    frame = PlotFrame.around(points, modes, size)
    verdict = _evaluate(discriminator, frame.pixel_centres(SURFACE_GRID)).reshape(SURFACE_GRID, SURFACE_GRID)
    shade = Image.fromarray(verdict.numpy().astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR)
    real = np.clip(np.asarray(shade), 0.0, 1.0)[..., None]  # (size, size, 1)
    white = np.full(3, 255.0)
    pixels = white * (1 - real) + np.asarray(SURFACE_REAL_RGB, dtype=np.float64) * real
    above = real[..., 0] >= 0.5
    boundary = np.zeros_like(above)
    boundary[:, 1:] |= above[:, 1:] != above[:, :-1]
    boundary[1:, :] |= above[1:, :] != above[:-1, :]
    pixels[boundary] = BOUNDARY_RGB
    image = Image.fromarray(pixels.round().astype(np.uint8))

    draw = ImageDraw.Draw(image)
    for point in points.detach().float().cpu():
        x, y = frame.to_pixel(point)
        draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=POINT_RGB)
    if modes is not None:
        for mode in modes.detach().float().cpu():
            x, y = frame.to_pixel(mode)
            draw.line((x - 6, y, x + 6, y), fill=MODE_RGB, width=2)
            draw.line((x, y - 6, x, y + 6), fill=MODE_RGB, width=2)
    return image


def _evaluate(discriminator: nn.Module | Callable[[Tensor], Tensor], xy: Tensor) -> Tensor:  # (B, 2) -> (B,) in [0, 1]
    module = discriminator if isinstance(discriminator, nn.Module) else None
    parameter = next(module.parameters(), None) if module is not None else None
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    try:
        logits = discriminator(xy.to(device=device, dtype=dtype))
    finally:
        if module is not None:
            module.train(was_training)
    return torch.sigmoid(logits.float().reshape(-1)).cpu()
