"""Writing samples where the user asked: one picture, a raw array, or a folder of image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor

from ganforge.errors import GanforgeError
from ganforge.runs.pictures import save_image_files, save_samples_picture


def write_samples(samples: Tensor, out: Path, modes: Tensor | None = None, columns: int | None = None) -> Path:
    """Write samples by the form of ``out``: ``.png`` one grid (or scatter plot), ``.npy`` the raw array,
    a folder (an existing one, or a path ending in ``/`` or without suffix) one PNG per image."""
    suffix = out.suffix.lower()
    if suffix == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, samples.numpy())
        return out
    if suffix == ".png":
        return save_samples_picture(samples, out, modes, columns)
    if suffix == "" or out.is_dir():
        if samples.ndim == 2:
            raise GanforgeError(f"2-D points cannot be written as image files in {out}/: use --out points.npy or plot.png")
        save_image_files(samples, out)
        return out
    raise GanforgeError(f"cannot write samples to {out}: use a .png (grid), .npy (array) or a folder path")
