"""Data on disk: folders of images, .npy/.npz arrays, and torchvision data sets.

Every loader returns the whole data set as one tensor (N, C, H, W): uint8 in
0..255 for images, or float32 in [-1, 1] for float arrays (what `ganforge
sample --out x.npy` writes); `load_array_file` also returns (N, 2) float32
points. Float images in [0, 1] (a .npy, a float TIFF) are scaled with a
warning, never read as near-black. Each loader logs one info line of what it
gave. Bad input raises `DataError` with one line that names the fix.
"""

import logging
import os
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ganforge.errors import DataError

logger = logging.getLogger("ganforge")

_IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
_TORCHVISION_DATASETS = ("mnist", "fashion-mnist", "cifar10", "celeba")
_DECODE_THREADS = min(8, os.cpu_count() or 1)  # Pillow releases the GIL while decoding and resizing
_RESIZE_CHUNK_IMAGES = 1024  # float copies are 4x uint8, so arrays are converted a chunk at a time
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601, the same weights Pillow uses for "RGB" -> "L"
_MAX_NAMED_FILES = 3
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"  # an .npz is a zip archive
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"  # a zip archive with no members: what np.savez(path) writes
_FLOAT_IMAGE_RANGES = "[0, 1], [-1, 1] or 0..255"  # what a float ("F") image's pixels may span

# What a broken image file raises while it is opened, decoded or converted
# (truncated data and unknown formats raise OSError; a TIFF whose tags were
# corrupted can hand Pillow's loader a fraction where it needs an integer: TypeError).
_UNREADABLE_IMAGE_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    EOFError,
    SyntaxError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def load_image_folder(path: Path, image_size: int, channels: int) -> torch.Tensor:
    """Load every image under `path` (any depth, sorted by path) as uint8 (N, C, S, S).

    Each image is resized so its shorter side is `image_size`, then centre-cropped
    to a square. Transparent pixels are composited on white, as an image viewer
    shows them on a page. Unreadable files are skipped with one warning.
    """
    _check_image_size_and_channels(image_size, channels)
    path = Path(path)
    if not path.exists():
        raise DataError(f"data folder {path} does not exist: check the path, or pass a .npy/.npz file")
    if not path.is_dir():
        raise DataError(f"{path} is a file, not a folder of images: pass the folder that holds the images")
    files = sorted(file for file in path.rglob("*") if file.suffix.lower() in _IMAGE_EXTENSIONS and file.is_file())
    if not files:
        raise DataError(
            f"no image files found in {path} (looked recursively for {', '.join(_IMAGE_EXTENSIONS)}, any case)"
        )

    decode = partial(_decode_image, image_size=image_size, channels=channels)
    # Over-large images warn before they raise; the warning must count as unreadable too.
    # The filter is set here, around the pool, because warning filters are process-wide.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=_DECODE_THREADS) as pool:
            decoded = list(pool.map(decode, files))

    unreadable = [file for file, result in zip(files, decoded) if result.pixels is None and not result.float_range]
    beyond = [(file, result.float_range) for file, result in zip(files, decoded) if result.float_range]
    if len(unreadable) + len(beyond) == len(files):
        if not beyond:
            problem, fix = "could be read", "check they are valid images"
        else:
            problem = f"{'could be read or ' if unreadable else ''}has float pixels in {_FLOAT_IMAGE_RANGES}"
            fix = "check they are valid images, rescale float images, or save them as 8-bit images"
        raise DataError(f"none of the {len(files)} image files in {path} {problem} ({_named(path, files)}): {fix}")
    if unreadable:
        logger.warning("skipped %d of %d image files in %s that could not be read: %s",
                       len(unreadable), len(files), path, _named(path, unreadable))
    if beyond:
        logger.warning("skipped %d of %d image files in %s whose float pixels lie outside %s: %s",
                       len(beyond), len(files), path, _FLOAT_IMAGE_RANGES,
                       _named(path, [file for file, _ in beyond], [span for _, span in beyond]))
    scaled = [file for file, result in zip(files, decoded) if result.scaled]
    if scaled:
        logger.warning("read float pixels in [0, 1] as brightness 0..255 (x 255) in %d of %d image files in %s: %s",
                       len(scaled), len(files), path, _named(path, scaled))
    pixels = np.stack([result.pixels for result in decoded if result.pixels is not None])  # (N, S, S, C)
    skipped = f" ({len(files) - len(pixels):,} of {len(files):,} files skipped)" if len(pixels) < len(files) else ""
    logger.info("read %s images from %s%s", f"{len(pixels):,}", path, skipped)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


def load_array_file(path: Path, image_size: int | None, channels: int | None) -> torch.Tensor:
    """Load images or 2-D points from a .npy/.npz file, refusing pickled objects.

    Images come back as (N, C, H, W): uint8 stays uint8, integers in 0..255 become
    uint8, floats in [-1, 1] come back as float32, and floats that all lie in
    [0, 1] are scaled to [-1, 1] with a warning (other ranges are refused). `image_size` and
    `channels` resize and convert them (None keeps the array's own); an alpha
    channel is dropped. Non-square images are refused rather than cropped, so no
    pixels are lost silently. An (N, 2) array is returned as float32 points and
    ignores `image_size` and `channels`.
    """
    _check_image_size_and_channels(image_size, channels)
    path = Path(path)
    if path.suffix.lower() not in (".npy", ".npz"):
        raise DataError(
            f"{path} is not a .npy or .npz file: save arrays with np.save/np.savez, or pass a folder of images"
        )
    if not path.is_file():
        raise DataError(f"array file {path} does not exist: check the path")
    array = _read_array(path)

    if array.dtype.kind not in "uif":
        raise DataError(
            f"{path} holds {array.dtype} values: save images as uint8 in 0..255 or floats in [-1, 1], "
            "points as float (N, 2)"
        )
    if array.size == 0:
        raise DataError(f"{path} holds an empty array of shape {array.shape}: it needs at least one sample")
    if array.dtype.kind == "f":
        _check_finite(array, path)
    if array.ndim == 2 and array.shape[1] == 2:
        with np.errstate(over="ignore"):  # checked just below
            points = array.astype(np.float32)
        if not np.isfinite(points).all():
            raise DataError(f"{path} holds points beyond float32's range (about 3.4e38): rescale them")
        logger.info("read %s points from %s", f"{len(points):,}", path)
        return torch.from_numpy(points)

    images = torch.from_numpy(_to_image_dtype(array, path))
    images = _to_channels_first(images, path)
    logger.info("read %s images from %s", f"{len(images):,}", path)
    return _convert_and_resize(images, image_size, channels)


def load_torchvision_dataset(name: str, root: Path, image_size: int, channels: int) -> torch.Tensor:
    """Download into `root` and load a torchvision data set as uint8 (N, C, S, S).

    MNIST, Fashion-MNIST and CIFAR-10 give their training split, resized in batches;
    CelebA gives all its aligned face images, resized and centre-cropped like a folder.
    torchvision stays optional: it is imported here, and its absence is a DataError.
    """
    _check_image_size_and_channels(image_size, channels)
    if name not in _TORCHVISION_DATASETS:
        raise DataError(f"unknown torchvision data set {name!r} (use one of {', '.join(_TORCHVISION_DATASETS)})")
    try:
        from torchvision import datasets
    except ImportError:
        raise DataError(
            f"the {name!r} data source needs torchvision: pip install 'ganforge[torchvision]' "
            "(or train on a folder of images with --data PATH)"
        ) from None

    root = Path(root)
    dataset_class = {
        "mnist": partial(datasets.MNIST, train=True),
        "fashion-mnist": partial(datasets.FashionMNIST, train=True),
        "cifar10": partial(datasets.CIFAR10, train=True),
        "celeba": partial(datasets.CelebA, split="all"),
    }[name]
    try:
        dataset = dataset_class(str(root), download=True)
    except (OSError, RuntimeError) as error:  # torchvision reports failed mirrors as RuntimeError
        raise DataError(
            f"could not download the {name!r} data set to {root} ({error}): the machine may be offline; "
            "place the files there yourself, or train on a folder of images or a .npy/.npz array instead"
        ) from None

    if name == "celeba":
        return load_image_folder(Path(dataset.root, dataset.base_folder, "img_align_celeba"), image_size, channels)
    images = torch.as_tensor(dataset.data)  # MNIST: (N, H, W) tensor; CIFAR10: (N, H, W, 3) ndarray
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    return _convert_and_resize(images, image_size, channels)


def _check_image_size_and_channels(image_size: int | None, channels: int | None) -> None:
    """Reject sizes and channel counts that no model can use (None: keep the data's own)."""
    if image_size is not None and image_size < 1:
        raise DataError(f"image size {image_size} is invalid: use a positive number of pixels, e.g. 64")
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels {channels} is not supported: use 1 for grayscale or 3 for RGB")


@dataclass(frozen=True)
class _Decoded:
    """One image file as the folder loader found it."""

    pixels: np.ndarray | None  # uint8 (S, S, C); None: skipped
    scaled: bool = False  # float pixels in [0, 1], read as brightness 0..255
    float_range: str | None = None  # skipped for float pixels outside every range we read, e.g. "-3 to 700"


class _FloatRangeError(Exception):
    """A float ("F") image whose pixels lie outside every range ganforge knows how to read."""


def _named(path: Path, files: list[Path], details: list[str] | None = None) -> str:
    """The first few files relative to ``path`` (each with its detail, if any), and how many more."""
    shown = [str(file.relative_to(path)) + (f" ({details[index]})" if details else "")
             for index, file in enumerate(files[:_MAX_NAMED_FILES])]
    more = f" and {len(files) - _MAX_NAMED_FILES} more" if len(files) > _MAX_NAMED_FILES else ""
    return ", ".join(shown) + more


def _decode_image(file: Path, image_size: int, channels: int) -> _Decoded:
    """Decode one file to uint8 (S, S, C), or say why it was skipped."""
    try:
        with Image.open(file) as image:  # an animated image opens at its first frame
            image.draft(None, (image_size, image_size))  # JPEG: decode at a reduced scale, still >= image_size
            image = ImageOps.exif_transpose(image)
            scaled = False
            if image.mode == "F":
                image, scaled = _float_to_grey(image)
            image = _fit_square(_to_mode(image, "RGB" if channels == 3 else "L"), image_size)
            return _Decoded(np.asarray(image).reshape(image_size, image_size, channels), scaled=scaled)
    except _FloatRangeError as error:
        return _Decoded(None, float_range=str(error))
    except _UNREADABLE_IMAGE_ERRORS:
        return _Decoded(None)


def _float_to_grey(image: Image.Image) -> tuple[Image.Image, bool]:
    """An 8-bit greyscale copy of a float ("F") image, and whether its pixels were in [0, 1] and scaled.

    Pillow's own conversion clips floats to 0..255, so pixels in [0, 1] would come out black. Pixels in [0, 1]
    are scaled by 255, pixels in [-1, 1] (some negative) mapped to 0..255, pixels in 0..255 kept; any other
    range raises _FloatRangeError, and NaN or infinity ValueError (an unreadable image).
    """
    pixels = np.asarray(image, dtype=np.float64)
    if not np.isfinite(pixels).all():
        raise ValueError("NaN or infinite pixels")
    low, high = float(pixels.min()), float(pixels.max())
    in_unit_interval = low >= 0 and high <= 1
    if in_unit_interval:
        pixels = pixels * 255
    elif -1 <= low and high <= 1:
        pixels = (pixels + 1) * 127.5
    elif not (0 <= low and high <= 255):
        raise _FloatRangeError(f"{low:.4g} to {high:.4g}")
    return Image.fromarray(pixels.round().clip(0, 255).astype(np.uint8)), in_unit_interval


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Convert any Pillow mode to "RGB" or "L", compositing transparency on white."""
    if image.mode == "I" or image.mode.startswith("I;16"):
        # 16-bit greyscale: Pillow's own conversion clips at 255 instead of scaling.
        scaled = np.clip(np.asarray(image, dtype=np.float32) / 257, 0, 255).round().astype(np.uint8)
        image = Image.fromarray(scaled)
    if image.mode in ("RGBA", "RGBa", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image.convert(mode)


def _fit_square(image: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is `size`, keeping the centred square."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)
    return image.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)


def _read_array(path: Path) -> np.ndarray:
    """Read a .npy array, or the image array of a .npz archive, without unpickling."""
    with path.open("rb") as file:
        header = file.read(len(_NPY_MAGIC))
    if not header:
        raise DataError(f"{path} is an empty file (0 bytes): save the images into it with np.save or np.savez")
    if header.startswith(_EMPTY_ZIP_MAGIC):
        raise DataError(f"{path} holds no arrays (an empty .npz): save the images with np.savez(path, x=images)")
    # Checked here so that numpy never treats a stray file as a pickle.
    if not header.startswith((_NPY_MAGIC, _ZIP_MAGIC)):
        raise DataError(f"{path} is not a NumPy .npy/.npz file (wrong header): save arrays with np.save or np.savez")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return loaded
        with loaded:
            key = _npz_key(loaded.files, path)
            array = loaded[key]
        if not isinstance(array, np.ndarray):  # NpzFile returns the raw bytes of a member that is not a .npy
            raise DataError(f"{path} holds {key!r}, which is not a NumPy array: save the arrays with np.savez")
        return array
    except MemoryError as error:  # a corrupt header can declare an array of terabytes; numpy fails to allocate it
        raise DataError(
            f"could not load {path} ({error}): its header may be corrupt (re-save it with np.save or np.savez), "
            "or the array is larger than this machine's memory"
        ) from None
    except (ValueError, OSError, zipfile.BadZipFile, zlib.error) as error:
        if "pickle" in str(error):  # an object array, which only unpickling could load
            raise DataError(
                f"{path} holds pickled Python objects, which ganforge never loads: "
                "save a numeric array (uint8 or float)"
            ) from None
        raise DataError(
            f"could not read {path} as a .npy/.npz array ({error}): re-save it with np.save or np.savez"
        ) from None


def _npz_key(keys: list[str], path: Path) -> str:
    """Pick the images in an .npz: key "x", else "images", else its only array."""
    for key in ("x", "images"):
        if key in keys:
            return key
    if len(keys) == 1:
        return keys[0]
    raise DataError(f"{path} holds arrays {sorted(keys)}: name the images 'x' or 'images', or save only one array")


def _check_finite(array: np.ndarray, path: Path) -> None:
    """Reject NaN and infinity, which would poison every training step."""
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if bad:
        raise DataError(f"{path} holds {bad} NaN or infinite values: remove or replace them before training")


def _to_image_dtype(array: np.ndarray, path: Path) -> np.ndarray:
    """Return uint8 for 0..255 integers, float32 for floats in [-1, 1]; floats all in [0, 1] are scaled to
    [-1, 1] with a warning (the usual range of float images, which read as is would look dark and dull)."""
    low, high = array.min(), array.max()
    if array.dtype.kind == "f":
        if low < -1 or high > 1:
            raise DataError(
                f"{path} holds floats from {low:.4g} to {high:.4g}: "
                "scale them to [-1, 1] (e.g. x / 127.5 - 1) or save as uint8 in 0..255"
            )
        if low >= 0:
            logger.warning("%s holds floats in [0, 1] (from %.4g to %.4g): read them as images in [0, 1] and "
                           "scaled them to [-1, 1] (x * 2 - 1); save images in [-1, 1] to skip this", path, low, high)
            scaled = array.astype(np.float32)  # in place below, so a 0-d array stays an array
            scaled *= 2
            scaled -= 1
            return scaled
        return array.astype(np.float32)
    if low < 0 or high > 255:
        raise DataError(
            f"{path} holds {array.dtype} values from {low} to {high}: integer images must lie in 0..255 (save as uint8)"
        )
    return array.astype(np.uint8)


def _to_channels_first(images: torch.Tensor, path: Path) -> torch.Tensor:
    """Reshape (N, H, W), (N, H, W, C) or (N, C, H, W) to square (N, C, H, W).

    A 4-D array is channels-first when axis 1 is 1 or 3 and the last two axes
    form a square; otherwise it is channels-last when its last axis is 1, 3 or 4.
    """
    shape = tuple(images.shape)
    channels_first = images.ndim == 4 and shape[1] in (1, 3)
    channels_last = images.ndim == 4 and shape[3] in (1, 3, 4)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    elif channels_last and not (channels_first and shape[2] == shape[3]):
        images = images.permute(0, 3, 1, 2)
    elif not channels_first:
        raise DataError(
            f"{path} has shape {shape}: expected images as (N, H, W), (N, H, W, C) or (N, C, H, W), or points as (N, 2)"
        )
    height, width = images.shape[2:]
    if height != width:
        raise DataError(f"{path} holds {height}x{width} (HxW) images: resize or crop them to square first")
    return images


def _convert_and_resize(images: torch.Tensor, image_size: int | None, channels: int | None) -> torch.Tensor:
    """Drop alpha, then convert channels and resize (N, C, H, W) images, keeping their dtype.

    None keeps the images' own size or channels. Resizing is bilinear with
    antialiasing, in float; uint8 results are rounded and clamped.
    """
    images = images[:, :3]
    image_size = images.shape[-1] if image_size is None else image_size
    channels = images.shape[1] if channels is None else channels
    if image_size == images.shape[-1] and channels == images.shape[1]:
        return images.contiguous()

    low, high = (0.0, 255.0) if images.dtype == torch.uint8 else (-1.0, 1.0)
    converted = torch.empty((len(images), channels, image_size, image_size), dtype=images.dtype)
    luma = torch.tensor(_LUMA_WEIGHTS).view(1, 3, 1, 1)
    for start in range(0, len(images), _RESIZE_CHUNK_IMAGES):
        chunk = images[start : start + _RESIZE_CHUNK_IMAGES].float()
        if chunk.shape[1] == 1 and channels == 3:
            chunk = chunk.expand(-1, 3, -1, -1)
        elif chunk.shape[1] == 3 and channels == 1:
            chunk = (chunk * luma).sum(dim=1, keepdim=True)
        if chunk.shape[-1] != image_size:
            chunk = F.interpolate(
                chunk, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
            )
        chunk = chunk.clamp(low, high)
        converted[start : start + len(chunk)] = chunk.round() if images.dtype == torch.uint8 else chunk
    return converted
