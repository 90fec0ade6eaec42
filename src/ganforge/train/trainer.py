"""The training state: both networks, their optimizers, the random streams, and what the loop asks of them.

:mod:`ganforge.train.step` runs the algorithm's step on a :class:`Trainer`; :mod:`ganforge.train.loop`
repeats it and logs, previews, checkpoints and guards against divergence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel

from ganforge.algorithm.augment import DiffAugment
from ganforge.algorithm.ema import averaging_step, ema_with_warmup
from ganforge.algorithm.labels import balanced_labels
from ganforge.algorithm.losses import LOSS_FAMILIES
from ganforge.algorithm.packing import judge_single_samples, pack
from ganforge.algorithm.schedules import learning_rate_factor
from ganforge.config.presets import AUGMENT_SEED_OFFSET, PREVIEW_SEED_OFFSET
from ganforge.config.schema import RunConfig, TrainConfig
from ganforge.data import MixtureData, RealData
from ganforge.data.sharding import own_share
from ganforge.errors import TrainingDivergedError
from ganforge.models import Generator, build_models
from ganforge.models.components import component_of
from ganforge.runs.checkpoint import EMA_SECTION, Checkpoint, list_checkpoints, read_checkpoint, save_checkpoint
from ganforge.runs.pictures import save_samples_picture
from ganforge.train import distributed
from ganforge.train.diagnostics import decision_surface
from ganforge.train.monitor import Meter
from ganforge.train.placement import activation_layout, judges_samples_independently, place_network

PREVIEW_SAMPLES = 64  # fixed-noise samples in each preview grid (2-D data: points in each scatter plot)
POINT_PREVIEW_SAMPLES = 1000
ROLLBACK_LR_FACTOR = 0.5  # each rollback after a divergence halves both learning rates


def match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded optimizer state (saved contiguous) its parameter's memory layout, as fused Adam expects."""
    for parameter, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, Tensor) and value.shape == parameter.shape:
                state[key] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)


class Trainer:
    """Holds the two networks, their optimizers and the random streams; runs the phases."""

    def __init__(self, config: RunConfig, data: RealData, device: torch.device, total_steps: int | None = None) -> None:
        self.config = config
        self.data = data
        self.device = device
        train = config.train
        self.generator, self.discriminator = build_models(config.model, seed=train.seed)
        self.memory_format = activation_layout(config)
        for network in (self.generator, self.discriminator):
            place_network(network, config, device)
        # Each step freezes D and takes both networks' gradient norms: walking the module tree for their
        # parameters every time cost a toy step about 5%; the lists stay valid (loading copies into them).
        self.generator_parameters = list(self.generator.parameters())
        self.discriminator_parameters = list(self.discriminator.parameters())
        fused = device.type in ("cpu", "cuda")
        self.opt_g = torch.optim.Adam(self.generator_parameters, lr=train.lr_g, betas=(train.beta1, train.beta2),
                                      fused=fused)
        self.opt_d = torch.optim.Adam(self.discriminator_parameters, lr=train.lr_d, betas=(train.beta1, train.beta2),
                                      fused=fused)
        self.loss = LOSS_FAMILIES[train.loss]
        self.d_loss_reduction = self.loss.reduction or train.d_loss_reduction
        self.num_classes = config.model.num_classes if config.model.conditional else None
        self.info_weight = config.model.info_weight or 0.0  # InfoGAN's lambda for the latent components; 0 = off
        self.feature_matching = train.feature_matching or 0.0  # lambda of G's feature-matching term; 0 = off
        self.augment = (DiffAugment(train.diffaug_policy, torch.Generator(device).manual_seed(train.seed + AUGMENT_SEED_OFFSET))
                        if train.diffaug else None)
        # G's weights averaged over the steps (EMA), what samples and metrics use when --ema is set.
        self.generator_ema = (AveragedModel(self.generator, multi_avg_fn=ema_with_warmup(train.ema), use_buffers=True)
                              if train.ema else None)
        self.update_average = (averaging_step(self.generator_ema, self.generator) if self.generator_ema is not None
                               else None)
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
        # --reuse-fake: D's last fake batch, its labels and its noise
        self.reusable_fake: tuple[Tensor, Tensor | None, Tensor] | None = None
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
        self.total_steps = total_steps or train.steps or 1  # the run's length, which a learning-rate schedule spans

    def autocast(self) -> torch.autocast:
        """Mixed precision for the forward passes when --precision is bf16 or fp16 (a no-op in fp32)."""
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def sample_noise(self, count: int) -> Tensor:  # -> (count, z_dim), z ~ N(0, I)
        # Under torchrun every process draws the global batch from the same stream and keeps its own slice.
        noise = torch.randn(count * self.world_size, self.generator.z_dim, generator=self.noise, device=self.device)
        return own_share(noise, self.rank, count)

    def sample_labels(self, count: int) -> Tensor | None:  # -> (count,) classes uniform in 0..K-1, or None
        if self.num_classes is None:
            return None
        labels = torch.randint(self.num_classes, (count * self.world_size,), generator=self.noise, device=self.device)
        return own_share(labels, self.rank, count)

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
        """D's float32 outputs for samples (augmented first under --diffaug, then packed under --pack), as its
        phase's precision computes them: one score per sample, or per pack of ``pack`` samples."""
        return self.judge_with_heads(samples, labels, discriminator, components=False)[0]

    def judge_with_heads(self, samples: Tensor, labels: Tensor | None, discriminator: torch.nn.Module | None = None,
                         components: bool = True, features: bool = False
                         ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """D's scores as :meth:`judge` gives them and, from the same forward pass, D's float32 logits of each
        sample's latent component when ``components`` is set and the run has --info-weight (else None), and its
        last hidden features (one row per score) when ``features`` is set (else None)."""
        if self.augment is not None:
            samples = self.augment(samples)
        samples = pack(samples, self.config.model.pack)
        discriminator = self.run_discriminator if discriminator is None else discriminator
        components = components and bool(self.info_weight)
        with self.autocast():
            if not (components or features):
                return discriminator(samples, labels).float(), None, None
            scores, *heads = discriminator(samples, labels, components=components, features=features)
        logits = heads.pop(0).float() if components else None
        return scores.float(), logits, heads.pop(0) if features else None

    def judge_both(self, real: Tensor, fake: Tensor, real_labels: Tensor | None,
                   fake_labels: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """D's scores of the real and the fake batch, and under --info-weight its logits of the fake samples'
        latent components (else None): in one forward pass of both batches together where that computes exactly
        the same function (D judges each sample on its own and no augmentation draws per call), else in two
        passes, so BatchNorm's batch statistics stay those of SPEC.md."""
        if not self.joint_judging:
            return self.judge(real, real_labels), *self.judge_with_heads(fake, fake_labels)[:2]
        labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
        scores, logits, _ = self.judge_with_heads(torch.cat([real, fake]), labels)
        half = scores.shape[0] // 2  # one score per sample, or per pack: the real half comes first
        return scores[:half], scores[half:], None if logits is None else logits[real.shape[0]:]

    def components_of(self, noise: Tensor) -> Tensor:
        """The latent component of each noise vector (its last coordinate's quantile bin), which D's
        component head learns to predict from the sample G makes of it."""
        return component_of(noise[:, -1], self.config.model.components or 1)

    @property
    def sampling_generator(self) -> Generator:
        """The generator that makes previews, samples and metrics: the EMA of G's weights under --ema, else G."""
        return self.generator if self.generator_ema is None else self.generator_ema.module

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
            decision_surface(samples, modes, judge_single_samples(self.discriminator, self.config.model.pack)).save(path)
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

    def schedule_learning_rates(self) -> None:
        """Set both optimizers' rates for the current step from ``--lr-schedule``: the base rate (kept in each
        group's ``initial_lr``, saved with the optimizer) times the schedule's factor. Constant: untouched."""
        train = self.config.train
        if train.lr_schedule == "constant":
            return
        factor = learning_rate_factor(train.lr_schedule, self.step, self.total_steps, train.lr_floor)
        for optimizer in (self.opt_d, self.opt_g):
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor

    def penalties_due(self, step: int, real: Tensor, real_labels: Tensor | None, fake: Tensor,
                      fake_labels: Tensor | None) -> list[tuple[str, Tensor, Tensor | None, float]]:
        """The zero-centred penalties D's loss takes at this step: (name, samples, labels, gamma) for R1 on the real
        batch and R2 on the fake one. Lazily every ``penalty_every`` steps with gamma scaled by that interval,
        so the penalty's average weight stays the same (StyleGAN2's lazy regularization)."""
        train = self.config.train
        if step % train.penalty_every:
            return []
        due = [("r1_penalty", real, real_labels, train.r1), ("r2_penalty", fake, fake_labels, train.r2)]
        return [(name, samples, labels, gamma * train.penalty_every) for name, samples, labels, gamma in due if gamma]

    def roll_back(self, run_dir: Path) -> dict[str, Any]:
        """Return to the latest checkpoint after a divergence, halving the learning rates that diverged."""
        if not list_checkpoints(run_dir):
            raise TrainingDivergedError(
                f"training diverged at step {self.step} before the first checkpoint, so there is nothing to roll "
                "back to: lower --lr-d/--lr-g or set --checkpoint-every smaller"
            )
        rates = {name: [(group["lr"], group.get("initial_lr")) for group in optimizer.param_groups]
                 for name, optimizer in (("lr_d", self.opt_d), ("lr_g", self.opt_g))}
        self.restore(run_dir)
        for name, optimizer in (("lr_d", self.opt_d), ("lr_g", self.opt_g)):
            for group, (rate, initial) in zip(optimizer.param_groups, rates[name]):
                group["lr"] = rate * ROLLBACK_LR_FACTOR
                if initial is not None:  # a schedule's base rate (see schedule_learning_rates)
                    group["initial_lr"] = initial * ROLLBACK_LR_FACTOR
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
        self._adopt_changed_optimizer_settings(checkpoint.config.train)
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

    def _adopt_changed_optimizer_settings(self, saved: TrainConfig) -> None:
        """Give the restored optimizers the rates and betas of this run's config where they differ from the
        checkpoint's: loading an optimizer's state would otherwise bring back the old ones (a resume override)."""
        train = self.config.train
        rates_changed = any(getattr(saved, key) != getattr(train, key)
                            for key in ("lr_d", "lr_g", "lr_schedule", "lr_floor"))
        betas_changed = (saved.beta1, saved.beta2) != (train.beta1, train.beta2)
        for optimizer, rate in ((self.opt_d, train.lr_d), (self.opt_g, train.lr_g)):
            for group in optimizer.param_groups:
                if rates_changed:  # the new base rate; a schedule scales it from the next step on
                    group["lr"] = rate
                    group.pop("initial_lr", None)
                if betas_changed:
                    group["betas"] = (train.beta1, train.beta2)

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
