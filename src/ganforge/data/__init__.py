"""Data sources: where real samples come from, and how they are batched.

``--data`` is a built-in name or a path:

- ``digits``: scikit-learn's 1,797 handwritten digits, embedded (no download);
- ``stacked-digits``: three of those digits as the three channels, 1,000 modes (the offline twin of Stacked MNIST);
- ``ring8``, ``grid25``: 2-D Gaussian mixtures, sampled on the fly;
- ``mnist``, ``fashion-mnist``, ``cifar10``, ``celeba``: through torchvision
  (optional extra, needs a network the first time);
- a folder of images (any depth) or a ``.npy`` / ``.npz`` array file.

Image data is held as one tensor in memory and batched by indexing with a
random permutation per epoch: no per-sample Python loop. Under torchrun every
process keeps the same stream and takes its own slice of each global batch
(``RealData.shard``). A stream's state (part of a checkpoint) holds a
fingerprint of its samples, so a run resumed on changed data is noticed
(``RealData.change_since``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor

from ganforge.config.presets import DATA_SEED_OFFSET
from ganforge.config.schema import DataConfig
from ganforge.data.digits import STACKED_DIGITS_COUNT, STACKED_DIGITS_SIZE, load_digit_images, load_stacked_digits
from ganforge.data.files import load_array_file, load_image_folder, load_torchvision_dataset
from ganforge.data.mixtures import mixture_modes, sample_mixture
from ganforge.data.sharding import own_share
from ganforge.errors import DataError

IMAGE_SETS = {  # name -> natural (image size, channels)
    "digits": (28, 1),
    "mnist": (28, 1),
    "fashion-mnist": (28, 1),
    "cifar10": (32, 3),
    "celeba": (64, 3),
    "stacked-digits": (STACKED_DIGITS_SIZE, 3),  # three digits as R, G, B: 1,000 modes (Stacked MNIST's twin)
}
MIXTURES = ("ring8", "grid25")
FOLDER_DEFAULTS = (64, 3)  # image size and channels for a folder of images when not given
ARRAY_SUFFIXES = (".npy", ".npz")

__all__ = [
    "IMAGE_SETS",
    "MIXTURES",
    "MixtureData",
    "RealData",
    "TensorData",
    "builtin_names",
    "load_data",
    "mixture_modes",
    "with_absolute_path",
]


def builtin_names() -> list[str]:
    return [*IMAGE_SETS, *MIXTURES]


def builtin_kind(name: str) -> str | None:
    """"images" or "points" for a built-in data set; None for a path (known only once it is read)."""
    return "images" if name in IMAGE_SETS else "points" if name in MIXTURES else None


class RealData:
    """A stream of real batches on a device; its position is part of a checkpoint."""

    kind: str  # "images" (C, H, W) in [-1, 1] or "points" (2,)
    sample_shape: tuple[int, ...]
    labels: Tensor | None = None
    description: str
    rank: int = 0  # this process's place among world_size processes (torchrun); see shard()
    world_size: int = 1

    def shard(self, rank: int, world_size: int) -> None:
        """Make this stream one process's share of a run on ``world_size`` processes.

        Every process keeps the same stream (seed, permutation, position); each global batch holds
        batch_size x world_size samples and process ``rank`` takes slice ``rank`` of it. The shards are
        disjoint, every process takes the same number of batches, and the position counts global samples,
        so a checkpoint saved under N processes resumes under M.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not among {world_size} processes")
        self.rank, self.world_size = rank, world_size

    def next_batch(self, batch_size: int) -> Tensor:
        raise NotImplementedError

    def batches_per_epoch(self, batch_size: int) -> int | None:
        """Full batches in one pass over the data; None for data sampled on the fly."""
        return None

    def state_dict(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        raise NotImplementedError

    def change_since(self, state: dict[str, Tensor]) -> str | None:
        """How these samples differ from those a saved ``state`` was drawn from (None: the same, or not known)."""
        return None


class TensorData(RealData):
    """Samples held in one tensor (uint8 images in [0, 255], or floats in [-1, 1]); epochs of shuffled full batches."""

    def __init__(self, samples: Tensor, kind: str, seed: int, device: torch.device, description: str,
                 labels: Tensor | None = None) -> None:
        self.samples = samples.to(device)
        self.kind = kind
        self.sample_shape = tuple(samples.shape[1:])
        self.labels = labels
        self.description = description
        self.device = device
        self.generator = torch.Generator().manual_seed(seed + DATA_SEED_OFFSET)
        self.order = torch.randperm(len(samples), generator=self.generator)
        self.position = 0
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def batches_per_epoch(self, batch_size: int) -> int:
        return len(self.samples) // (batch_size * self.world_size)

    def next_batch(self, batch_size: int) -> Tensor:  # -> (B, *sample_shape) float in [-1, 1]
        return self._samples_at(self._next_index(batch_size))

    def next_labeled_batch(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """The next batch and its class labels (B,), for class-conditional training."""
        if self.labels is None:
            raise DataError(f"{self.description} has no class labels: conditional training needs labelled data "
                            "such as digits")
        index = self._next_index(batch_size)
        return self._samples_at(index), self.labels.to(self.device)[index]

    def _next_index(self, batch_size: int) -> Tensor:
        """Indices of the next full batch in this epoch's permutation (a new epoch when too few remain);
        of several processes, this one's slice of the next full global batch of batch_size x world_size."""
        global_size = batch_size * self.world_size
        if global_size > len(self.samples):
            if self.world_size == 1:
                raise DataError(
                    f"batch size {batch_size} is larger than the {len(self.samples)} samples of {self.description}: "
                    f"use --batch-size {len(self.samples)} or less"
                )
            raise DataError(
                f"batch size {batch_size} x {self.world_size} processes = {global_size} is larger than the "
                f"{len(self.samples)} samples of {self.description}: use --batch-size "
                f"{len(self.samples) // self.world_size} or less, or fewer processes"
            )
        if self.position + global_size > len(self.samples):  # drop the short last batch, start a new epoch
            self.order = torch.randperm(len(self.samples), generator=self.generator)
            self.position = 0
            self.epoch += 1
        start = self.position + self.rank * batch_size
        index = self.order[start : start + batch_size].to(self.device, non_blocking=True)
        self.position += global_size
        return index

    def _samples_at(self, index: Tensor) -> Tensor:
        batch = self.samples[index]
        if batch.dtype == torch.uint8:
            return batch.float().div_(127.5).sub_(1.0)
        return batch.float()

    @cached_property
    def fingerprint(self) -> dict[str, Tensor]:
        """What identifies the samples in a checkpoint: their count, shape, and a SHA-256 of their bytes and
        labels (of the loaded tensor, so a folder's files renamed or touched, but not changed, still match)."""
        digest = hashlib.sha256()
        for tensor in (self.samples, self.labels):
            if tensor is not None:
                digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).flatten().numpy())
        return {"count": torch.tensor(len(self.samples)), "sample_shape": torch.tensor(self.sample_shape),
                "digest": torch.frombuffer(bytearray(digest.digest()), dtype=torch.uint8)}

    def change_since(self, state: dict[str, Tensor]) -> str | None:
        """How these samples differ from the saved stream's (a checkpoint from before fingerprints: its count)."""
        noun = "points" if self.kind == "points" else "images"
        count, saved_count = len(self.samples), len(state["order"])
        if count != saved_count:
            return f"the data has {count:,} {noun}, the run trained on {saved_count:,}"
        if "sample_shape" in state and tuple(state["sample_shape"].tolist()) != self.sample_shape:
            return (f"the data's {noun} have shape {_shape(self.sample_shape)}, the run trained on "
                    f"{_shape(state['sample_shape'].tolist())}")
        if "digest" in state and not torch.equal(state["digest"], self.fingerprint["digest"]):
            return f"the data's {count:,} {noun} are not the {count:,} the run trained on (contents or order differ)"
        return None

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "rng": self.generator.get_state(),
            "order": self.order,
            "position": torch.tensor(self.position),
            "epoch": torch.tensor(self.epoch),
            **self.fingerprint,
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Continue the saved stream; on changed samples (see change_since) its random stream goes on with a new
        epoch's permutation of these samples, since the saved order indexes the old ones."""
        self.generator.set_state(state["rng"])
        self.epoch = int(state["epoch"])
        if self.change_since(state) is not None:
            self.order = torch.randperm(len(self.samples), generator=self.generator)
            self.position = 0
            self.epoch += 1
            return
        self.order = state["order"].clone()
        self.position = int(state["position"])


class MixtureData(RealData):
    """A named 2-D Gaussian mixture, sampled fresh for every batch."""

    kind = "points"
    sample_shape = (2,)

    def __init__(self, name: str, seed: int, device: torch.device) -> None:
        self.name = name
        self.modes, self.std = mixture_modes(name)
        self.description = f"{name} ({len(self.modes)} Gaussian modes, std {self.std})"
        self.device = device
        self.generator = torch.Generator().manual_seed(seed + DATA_SEED_OFFSET)

    def next_batch(self, batch_size: int) -> Tensor:  # -> (B, 2)
        # One global batch from the stream every process shares; this process keeps its own slice.
        points = sample_mixture(self.modes, self.std, batch_size * self.world_size, self.generator)
        return own_share(points, self.rank, batch_size).to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, Tensor]:
        return {"rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["rng"])


def data_cache(config: DataConfig) -> Path:
    """Where downloaded data sets and trained helpers are kept."""
    if config.data_root:
        return Path(config.data_root).expanduser()
    return Path(os.environ.get("GANFORGE_CACHE", Path.home() / ".cache" / "ganforge"))


def with_absolute_path(config: DataConfig) -> DataConfig:
    """``config`` with a relative data path (or data root) made absolute, so the run's data is found from any
    working directory; the path as given is kept in ``data_as_given`` for display. Built-in names stay names."""
    absolute = {key: os.path.abspath(Path(value).expanduser()) for key in ("data", "data_root")
                if (value := getattr(config, key)) and not (key == "data" and value in builtin_names())}
    if absolute.get("data", config.data) != config.data and config.data_as_given is None:
        absolute["data_as_given"] = config.data
    return dataclasses.replace(config, **absolute)


def load_data(config: DataConfig, image_size: int | None, channels: int | None, seed: int,
              device: torch.device) -> RealData:
    """Open a data source at the model's image size and channels (None = the data's natural ones)."""
    source = config.data
    if source in MIXTURES:
        return MixtureData(source, seed, device)
    if source in IMAGE_SETS:
        natural_size, natural_channels = IMAGE_SETS[source]
        size, chans = image_size or natural_size, channels or natural_channels
        if source == "digits":
            images, labels = load_digit_images(size, chans)
        elif source == "stacked-digits":
            if chans != 3:
                raise DataError(f"stacked-digits has 3 channels (one digit each), not {chans}: use --channels 3")
            images, labels = load_stacked_digits(size, STACKED_DIGITS_COUNT, seed=0)  # one fixed data set, as in the papers
        else:
            images, labels = load_torchvision_dataset(source, data_cache(config), size, chans), None
        return TensorData(images, "images", seed, device, f"{source} ({len(images):,} images)", labels)
    path = _existing_path(source)
    if path.is_dir():
        size, chans = image_size or FOLDER_DEFAULTS[0], channels or FOLDER_DEFAULTS[1]
        images = load_image_folder(path, size, chans)
        return TensorData(images, "images", seed, device, f"{path} ({len(images):,} images)")
    if path.suffix.lower() not in ARRAY_SUFFIXES:
        raise DataError(f"data file {path} is not a .npy or .npz array: pass an array file, or the folder of images")
    samples = load_array_file(path, image_size, channels)
    kind = "points" if samples.ndim == 2 else "images"
    return TensorData(samples, kind, seed, device, f"{path} ({len(samples):,} {kind})")


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _existing_path(source: str) -> Path:
    path = Path(source).expanduser()
    try:
        exists = path.exists()
    except OSError as error:  # e.g. a name longer than the file system allows
        raise DataError(f"data source {source[:80]!r} is not a usable path ({error.strerror}): check the path") from None
    if not exists:
        raise DataError(
            f"data source '{source}' is neither a built-in ({', '.join(builtin_names())}) nor an existing path: "
            "check the spelling or the path"
        )
    return path
