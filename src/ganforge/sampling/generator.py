"""A trained generator loaded from a checkpoint: samples, one class of a conditional run, latent walks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from ganforge.algorithm.labels import balanced_labels
from ganforge.config.resolve import learns_points
from ganforge.config.schema import RunConfig
from ganforge.data import MIXTURES, mixture_modes
from ganforge.errors import GanforgeError
from ganforge.models import Generator, build_models
from ganforge.runs.checkpoint import EMA_SECTION, read_checkpoint
from ganforge.train.placement import place_network, resolve_device

SAMPLE_BATCH = 1024  # samples generated per forward pass


class TrainedGenerator:
    """A generator restored from a checkpoint, in eval mode, ready to sample."""

    def __init__(self, generator: Generator, config: RunConfig, step: int, device: torch.device,
                 checkpoint: Path | None = None) -> None:
        self.generator = generator.to(device).eval()
        self.config = config
        self.step = step
        self.device = device
        self.checkpoint = checkpoint  # the checkpoint folder it was loaded from, None for a generator in training

    @classmethod
    def load(cls, path: Path | str, device: str = "auto") -> TrainedGenerator:
        """From a run folder (its latest checkpoint) or one checkpoint folder; G's moving average where the run
        kept one (--ema)."""
        checkpoint = read_checkpoint(Path(path))
        generator, discriminator = build_models(checkpoint.config.model)
        checkpoint.restore_models(generator, discriminator)
        average = checkpoint.section(EMA_SECTION)
        if average:
            average.pop("n_averaged", None)
            generator.load_state_dict(average)
        placed = resolve_device(device)
        place_network(generator, checkpoint.config, placed)  # the layout and kernels it trained with
        return cls(generator, checkpoint.config, checkpoint.step, placed, checkpoint.path)

    @property
    def is_points(self) -> bool:
        return learns_points(self.config)

    @property
    def num_classes(self) -> int | None:
        """The classes of a conditional generator, None for an unconditional one."""
        return self.generator.num_classes

    @torch.no_grad()
    def generate(self, latents: Tensor, labels: Tensor | None = None) -> Tensor:
        """G(z) for (N, z_dim) latents, in batches; returns a CPU tensor. A conditional generator makes
        ``labels`` (N,), or every class in turn when they are not given."""
        if self.num_classes is not None and labels is None:
            labels = balanced_labels(len(latents), self.num_classes)
        latent_chunks = latents.split(SAMPLE_BATCH)
        label_chunks = labels.split(SAMPLE_BATCH) if labels is not None else [None] * len(latent_chunks)
        pieces = [self.generator(chunk.to(self.device), None if classes is None else classes.to(self.device)).float().cpu()
                  for chunk, classes in zip(latent_chunks, label_chunks)]
        return torch.cat(pieces)

    def latents(self, count: int, seed: int = 0) -> Tensor:
        return torch.randn(count, self.generator.z_dim, generator=torch.Generator().manual_seed(seed))

    def sample(self, count: int, seed: int = 0, class_index: int | None = None) -> Tensor:
        """``count`` samples: images (N, C, H, W) in [-1, 1] or points (N, 2); the same seed gives the same samples.

        A conditional generator makes class ``class_index``, or every class in turn when it is None.
        """
        return torch.cat(list(self.sample_batches(count, seed, class_index)))

    def sample_batches(self, count: int, seed: int = 0, class_index: int | None = None) -> Iterator[Tensor]:
        """The samples of :meth:`sample`, the same ones, a batch at a time: for more samples than fit in memory."""
        if count < 1:
            raise GanforgeError(f"the number of samples must be at least 1, got {count}")
        if class_index is not None:
            if self.num_classes is None:
                raise GanforgeError("this run's generator is not class-conditional, so --class has no meaning: "
                                    "train with --conditional, or leave out --class")
            if not 0 <= class_index < self.num_classes:
                raise GanforgeError(f"class {class_index} does not exist: this generator makes classes "
                                    f"0 to {self.num_classes - 1}")
        noise = torch.Generator().manual_seed(seed)  # drawn a batch at a time: the same numbers as all at once
        for start in range(0, count, SAMPLE_BATCH):
            size = min(SAMPLE_BATCH, count - start)
            latents = torch.randn(size, self.generator.z_dim, generator=noise)
            if class_index is not None:
                labels = torch.full((size,), class_index, dtype=torch.long)
            elif self.num_classes is not None:  # every class in turn, continuing across batches
                labels = torch.arange(start, start + size) % self.num_classes
            else:
                labels = None
            yield self.generate(latents, labels)

    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: (C, H, W) for images, (2,) for points."""
        model = self.config.model
        return (2,) if self.is_points else (model.channels, model.image_size, model.image_size)

    def interpolate(self, rows: int = 8, steps: int = 10, seed: int = 0) -> Tensor:
        """``rows`` walks of ``steps`` images each between random latents (spherical interpolation)."""
        if self.is_points:
            raise GanforgeError("interpolate draws image grids, and this run generates 2-D points: use 'ganforge sample'")
        if rows < 1 or steps < 2:
            raise GanforgeError(f"interpolate needs at least 1 row and 2 steps, got {rows} rows and {steps} steps")
        start, end = self.latents(2 * rows, seed).chunk(2)
        weights = torch.linspace(0, 1, steps)
        walks = torch.stack([slerp(start, end, float(w)) for w in weights], dim=1)  # (rows, steps, z_dim)
        row_classes = balanced_labels(rows, self.num_classes)  # a conditional walk keeps one class per row
        labels = None if row_classes is None else row_classes.repeat_interleave(steps)
        return self.generate(walks.reshape(rows * steps, -1), labels)

    def modes(self) -> Tensor | None:
        """The real modes of a mixture run, for drawing behind its points."""
        return mixture_modes(self.config.data.data)[0] if self.config.data.data in MIXTURES else None


def slerp(start: Tensor, end: Tensor, weight: float) -> Tensor:
    """Spherical interpolation per row, which keeps latents at the norm N(0, I) samples have."""
    if weight in (0.0, 1.0):  # exactly the end points, not a rounded sin(a)/sin(a) multiple of them
        return (start if weight == 0.0 else end).clone()
    cosine = torch.nn.functional.cosine_similarity(start, end, dim=1).clamp(-1 + 1e-7, 1 - 1e-7)
    angle = torch.acos(cosine).unsqueeze(1)
    return (torch.sin((1 - weight) * angle) * start + torch.sin(weight * angle) * end) / torch.sin(angle)
