"""The training algorithm of the lectures (SPEC.md sections 1-2).

Each step (one iteration): ``d_steps`` discriminator updates, each on a fresh
real batch and fresh noise, ascending E[log D(x)] + E[log(1 - D(G(z)))]; then
``g_steps`` generator updates, each on fresh noise, with the minimax or the
non-saturating loss (``order`` may swap the two phases). Two Adam optimizers,
each owning only its network's parameters, so one phase never moves the
other network.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.nn.utils import parametrize
from torch.optim.swa_utils import AveragedModel

from ganforge import distributed
from ganforge.checkpoint import Checkpoint, checkpoint_path, list_checkpoints, read_checkpoint, save_checkpoint
from ganforge.config import RunConfig, apply_overrides, save_yaml, validate, with_training_preset, write_text_atomically
from ganforge.data import IMAGE_SETS, MixtureData, RealData, TensorData, load_data
from ganforge.errors import ConfigError, GanforgeError, TrainingDivergedError
from ganforge.diagnostics import decision_surface, detect_failure_signs, diversity
from ganforge.images import save_samples_picture
from ganforge.augment import DiffAugment
from ganforge.losses import LOSSES, gradient_penalty
from ganforge.models import Generator, build_models, default_d_norm, resolve_model
from ganforge.models.lowering import tune_for_cpu
from ganforge.monitor import Meter, RunLog

PREVIEW_SAMPLES = 64  # fixed-noise samples in each preview grid (2-D data: points in each scatter plot)
POINT_PREVIEW_SAMPLES = 1000
PREVIEW_SEED_OFFSET = 2  # the preview noise's seed is the run's seed + 2
AUGMENT_SEED_OFFSET = 3  # DiffAugment's random stream: the run's seed + 3
EMA_SECTION = "generator_ema"  # checkpoint section of G's moving average (training.safetensors)
ROLLBACK_LR_FACTOR = 0.5  # each rollback after a divergence halves both learning rates


@dataclass
class TrainResult:
    """Where a finished run left its files."""

    run_dir: Path
    step: int
    checkpoint: Path
    samples: Path
    metrics: dict[str, Any]  # the last log row
    stopped_by: str | None = None  # "SIGINT"/"SIGTERM" when a signal ended the run early (it is checkpointed)


def gradient_norm(network: torch.nn.Module) -> Tensor:
    """The L2 norm of all of a network's gradients, as a device scalar (no host sync)."""
    return torch.nn.utils.get_total_norm([p.grad for p in network.parameters() if p.grad is not None])


def match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded optimizer state (saved contiguous) its parameter's memory layout, as fused Adam expects."""
    for parameter, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, Tensor) and value.shape == parameter.shape:
                state[key] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (Linux: AVX-512 BF16 or AMX flags); True where unknown."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


def activation_layout(config: RunConfig) -> torch.memory_format:
    """channels_last (faster oneDNN/cuDNN convolutions) for convolutional models unless turned off."""
    wanted = config.train.channels_last
    dcgan = config.model.model == "dcgan"
    return torch.channels_last if (dcgan if wanted is None else wanted and dcgan) else torch.contiguous_format


def judges_samples_independently(network: torch.nn.Module) -> bool:
    """Whether a network's output for each sample depends on that sample alone and one call's forward has no
    side effects: no batch statistics (BatchNorm) and no spectral norm (a power iteration per call)."""
    return not any(isinstance(layer, torch.nn.modules.batchnorm._BatchNorm) or parametrize.is_parametrized(layer)
                   for layer in network.modules())


def place_network(network: torch.nn.Module, config: RunConfig, device: torch.device) -> torch.nn.Module:
    """Put a network on its device with the layout and kernels training uses there: channels_last activations
    (dcgan), in-place activation functions, and on CPU the kernels of :func:`tune_for_cpu`. The function and
    the parameters stay the same; training and sampling share this, so samples match the trainer's previews."""
    activations = activation_layout(config)
    network.to(device=device, memory_format=activations)
    for layer in network.modules():
        if isinstance(layer, (torch.nn.ReLU, torch.nn.LeakyReLU)):
            layer.inplace = True  # each follows a layer whose backward does not need its output: one tensor fewer
    if device.type == "cpu":
        tune_for_cpu(network, activations)
    return network


def ema_with_warmup(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """The EMA update for torch's AveragedModel, with the warm-up of TensorFlow's ExponentialMovingAverage:
    after t updates the decay is min(decay, (1 + t) / (10 + t)), so the first weights of G, which make noise,
    are forgotten within tens of steps instead of lingering (0.999^1500 = 22% of the average at step 1,500).
    Integer buffers (BatchNorm's batch counter) are copied, not averaged. The decay stays a device tensor."""

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], updates: Tensor) -> None:
        if not (torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0])):
            torch._foreach_copy_(averaged, current)
            return
        step_decay = torch.clamp((1 + updates) / (10 + updates), max=decay).to(averaged[0].dtype)
        torch._foreach_lerp_(averaged, current, 1 - step_decay)

    return update


def balanced_labels(count: int, num_classes: int | None, device: torch.device | str = "cpu") -> Tensor | None:
    """Classes 0, 1, ..., K-1, 0, 1, ... for ``count`` samples (None for an unconditional model):
    every class equally often, so grids show each class and metrics see the classes in balance."""
    return None if num_classes is None else torch.arange(count, device=device) % num_classes


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu or auto")
    return torch.device(name)


def resolve_config(config: RunConfig, data: RealData) -> RunConfig:
    """Fill what the data decides (image size, channels) and the model's presets (sizes, training keys)."""
    model = config.model
    if model.model == "toy" and data.kind != "points":
        raise ConfigError(f"the toy model learns 2-D points, but {data.description} holds images: use --model mlp or dcgan")
    if model.model != "toy" and data.kind != "images":
        raise ConfigError(f"--model {model.model} learns images, but {data.description} holds 2-D points: use --model toy")
    if data.kind == "images":
        channels, size, width = data.sample_shape
        if size != width:
            raise ConfigError(f"images of {data.description} are {size}x{width}, not square: crop them to square")
        model = dataclasses.replace(model, image_size=size, channels=channels)
    if model.conditional:
        model = dataclasses.replace(model, num_classes=_classes_of(data, model.num_classes))
    model = dataclasses.replace(model, d_norm=model.d_norm or default_d_norm(model, config.train.loss))
    return with_training_preset(dataclasses.replace(config, model=resolve_model(model)))


def _classes_of(data: RealData, asked: int | None) -> int:
    """The class count of a conditional model: the data's labels 0..K-1 (or ``asked``, if they fit in it)."""
    if data.labels is None:
        raise ConfigError(f"--conditional needs class labels, and {data.description} has none: "
                          "use labelled data such as --data digits, or train without --conditional")
    found = int(data.labels.max()) + 1
    if asked is not None and asked < found:
        raise ConfigError(f"{data.description} has labels up to {found - 1}, more than --num-classes {asked} holds: "
                          f"use --num-classes {found} or leave it unset")
    return asked or found


def total_steps(config: RunConfig, data: RealData) -> int:
    """The step count to train to: --steps, or --epochs converted through the data's batches per epoch."""
    train = config.train
    if train.steps is not None:
        return train.steps
    assert train.epochs is not None, "with_training_preset sets steps when epochs is not given"
    per_epoch = data.batches_per_epoch(train.batch_size)
    if per_epoch is None:
        raise ConfigError(f"{data.description} is sampled on the fly and has no epochs: use --steps")
    return max(1, round(train.epochs * per_epoch / train.d_steps))


class Trainer:
    """Holds the two networks, their optimizers and the random streams; runs the phases."""

    def __init__(self, config: RunConfig, data: RealData, device: torch.device) -> None:
        self.config = config
        self.data = data
        self.device = device
        train = config.train
        self.generator, self.discriminator = build_models(config.model, seed=train.seed)
        self.memory_format = activation_layout(config)
        for network in (self.generator, self.discriminator):
            place_network(network, config, device)
        fused = device.type in ("cpu", "cuda")
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=train.lr_g, betas=(train.beta1, train.beta2),
                                      fused=fused)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=train.lr_d, betas=(train.beta1, train.beta2),
                                      fused=fused)
        self.loss = LOSSES[train.loss]
        self.d_loss_reduction = self.loss.reduction or train.d_loss_reduction
        self.num_classes = config.model.num_classes if config.model.conditional else None
        self.augment = (DiffAugment(train.diffaug_policy, torch.Generator(device).manual_seed(train.seed + AUGMENT_SEED_OFFSET))
                        if train.diffaug else None)
        # G's weights averaged over the steps (EMA), what samples and metrics use when --ema is set.
        self.generator_ema = (AveragedModel(self.generator, multi_avg_fn=ema_with_warmup(train.ema), use_buffers=True)
                              if train.ema else None)
        # What runs the forward passes: the networks themselves, or their compiled twins (same parameters);
        # under torchrun, DDP wrappers that average the gradients over the processes (distributed.py).
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        compiled = torch.compile if train.compile else (lambda network: network)
        self.run_generator = compiled(distributed.replicate(self.generator, device, train.sync_batch_norm))
        self.run_discriminator = compiled(distributed.replicate(self.discriminator, device, train.sync_batch_norm))
        # G learns through D outside D's DDP wrapper: D is frozen then, so there is no D gradient to all-reduce,
        # and the wrapper's bookkeeping and buffer broadcast would be wasted.
        self.frozen_discriminator = self.run_discriminator if self.world_size == 1 else compiled(self.discriminator)
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(train.precision)
        self.scaler_d = torch.amp.GradScaler(device.type, enabled=train.precision == "fp16")
        self.scaler_g = torch.amp.GradScaler(device.type, enabled=train.precision == "fp16")
        self.noise = torch.Generator(device).manual_seed(train.seed)
        preview = torch.Generator(device).manual_seed(train.seed + PREVIEW_SEED_OFFSET)
        count = POINT_PREVIEW_SAMPLES if data.kind == "points" else PREVIEW_SAMPLES
        self.preview_noise = torch.randn(count, self.generator.z_dim, generator=preview, device=device)
        self.preview_labels = balanced_labels(count, self.num_classes, device)
        self.meter = Meter(device)
        self.joint_judging = self.augment is None and judges_samples_independently(self.discriminator)
        self.step = 0

    def autocast(self) -> torch.autocast:
        """Mixed precision for the forward passes when --precision is bf16 or fp16 (a no-op in fp32)."""
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def sample_noise(self, count: int) -> Tensor:  # -> (count, z_dim), z ~ N(0, I)
        # Under torchrun every process draws the global batch from the same stream and keeps its own slice.
        noise = torch.randn(count * self.world_size, self.generator.z_dim, generator=self.noise, device=self.device)
        return distributed.own_share(noise, self.rank, count)

    def sample_labels(self, count: int) -> Tensor | None:  # -> (count,) classes uniform in 0..K-1, or None
        if self.num_classes is None:
            return None
        labels = torch.randint(self.num_classes, (count * self.world_size,), generator=self.noise, device=self.device)
        return distributed.own_share(labels, self.rank, count)

    def real_batch(self) -> tuple[Tensor, Tensor | None]:
        """The next real batch (in the networks' memory layout) and, for a conditional model, its labels."""
        batch_size = self.config.train.batch_size
        if self.num_classes is None:
            real, labels = self.data.next_batch(batch_size), None
        else:
            real, labels = self.data.next_labeled_batch(batch_size)
        if real.ndim == 4:
            real = real.contiguous(memory_format=self.memory_format)
        return real, labels

    def judge(self, samples: Tensor, labels: Tensor | None, discriminator: torch.nn.Module | None = None) -> Tensor:
        """D's float32 outputs for samples (augmented first under --diffaug), as its phase's precision computes them."""
        if self.augment is not None:
            samples = self.augment(samples)
        with self.autocast():
            return (self.run_discriminator if discriminator is None else discriminator)(samples, labels).float()

    def judge_both(self, real: Tensor, fake: Tensor, real_labels: Tensor | None,
                   fake_labels: Tensor | None) -> tuple[Tensor, Tensor]:
        """D's scores of the real and the fake batch: in one forward pass of both batches together where that
        computes exactly the same function (D judges each sample on its own and no augmentation draws per
        call), else in two passes, so BatchNorm's batch statistics stay those of SPEC.md."""
        if not self.joint_judging:
            return self.judge(real, real_labels), self.judge(fake, fake_labels)
        labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
        scores = self.judge(torch.cat([real, fake]), labels)
        return scores[:real.shape[0]], scores[real.shape[0]:]

    def discriminator_phase(self, step: int) -> None:
        """k updates of D: real batch -> "real", G(fresh noise) -> "fake" by the loss's targets; G is not updated."""
        batch_size = self.config.train.batch_size
        for _ in range(self.config.train.d_steps):
            real, real_labels = self.real_batch()
            fake_labels = self.sample_labels(batch_size)
            with torch.no_grad(), self.autocast():
                fake = self.run_generator(self.sample_noise(batch_size), fake_labels)
            real_scores, fake_scores = self.judge_both(real, fake, real_labels, fake_labels)
            loss = self.loss.discriminator(real_scores, fake_scores, self.d_loss_reduction)
            statistics = {}
            if self.loss.gradient_penalty:
                penalty = gradient_penalty(lambda between: self.judge(between, real_labels), real, fake, self.noise)
                loss = loss + penalty
                statistics["gradient_penalty"] = penalty
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(loss).backward()
            self.scaler_d.unscale_(self.opt_d)
            if self.loss.outputs_probability:
                real_scores, fake_scores = torch.sigmoid(real_scores), torch.sigmoid(fake_scores)
            self.meter.add(step, d_loss=loss, d_real=real_scores.mean(), d_fake=fake_scores.mean(),
                           d_grad_norm=gradient_norm(self.discriminator), **statistics)
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()

    def generator_phase(self, step: int) -> None:
        """g updates of G through a frozen D (D's parameters get no gradient and do not move)."""
        batch_size = self.config.train.batch_size
        self.discriminator.requires_grad_(False)
        try:
            for _ in range(self.config.train.g_steps):
                labels = self.sample_labels(batch_size)
                with self.autocast():
                    fake = self.run_generator(self.sample_noise(batch_size), labels)
                loss = self.loss.generator(self.judge(fake, labels, self.frozen_discriminator))
                self.opt_g.zero_grad(set_to_none=True)
                self.scaler_g.scale(loss).backward()
                self.scaler_g.unscale_(self.opt_g)
                self.meter.add(step, g_loss=loss, g_grad_norm=gradient_norm(self.generator))
                self.scaler_g.step(self.opt_g)
                self.scaler_g.update()
                if self.generator_ema is not None:
                    self.generator_ema.update_parameters(self.generator)
        finally:
            self.discriminator.requires_grad_(True)

    @property
    def sampling_generator(self) -> Generator:
        """The generator that makes previews, samples and metrics: the EMA of G's weights under --ema, else G."""
        return self.generator if self.generator_ema is None else self.generator_ema.module

    def train_step(self) -> None:
        """One iteration of the algorithm: the two phases in the configured order."""
        self.step += 1
        if self.config.train.order == "d-first":
            self.discriminator_phase(self.step)
            self.generator_phase(self.step)
        else:
            self.generator_phase(self.step)
            self.discriminator_phase(self.step)

    @torch.no_grad()
    def preview(self) -> Tensor:
        """G(fixed noise) in eval mode, so previews never change BatchNorm statistics."""
        generator = self.sampling_generator
        generator.eval()
        try:
            return generator(self.preview_noise, self.preview_labels).cpu()
        finally:
            generator.train()

    def save_preview(self, path: Path, samples: Tensor | None = None) -> Path:
        """The fixed-noise samples (``samples`` if this step's preview is at hand): an image grid, or for
        2-D data the points over D's decision surface."""
        samples = self.preview() if samples is None else samples
        if self.data.kind == "points":
            path.parent.mkdir(parents=True, exist_ok=True)
            modes = self.data.modes if isinstance(self.data, MixtureData) else None
            decision_surface(samples, modes, self.discriminator).save(path)
            return path
        return save_samples_picture(samples, path)

    def learning_rates(self) -> dict[str, float]:
        return {"lr_d": self.opt_d.param_groups[0]["lr"], "lr_g": self.opt_g.param_groups[0]["lr"]}

    def weights_are_finite(self) -> bool:
        parameters = [*self.generator.parameters(), *self.discriminator.parameters()]
        return bool(torch.stack([p.isfinite().all() for p in parameters]).all())

    def save(self, run_dir: Path) -> Path:
        return save_checkpoint(
            run_dir, self.step, self.config, self.generator, self.discriminator,
            {"generator": self.opt_g, "discriminator": self.opt_d},
            {"noise": {"rng": self.noise.get_state()}, "data": self.data.state_dict(), **self._scaler_states(),
             **self._extra_states()},
            keep=self.config.train.keep_checkpoints,
        )

    def roll_back(self, run_dir: Path) -> dict[str, Any]:
        """Return to the latest checkpoint after a divergence, halving the learning rates that diverged."""
        if not list_checkpoints(run_dir):
            raise TrainingDivergedError(
                f"training diverged at step {self.step} before the first checkpoint, so there is nothing to roll "
                "back to: lower --lr-d/--lr-g or set --checkpoint-every smaller"
            )
        rates = {name: [group["lr"] for group in optimizer.param_groups]
                 for name, optimizer in (("lr_d", self.opt_d), ("lr_g", self.opt_g))}
        self.restore(run_dir)
        for name, optimizer in (("lr_d", self.opt_d), ("lr_g", self.opt_g)):
            for group, rate in zip(optimizer.param_groups, rates[name]):
                group["lr"] = rate * ROLLBACK_LR_FACTOR
        self.meter.reset()
        return {"to_step": self.step,
                "lr_d": self.opt_d.param_groups[0]["lr"], "lr_g": self.opt_g.param_groups[0]["lr"]}

    def restore(self, checkpoint: Checkpoint | Path) -> None:
        """Continue from a checkpoint (or the one a path names: a run folder's latest)."""
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = read_checkpoint(checkpoint)
        checkpoint.restore_models(self.generator, self.discriminator)
        checkpoint.restore_optimizer("generator", self.opt_g)
        checkpoint.restore_optimizer("discriminator", self.opt_d)
        for optimizer in (self.opt_g, self.opt_d):
            match_parameter_layout(optimizer)
        self.noise.set_state(checkpoint.section("noise")["rng"])
        self.data.load_state_dict(checkpoint.section("data"))
        if self.augment is not None and checkpoint.section("augment"):
            self.augment.generator.set_state(checkpoint.section("augment")["rng"])
        if self.generator_ema is not None:
            average = checkpoint.section(EMA_SECTION)
            if average:
                self.generator_ema.n_averaged.copy_(average.pop("n_averaged"))
                self.generator_ema.module.load_state_dict(average)
            else:  # a run that adds --ema on resume starts its average from the current weights
                self.generator_ema.n_averaged.zero_()
        for name, scaler in (("scaler_d", self.scaler_d), ("scaler_g", self.scaler_g)):
            if scaler.is_enabled() and checkpoint.section(name):
                scaler.load_state_dict({key: value.item() for key, value in checkpoint.section(name).items()})
        self.step = checkpoint.step

    def _extra_states(self) -> dict[str, dict[str, Tensor]]:
        """The augmentation stream and G's moving average, when the run has them."""
        states: dict[str, dict[str, Tensor]] = {}
        if self.augment is not None:
            states["augment"] = {"rng": self.augment.generator.get_state()}
        if self.generator_ema is not None:
            states[EMA_SECTION] = {**self.generator_ema.module.state_dict(), "n_averaged": self.generator_ema.n_averaged}
        return states

    def _scaler_states(self) -> dict[str, dict[str, Tensor]]:
        """fp16 loss scales, so a resumed fp16 run continues with the same scale."""
        return {name: {key: torch.tensor(value) for key, value in scaler.state_dict().items()}
                for name, scaler in (("scaler_d", self.scaler_d), ("scaler_g", self.scaler_g)) if scaler.is_enabled()}


def train(config: RunConfig, out: Path | str, *, show_progress: bool = True) -> TrainResult:
    """Train a GAN from scratch and write the run folder ``out``.

    The folder receives ``config.yaml``, ``metrics.jsonl``, ``samples/step_N.png``
    (a fixed-noise grid every ``sample_every`` steps) and ``checkpoints/step_N/``.
    A folder that already holds checkpoints is refused, never overwritten.
    """
    run_dir = Path(out)
    if list_checkpoints(run_dir):
        raise ConfigError(
            f"{run_dir} already holds a run with checkpoints: continue it with --resume {run_dir}, "
            "or choose a new --out folder"
        )
    if distributed.is_main():
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    return _start(config, run_dir, resume_from=None, show_progress=show_progress)


def resume(run_dir: Path | str, overrides: dict[str, Any] | None = None, *, show_progress: bool = True) -> TrainResult:
    """Continue a run from its latest checkpoint, exactly as if it had never stopped.

    ``overrides`` may change training keys (most often ``steps``, the new total);
    model and data keys must equal the run's own.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise GanforgeError(f"cannot resume {run_dir}: it does not exist (pass the --out folder of an earlier run)")
    checkpoint = read_checkpoint(run_dir)
    saved = checkpoint.config
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    for section in ("model", "data"):
        for key, saved_value in dataclasses.asdict(getattr(saved, section)).items():
            if key in overrides and overrides[key] != saved_value:
                raise ConfigError(
                    f"--resume {run_dir}: {key} {overrides[key]!r} differs from the run's {saved_value!r}; "
                    "a run resumes with its own model and data (start a new run with a new --out)"
                )
    config = apply_overrides(saved, overrides)
    if "steps" in overrides:
        config.train.epochs = None
    return _start(config, run_dir, resume_from=checkpoint, show_progress=show_progress)


def _start(config: RunConfig, run_dir: Path, *, resume_from: Checkpoint | None, show_progress: bool) -> TrainResult:
    validate(config)
    # One process, or one of torchrun's: then a process group for the run and this process's device.
    with distributed.session(resolve_device(config.train.device)) as device:
        return _start_on(device, config, run_dir, resume_from=resume_from, show_progress=show_progress)


def _start_on(device: torch.device, config: RunConfig, run_dir: Path, *, resume_from: Checkpoint | None,
              show_progress: bool) -> TrainResult:
    if config.train.precision == "fp16" and device.type != "cuda":
        raise ConfigError("--precision fp16 needs a CUDA GPU (its loss scaling is for GPUs): use --precision bf16 on CPU")
    if config.train.precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        logging.getLogger("ganforge").warning(
            "this CPU has no native bf16 arithmetic (AVX-512 BF16 or AMX): --precision bf16 will run much slower "
            "than fp32 here; use --precision fp32")
    if config.model.model == "toy" and config.data.data in IMAGE_SETS:
        raise ConfigError(f"the toy model learns 2-D points, but {config.data.data} holds images: "
                          "use --data ring8 or grid25, or --model mlp or dcgan")
    with distributed.local_main_first():  # a download happens once per machine, not once per process
        data = load_data(config.data, config.model.image_size, config.model.channels, config.train.seed, device)
    data.shard(distributed.rank(), distributed.world_size())  # before total_steps: an epoch is of global batches
    config = resolve_config(config, data)
    steps = total_steps(config, data)
    trainer = Trainer(config, data, device)
    if resume_from is not None:
        trainer.restore(resume_from)
        if trainer.step >= steps:
            raise ConfigError(f"{run_dir} is already at step {trainer.step}: pass --steps larger than {trainer.step}")
    distributed.require_same({"the steps to train": steps, "the step to start from": trainer.step,
                              "the real samples": len(data) if isinstance(data, TensorData) else 0})
    if distributed.is_main():  # the run folder is rank 0's to write
        if resume_from is not None:
            forget_rows_after(run_dir / "metrics.jsonl", trainer.step)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(config, run_dir / "config.yaml")
    return _run_loop(trainer, run_dir, steps, show_progress)


def _run_loop(trainer: Trainer, run_dir: Path, steps: int, show_progress: bool) -> TrainResult:
    train_config = trainer.config.train
    last_checkpoint: Path | None = None
    last_samples: Path | None = None
    row: dict[str, Any] = {}
    rollbacks = 0
    rows: list[dict[str, Any]] = []  # this session's log rows, for the failure-sign warnings
    warned: set[str] = set()
    images_per_step = train_config.batch_size * train_config.d_steps * distributed.world_size()
    main = distributed.is_main()  # under torchrun only rank 0 evaluates and writes; the others train alongside
    evaluation = PeriodicEvaluation(trainer, run_dir) if train_config.eval_every and main else None
    with RunLog(run_dir, trainer.step, steps, images_per_step, show=show_progress,
                tensorboard=train_config.tensorboard, writes=main) as log, StopRequest() as stop:
        stopping = False
        while trainer.step < steps and not stopping:
            trainer.train_step()
            step = trainer.step
            log.advance(step)
            # Read once (and alike on every process), so the step that sees it is handled as the last.
            stopping = distributed.any_rank(stop.requested is not None)
            final = step == steps or stopping
            evaluating = bool(train_config.eval_every) and (step % train_config.eval_every == 0 or final)
            preview: Tensor | None = None  # G(fixed noise) at this step, made at most once
            try:
                if step % train_config.log_every == 0 or final or evaluating:
                    values, bad_step = trainer.meter.read()
                    trainer.meter.reset()
                    if bad_step is not None:
                        log.record(step, values, **trainer.learning_rates())
                        raise _diverged(run_dir, bad_step, values)
                    scores = evaluation.run(step) if evaluation is not None and evaluating else {}
                    preview = trainer.preview()
                    row = log.record(step, values, **trainer.learning_rates(),
                                     diversity=round(diversity(preview), 6), **scores)
                    rows.append(row)
                    _warn_new_failure_signs(log, rows, trainer.config, warned)
                if (train_config.checkpoint_every and step % train_config.checkpoint_every == 0) or final or evaluating:
                    _, bad_step = trainer.meter.read()  # a checkpoint (a best one too) is written only when finite
                    if bad_step is not None or not distributed.all_ranks(trainer.weights_are_finite()):
                        raise _diverged(run_dir, bad_step or step, {})
            except TrainingDivergedError as error:
                if train_config.on_nan != "rollback" or rollbacks >= train_config.max_rollbacks:
                    if rollbacks:
                        raise TrainingDivergedError(f"{error} (after {rollbacks} rollbacks)") from None
                    raise
                rollbacks += 1
                log.event(step, "rollback", diverged_at=error.step, **trainer.roll_back(run_dir), rollback=rollbacks)
                continue
            if main and ((train_config.sample_every and step % train_config.sample_every == 0) or final):
                last_samples = trainer.save_preview(run_dir / "samples" / f"step_{step:07d}.png", preview)
                log.images(step, Image.open(last_samples))
            new_best = evaluation is not None and evaluating and evaluation.improved
            if main and ((train_config.checkpoint_every and step % train_config.checkpoint_every == 0) or final
                         or new_best):
                last_checkpoint = trainer.save(run_dir)
            if new_best:
                evaluation.keep_best(last_checkpoint)
        log.message(f"samples: {last_samples}")
        log.message(f"checkpoint: {last_checkpoint}")
        stopped_by = (stop.requested or "a signal to another process") if trainer.step < steps else None
        if stopped_by:
            log.message(f"stopped by {stopped_by} at step {trainer.step} of {steps}; continue with: "
                        f"ganforge train --resume {run_dir} --steps {steps}", always=True)
    if not main:  # rank 0 wrote the run folder; its last files are those of the final step
        last_checkpoint = checkpoint_path(run_dir, trainer.step)
        last_samples = run_dir / "samples" / f"step_{trainer.step:07d}.png"
    assert last_checkpoint is not None and last_samples is not None
    return TrainResult(run_dir, trainer.step, last_checkpoint, last_samples, row, stopped_by=stopped_by)


class PeriodicEvaluation:
    """``--eval-every``: metrics of the generator in training, eval.json, and checkpoints/best by one metric.

    The real data, the feature extractor and the real-data floors are prepared once. The best checkpoint is a
    copy outside the pruned step folders, so ``--keep N`` keeps the last N plus the best.
    """

    def __init__(self, trainer: Trainer, run_dir: Path) -> None:
        from ganforge.evaluation import HIGHER_IS_BETTER, Evaluator

        train = trainer.config.train
        self.trainer = trainer
        self.run_dir = run_dir
        self.evaluator = Evaluator(trainer.config, train.eval_metrics, train.eval_samples, train.feature_extractor,
                                   seed=train.seed, device=trainer.device)
        self.metric = train.best_metric or ("reverse_kl" if trainer.data.kind == "points" else "fid")
        if self.metric not in HIGHER_IS_BETTER:
            raise ConfigError(f"best_metric '{self.metric}' is not a metric: use one of {', '.join(HIGHER_IS_BETTER)}")
        self.higher_is_better = HIGHER_IS_BETTER[self.metric]
        self.record_path = run_dir / "checkpoints" / "best.json"
        self.best = json.loads(self.record_path.read_text()) if self.record_path.is_file() else None
        self.improved = False

    def run(self, step: int) -> dict[str, float]:
        """Evaluate now; returns the metrics for the log row and notes whether the chosen one improved."""
        from ganforge.evaluation import write_results
        from ganforge.sampling import TrainedGenerator

        generator = self.trainer.sampling_generator
        results = self.evaluator(TrainedGenerator(generator, self.trainer.config, step, self.trainer.device))
        generator.train()  # TrainedGenerator switched it to eval mode
        write_results(results, self.run_dir)
        if self.metric not in results:
            raise ConfigError(f"best_metric '{self.metric}' is not among this run's metrics: "
                              f"use one of {', '.join(k for k in results if f'{k}_floor' in results)}")
        value = float(results[self.metric])
        previous = None if self.best is None else self.best["value"]
        self.improved = previous is None or (value > previous if self.higher_is_better else value < previous)
        if self.improved:
            self.best = {"metric": self.metric, "value": value, "step": step}
        return {key: value for key, value in results.items() if isinstance(value, (int, float))
                and not isinstance(value, bool) and not key.endswith("_floor") and key not in ("num_samples", "step")}

    def keep_best(self, checkpoint: Path) -> None:
        """Copy the checkpoint just written to checkpoints/best (replaced atomically) and record why."""
        best = checkpoint.parent / "best"
        staging = checkpoint.parent / f".best.tmp-{os.getpid()}"
        retired = checkpoint.parent / f".best.old-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(checkpoint, staging)
        if best.exists():
            os.replace(best, retired)
        os.replace(staging, best)
        shutil.rmtree(retired, ignore_errors=True)
        write_text_atomically(self.record_path, json.dumps(self.best))


def forget_rows_after(metrics: Path, step: int) -> None:
    """Drop log rows past ``step`` (written after the checkpoint a run resumes from), atomically."""
    if not metrics.is_file():
        return
    kept = []
    for line in metrics.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a crash
    write_text_atomically(metrics, "".join(f"{line}\n" for line in kept))


def _warn_new_failure_signs(log: RunLog, rows: list[dict[str, Any]], config: RunConfig, warned: set[str]) -> None:
    """Tell the user once per kind when a known failure sign (starved G, D won, collapse) shows up."""
    for sign in detect_failure_signs(rows, config):
        if sign.ongoing and sign.kind not in warned:
            warned.add(sign.kind)
            log.warning(sign.message)


class StopRequest:
    """Turns SIGINT/SIGTERM into a request to stop after the current step (a second SIGINT stops at once)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: str | None = None  # the signal's name once one arrived
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name


def _diverged(run_dir: Path, step: int, values: dict[str, float]) -> TrainingDivergedError:
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    what = ", ".join(bad) if bad else "a loss or weight"
    kept = list_checkpoints(run_dir)
    where = f"the last good checkpoint is {kept[-1]}" if kept else "no checkpoint had been written yet"
    error = TrainingDivergedError(
        f"training diverged: {what} became NaN or infinite at step {step}; {where}; "
        "lower --lr-d/--lr-g and resume or start again"
    )
    error.step = step
    return error
