"""Writing samples where the user asked: one picture, a raw array, or a folder of image files.

Arrays and folders are written a batch at a time, so any number of samples that fits on the disk works;
the room needed is checked before the first sample is drawn.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ganforge.errors import GanforgeError
from ganforge.runs.pictures import is_sample_image_name, save_image_files, save_samples_picture
from ganforge.runs.space import require_disk, require_memory

PNG_BYTES_PER_FILE = 200  # a PNG's header, chunks and file-system slack on top of its pixels


def write_samples(samples: Tensor, out: Path, modes: Tensor | None = None, columns: int | None = None,
                  overwrite: bool = False) -> Path:
    """Write samples by the form of ``out``: ``.png`` one grid (or scatter plot), ``.npy`` the raw array,
    a folder (an existing one, or a path ending in ``/`` or without suffix) one PNG per image."""
    return write_sample_batches([samples], len(samples), tuple(samples.shape[1:]), out, modes, columns, overwrite)


def write_sample_batches(batches: Iterable[Tensor], count: int, sample_shape: tuple[int, ...], out: Path,
                         modes: Tensor | None = None, columns: int | None = None, overwrite: bool = False) -> Path:
    """:func:`write_samples` for ``count`` samples of ``sample_shape`` that arrive in batches.

    A folder that already holds files is refused unless ``overwrite``, which first deletes the sample images
    ganforge wrote there (a folder that mixes two sessions' samples would mislead a later folder FID).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    values = count * math.prod(sample_shape)
    if suffix == ".npy":
        require_disk(out.parent, values * 4 + 128, f"{count:,} samples as {out}",
                     "draw fewer with -n, or write them to a disk with more room")
        return _write_array(batches, count, sample_shape, out)
    if suffix == ".png":
        require_memory(values * 9, f"a picture of {count:,} samples",  # float samples, their bytes, the canvas
                       "draw fewer with -n, or write them as samples.npy or a folder/")
        return save_samples_picture(torch.cat(list(batches)), out, modes, columns)
    if suffix == "" or out.is_dir():
        if len(sample_shape) == 1:
            raise GanforgeError(f"2-D points cannot be written as image files in {out}/: use --out points.npy or plot.png")
        _prepare_folder(out, overwrite)
        require_disk(out, values + count * PNG_BYTES_PER_FILE, f"{count:,} sample images in {out}/",
                     "draw fewer with -n, or write them to a disk with more room")
        written = 0
        for batch in batches:
            save_image_files(batch, out, first_index=written, digits=len(str(count - 1)))
            written += len(batch)
        return out
    raise GanforgeError(f"cannot write samples to {out}: use a .png (grid), .npy (array) or a folder path")


def _write_array(batches: Iterable[Tensor], count: int, sample_shape: tuple[int, ...], out: Path) -> Path:
    """Fill a memory-mapped ``.npy`` beside ``out`` and rename it into place once it is complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32, shape=(count, *sample_shape))
        written = 0
        for batch in batches:
            array[written : written + len(batch)] = batch.numpy()
            written += len(batch)
        array.flush()
        del array
        os.replace(temporary, out)
    except BaseException:  # a full disk or a Ctrl-C leaves no half-written array behind
        temporary.unlink(missing_ok=True)
        raise
    return out


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    """Refuse a folder that holds files, or with ``overwrite`` empty it of ganforge's sample images."""
    if folder.exists() and not folder.is_dir():
        raise GanforgeError(f"{folder} is a file, not a folder: choose a folder path for --out")
    present = sorted(folder.iterdir()) if folder.is_dir() else []
    if not present:
        return
    ours = [path for path in present if path.is_file() and is_sample_image_name(path.name)]
    if not overwrite:
        raise GanforgeError(
            f"{folder} already holds {len(present)} files ({len(ours)} sample images): new samples would mix with "
            "them; choose an empty folder, or pass --overwrite to delete ganforge's sample images there first")
    foreign = [path.name for path in present if path not in ours]
    if foreign:
        raise GanforgeError(f"{folder} holds files ganforge did not write ({', '.join(foreign[:3])}"
                            f"{', ...' if len(foreign) > 3 else ''}), so --overwrite leaves it alone: "
                            "choose an empty folder")
    for path in ours:
        path.unlink()

