"""Writing samples: image grids, one PNG per sample, and scatter plots of 2-D points (Pillow only)."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

GRID_PADDING = 2  # pixels between grid cells
PLOT_SIZE = 512  # pixels per side of a 2-D scatter plot
PLOT_MARGIN = 0.15  # fraction of the data range added around a scatter plot


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8."""
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy()


def _pil(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def image_grid(images: Tensor, columns: int | None = None) -> Image.Image:
    """Tile (N, C, H, W) images in [-1, 1] into one picture, ``columns`` wide (default: square)."""
    pixels = to_uint8(images)
    count, height, width, channels = pixels.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    pad = GRID_PADDING
    canvas = np.zeros((rows * (height + pad) + pad, columns * (width + pad) + pad, channels), dtype=np.uint8)
    for index in range(count):
        top = pad + (index // columns) * (height + pad)
        left = pad + (index % columns) * (width + pad)
        canvas[top : top + height, left : left + width] = pixels[index]
    return _pil(canvas)


def save_image_files(images: Tensor, folder: Path, threads: int = 4, first_index: int = 0,
                     digits: int = 6) -> list[Path]:
    """One PNG per image (``000000.png``, ...; numbered from ``first_index``), encoded in parallel threads."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = to_uint8(images)
    digits = max(6, digits, len(str(first_index + len(pixels) - 1)))
    paths = [folder / f"{first_index + index:0{digits}d}.png" for index in range(len(pixels))]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: _pil(item[0]).save(item[1]), zip(pixels, paths)))
    return paths


def is_sample_image_name(name: str) -> bool:
    """Whether a file name is one :func:`save_image_files` writes (digits, ``.png``)."""
    return name.endswith(".png") and name[:-4].isdigit() and len(name) >= 10


def scatter_plot(points: Tensor, modes: Tensor | None = None, size: int = PLOT_SIZE) -> Image.Image:
    """Generated 2-D points (blue) over the real modes (red crosses), on a white square."""
    points = points.detach().float().cpu()
    reference = modes.float() if modes is not None else points
    low = reference.min(dim=0).values
    high = reference.max(dim=0).values
    span = float((high - low).max().clamp(min=1e-6)) * (1 + 2 * PLOT_MARGIN)
    centre = (low + high) / 2

    def to_pixel(xy: Tensor) -> tuple[float, float]:
        x, y = ((xy - centre) / span + 0.5).tolist()
        return x * size, (1 - y) * size

    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    for point in points:
        x, y = to_pixel(point)
        draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=(31, 119, 180))
    if modes is not None:
        for mode in modes:
            x, y = to_pixel(mode)
            draw.line((x - 6, y, x + 6, y), fill=(214, 39, 40), width=2)
            draw.line((x, y - 6, x, y + 6), fill=(214, 39, 40), width=2)
    return image


def save_samples_picture(samples: Tensor, path: Path, modes: Tensor | None = None, columns: int | None = None) -> Path:
    """A grid for images (N, C, H, W), ``columns`` wide (default: square); a scatter plot for points (N, 2)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = scatter_plot(samples, modes) if samples.ndim == 2 else image_grid(samples, columns)
    picture.save(path)
    return path
