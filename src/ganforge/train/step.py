"""One step of the lectures' algorithm (SPEC.md sections 1-2): k updates of D, then g updates of G.

Each D update takes a fresh real batch and fresh noise and descends D's loss (for the seed losses,
-(E[log D(x)] + E[log(1 - D(G(z)))])); each G update takes fresh noise and descends G's loss through a
frozen D. Two Adam optimizers, each owning only its network's parameters, so one phase never moves
the other network. ``--order g-first`` swaps the phases. ``--reuse-fake`` is pytorch/examples' variant:
the first G update takes the fake batch D's last update judged, G's graph kept, instead of a new one.
``--feature-matching`` adds to G's loss the distance between the fake and a real batch's mean D features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ganforge.algorithm.feature_matching import feature_matching_loss
from ganforge.algorithm.information import information_loss
from ganforge.algorithm.penalties import gradient_penalty, zero_centred_penalty

if TYPE_CHECKING:
    from ganforge.train.trainer import Trainer


def train_step(trainer: Trainer) -> None:
    """One iteration of the algorithm: the two phases in the configured order."""
    trainer.step += 1
    trainer.schedule_learning_rates()
    if trainer.config.train.order == "d-first":
        discriminator_phase(trainer, trainer.step)
        generator_phase(trainer, trainer.step)
    else:
        generator_phase(trainer, trainer.step)
        discriminator_phase(trainer, trainer.step)


def discriminator_phase(trainer: Trainer, step: int) -> None:
    """k updates of D: real batch -> "real", G(fresh noise) -> "fake" by the loss's targets; G is not updated."""
    train = trainer.config.train
    batch_size = train.batch_size
    for update in range(train.d_steps):
        real, real_labels = trainer.real_batch()
        fake_labels = trainer.sample_labels(batch_size)
        keep = train.reuse_fake and update == train.d_steps - 1  # G's graph, for the G update that follows
        noise = trainer.sample_noise(batch_size)
        with torch.set_grad_enabled(keep), trainer.autocast():
            fake = trainer.run_generator(noise, fake_labels)
        if keep:
            trainer.reusable_fake = (fake, fake_labels, noise)
            fake = fake.detach()
        real_scores, fake_scores, component_logits = trainer.judge_both(real, fake, real_labels, fake_labels)
        loss = trainer.loss.discriminator(real_scores, fake_scores, trainer.d_loss_reduction)
        statistics = {}
        if component_logits is not None:  # InfoGAN: Q, D's second head, learns which component made each fake
            information = information_loss(component_logits, trainer.components_of(noise))
            loss = loss + trainer.info_weight * information
            statistics["info_loss"] = information
        if trainer.loss.gradient_penalty:
            penalty = gradient_penalty(lambda between: trainer.judge(between, real_labels), real, fake, trainer.noise)
            loss = loss + penalty
            statistics["gradient_penalty"] = penalty
        for name, samples, labels, gamma in trainer.penalties_due(step, real, real_labels, fake, fake_labels):
            penalty = zero_centred_penalty(lambda inputs: trainer.judge(inputs, labels), samples, gamma)
            loss = loss + penalty
            statistics[name] = penalty
        trainer.opt_d.zero_grad(set_to_none=True)
        trainer.scaler_d.scale(loss).backward()
        trainer.scaler_d.unscale_(trainer.opt_d)
        if trainer.loss.outputs_probability:
            real_scores, fake_scores = torch.sigmoid(real_scores), torch.sigmoid(fake_scores)
        trainer.meter.add(step, d_loss=loss, d_real=real_scores.mean(), d_fake=fake_scores.mean(),
                          d_grad_norm=gradient_norm(trainer.discriminator_parameters), **statistics)
        trainer.scaler_d.step(trainer.opt_d)
        trainer.scaler_d.update()


def generator_phase(trainer: Trainer, step: int) -> None:
    """g updates of G through a frozen D (D's parameters get no gradient and do not move)."""
    batch_size = trainer.config.train.batch_size
    set_requires_grad(trainer.discriminator_parameters, False)
    try:
        for _ in range(trainer.config.train.g_steps):
            if trainer.reusable_fake is not None:  # --reuse-fake: D's last fake batch, graph and all
                (fake, labels, noise), trainer.reusable_fake = trainer.reusable_fake, None
            else:
                labels = trainer.sample_labels(batch_size)
                noise = trainer.sample_noise(batch_size)
                with trainer.autocast():
                    fake = trainer.run_generator(noise, labels)
            matching = trainer.feature_matching > 0
            fake_scores, component_logits, fake_features = trainer.judge_with_heads(
                fake, labels, trainer.frozen_discriminator, features=matching)
            if trainer.loss.pairs_real or matching:  # a real batch: rpgan's partners, feature matching's reference
                real, real_labels = trainer.real_batch()
                with torch.no_grad():
                    real_scores, _, real_features = trainer.judge_with_heads(
                        real, real_labels, trainer.frozen_discriminator, components=False, features=matching)
            if trainer.loss.pairs_real:  # the relativistic loss judges each fake against a real partner
                loss = trainer.loss.generator(fake_scores, real_scores)
            else:
                loss = trainer.loss.generator(fake_scores)
            statistics = {}
            if component_logits is not None:  # InfoGAN: G makes each component easy to tell from the others
                loss = loss + trainer.info_weight * information_loss(component_logits, trainer.components_of(noise))
            if matching:  # the fake batch's mean features pulled to the real batch's
                distance = feature_matching_loss(fake_features, real_features)
                loss = loss + trainer.feature_matching * distance
                statistics["feature_matching"] = distance
            trainer.opt_g.zero_grad(set_to_none=True)
            trainer.scaler_g.scale(loss).backward()
            trainer.scaler_g.unscale_(trainer.opt_g)
            trainer.meter.add(step, g_loss=loss, g_grad_norm=gradient_norm(trainer.generator_parameters), **statistics)
            trainer.scaler_g.step(trainer.opt_g)
            trainer.scaler_g.update()
            if trainer.update_average is not None:
                trainer.update_average()
    finally:
        set_requires_grad(trainer.discriminator_parameters, True)


def gradient_norm(parameters: list[torch.nn.Parameter]) -> Tensor:
    """The L2 norm of all of a network's gradients, as a device scalar (no host sync)."""
    return torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])


def set_requires_grad(parameters: list[torch.nn.Parameter], flag: bool) -> None:
    """Freeze (False) or unfreeze a network's parameters, as ``Module.requires_grad_`` does."""
    for parameter in parameters:
        parameter.requires_grad_(flag)
