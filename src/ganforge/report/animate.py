"""``ganforge animate``: the fixed-noise sample grids of a run as one animation, a frame per saved grid."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ganforge.errors import GanforgeError

SAMPLE_GRID = re.compile(r"^step_(\d+)\.png$")  # samples/step_0000250.png, written every --sample-every steps
LAST_FRAME_HOLD = 4  # the last frame shows this many frame times, so the loop pauses on the final samples
CAPTION_FONT_FRACTION = 1 / 22  # the "step N" caption under each frame: its font size as a share of the width


def sample_grids(run: Path | str) -> list[tuple[int, Path]]:
    """(step, path) of every ``RUN/samples/step_N.png``, in step order."""
    folder = Path(run) / "samples"
    if not folder.is_dir():
        return []
    found = [(int(match.group(1)), path) for path in folder.iterdir() if (match := SAMPLE_GRID.match(path.name))]
    return sorted(found)


def animate(run: Path | str, out: Path | str, fps: int = 4) -> Path:
    """Write the run's sample grids, oldest first, as a looping ``.gif`` (Pillow) or an ``.mp4``
    (needs imageio with its ffmpeg plugin); one frame per saved grid, ``fps`` frames per second.

    Each frame is the grid with its step written under it; the GIF holds its last frame longer, so
    the loop pauses on the final samples.
    """
    run, out = Path(run), Path(out)
    if fps < 1:
        raise GanforgeError(f"--fps must be at least 1, got {fps}")
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise GanforgeError(f"cannot write an animation to {out}: use a .gif or .mp4 file name")
    if not run.is_dir():
        raise GanforgeError(f"{run} does not exist: pass a run folder written by 'ganforge train'")
    grids = sample_grids(run)
    if not grids:
        raise GanforgeError(f"{run} holds no sample grids (samples/step_N.png): train with --sample-every N "
                            "to save the fixed-noise grid during training")
    with Image.open(grids[-1][1]) as last:
        grid_size = last.size  # every frame at the final grid's size (grids of one run all have it)
    font_size = max(10, round(grid_size[0] * CAPTION_FONT_FRACTION))
    size = (grid_size[0], grid_size[1] + font_size + 8)
    # Read one at a time: a long run has hundreds of grids.
    frames = (_read_frame(path, step, grid_size, font_size) for step, path in grids)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        _write_gif(frames, len(grids), out, fps)
    else:
        _write_mp4(frames, size, out, fps)
    return out


def _read_frame(path: Path, step: int, size: tuple[int, int], font_size: int) -> Image.Image:
    """The grid with "step N" written under it (so no two frames are alike, and Pillow keeps every one)."""
    with Image.open(path) as image:
        grid = image.convert("RGB")
    if grid.size != size:
        grid = grid.resize(size, Image.Resampling.NEAREST)
    frame = Image.new("RGB", (size[0], size[1] + font_size + 8), "white")
    frame.paste(grid, (0, 0))
    draw = ImageDraw.Draw(frame)
    text = f"step {step}"
    font = _font(font_size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((size[0] - (right - left)) / 2 - left, size[1] + 4 + (font_size - (bottom - top)) / 2 - top), text,
              fill=(40, 40, 40), font=font)
    return frame


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()  # a small bitmap font


def _write_gif(frames: Iterator[Image.Image], count: int, out: Path, fps: int) -> None:
    frame_ms = round(1000 / fps)
    durations = [frame_ms] * (count - 1) + [frame_ms * LAST_FRAME_HOLD]
    # Pillow gives each frame its own palette, so early noisy grids do not spoil the colours of later ones.
    first = next(frames)
    first.save(out, save_all=True, append_images=frames, duration=durations, loop=0, disposal=1)


def _write_mp4(frames: Iterator[Image.Image], size: tuple[int, int], out: Path, fps: int) -> None:
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio writes .mp4 with)
    except ImportError:
        raise GanforgeError(f"writing {out.name} needs imageio with ffmpeg: pip install 'imageio[ffmpeg]', "
                            "or write a .gif instead") from None
    width, height = size
    even = (width + width % 2, height + height % 2)  # H.264 in yuv420p needs even sides
    with imageio.get_writer(out, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=2) as writer:
        for frame in frames:
            writer.append_data(np.asarray(frame if frame.size == even else _pad(frame, even)))


def _pad(frame: Image.Image, size: tuple[int, int]) -> Image.Image:
    canvas = Image.new("RGB", size, "black")
    canvas.paste(frame, (0, 0))
    return canvas
