"""Named presets: the values that keys left unset take, in one table each."""

from __future__ import annotations

# Per model, the training values of keys left unset: the seed models use DCGAN's
# Adam settings; the 2-D toy needs larger batches, a faster rate and more steps
# to cover every mode of ring8 (steps apply only when --epochs is not given).
TRAINING_PRESETS: dict[str, dict[str, int | float | str]] = {
    "mlp": {"steps": 2000, "batch_size": 64, "lr_d": 2e-4, "lr_g": 2e-4},
    "dcgan": {"steps": 2000, "batch_size": 64, "lr_d": 2e-4, "lr_g": 2e-4},
    "toy": {"steps": 3000, "batch_size": 512, "lr_d": 1e-3, "lr_g": 1e-3},
}
# Per loss, the algorithm keys left unset: WGAN-GP's critic trains 5 times per G step with Adam(0, 0.9)
# (Gulrajani et al. 2017, Algorithm 1); the other losses use the lectures' k = 1 and DCGAN's Adam(0.5, 0.999).
LOSS_PRESETS: dict[str, dict[str, int | float | str]] = {
    "wgan-gp": {"d_steps": 5, "beta1": 0.0, "beta2": 0.9},
}
# The lectures' algorithm where nothing else decides: k = 1, DCGAN's Adam(0.5, 0.999), no penalty, constant rates.
DEFAULT_ALGORITHM: dict[str, int | float | str] = {"loss": "nonsaturating", "d_steps": 1, "beta1": 0.5,
                                                   "beta2": 0.999, "r1": 0.0, "r2": 0.0, "penalty_every": 1,
                                                   "feature_matching": 0.0, "precision": "fp32",
                                                   "lr_schedule": "constant", "lr_floor": 0.0}
# Per model family, the latent size and base width left unset: the lecture's 50/32 for DCGAN at 28x28,
# DCGAN's 100/64 at the other sizes; the lectures' MLP sizes; a 2-D latent for the 2-D toy.
MODEL_PRESETS: dict[str, dict[int | None, dict[str, int]]] = {  # toy: also its hidden layers
    "mlp": {None: {"z_dim": 100, "width": 256}},
    "dcgan": {28: {"z_dim": 50, "width": 32}, None: {"z_dim": 100, "width": 64}},
    "toy": {None: {"z_dim": 2, "width": 128, "depth": 3}},
}
DCGAN_SIZES = (28, 32, 64, 128)  # image sizes with a DCGAN layer table
# The channels `ganforge describe` draws a model with when --channels is not given (it has no data to take
# them from): the lectures' 28x28 tables are MNIST's grayscale digits, the other sizes RGB images.
DESCRIBE_CHANNELS: dict[int | None, int] = {28: 1, None: 3}

# Each random stream of a run is seeded with the run's seed plus its own offset, so the streams are independent.
DATA_SEED_OFFSET = 1  # the order and draws of the real data
PREVIEW_SEED_OFFSET = 2  # the fixed noise of the preview grids
AUGMENT_SEED_OFFSET = 3  # DiffAugment's transforms


def model_preset(model: str, image_size: int | None) -> dict[str, int]:
    """The latent size and base width a model family takes at an image size when they are not set."""
    table = MODEL_PRESETS[model]
    return table.get(image_size, table[None])


def describe_channels(image_size: int | None) -> int:
    """The channels ``ganforge describe`` assumes at an image size when they are not given."""
    return DESCRIBE_CHANNELS.get(image_size, DESCRIBE_CHANNELS[None])

# Per (model, data), the tuned values of keys left unset under ``preset: auto`` (the default for new runs),
# chosen by benchmarks/quality.py (BENCHMARKS.md, "Sample quality of the defaults"); ``preset: lecture``
# skips them. Keys set by the user always win.
DATA_PRESETS: dict[tuple[str, str], dict[str, int | float | str]] = {
    # ring8 and grid25 (std 0.01 and 0.05): the toy oscillates around the modes at a constant rate, so its
    # points smear between them; 9,000 steps (under a minute on 2 cores) with the rates decaying linearly to
    # 5% and samples from the average of G's weights (EMA) settle on the modes. On ring8, packing 2 samples
    # (PacGAN2) balances the modes (reverse KL 0.001-0.005 against 0.008-0.15 without); on grid25 it blurs
    # them (HQ 30-44%), so grid25 trains unpacked. Chosen on seeds 1-3 (BENCHMARKS.md has the runs).
    # On ring8 the points left between modes (2-5%, where G's one latent region turns into the next) go with a
    # discrete latent of 8 components (ganforge.models.components), z's third coordinate choosing one: HQ 99.2-99.8%
    # against 95.1-96.5% on seeds 0-3.
    ("toy", "ring8"): {"steps": 9_000, "ema": 0.999, "lr_schedule": "linear", "lr_floor": 0.05, "pack": 2,
                       "components": 8, "z_dim": 3},
    # On grid25, 25 components cover more modes more evenly (seeds 0, 2, 3: 24, 25, 25 modes and reverse KL 0.05-0.13,
    # against 23, 18, 25 and 0.05-0.62 without), but on 4 seeds of 10 two of them settled on one mode and left another
    # empty. InfoGAN's term (info_weight, lambda 0.3) keeps them apart: 25/25 modes on each of seeds 0-9, HQ 99.3-99.9%
    # (lambda 1 lost modes on 2 seeds of 10; lambda 0.3 and 3 covered both). Its second head costs about 15% more per
    # step, which batches of 256 (as good: 25/25 and HQ 99.5-99.9% on seeds 0-3) more than pay for. Rates decaying to
    # 10% rather than 5% let the last component settle on its mode: 25/25 on all 10 seeds of benchmarks/quality.py
    # (at 5%, seed 1 kept a component beside its mode: 24 modes, HQ 92.9%).
    ("toy", "grid25"): {"steps": 9_000, "ema": 0.999, "lr_schedule": "linear", "lr_floor": 0.1, "components": 25,
                        "z_dim": 3, "info_weight": 0.3, "batch_size": 256},
    # digits: R3GAN's recipe (Huang et al. 2024) on the lectures' DCGAN: the relativistic pairing loss with
    # zero-centred penalties on real (R1) and generated (R2) samples, lazily every 4 steps as StyleGAN2 does.
    # Classifier FID 0.63-0.69 against the real floor 0.53 (the lectures' loss: 1.26-1.34) in about 120 s.
    ("dcgan", "digits"): {"loss": "rpgan", "r1": 0.1, "r2": 0.1, "penalty_every": 4},
    # stacked digits (1,000 modes): the same recipe, trained longer with G's weight average (EMA) and rates 4x
    # DCGAN's, which even out each channel's digit classes sooner (seed 0, KL at 8,000 steps: 0.063 at 2e-4,
    # 0.045 at 8e-4). D judges each sample on its own and does not see that mix; feature matching at lambda 100
    # gives G the batch's mean D features to match, and evens the classes out sooner (seed 0, KL at 4,000 /
    # 8,000 / 13,000 steps: 0.056 / 0.038 / 0.034 against 0.080 / 0.045 / 0.040). At the lectures' width 32 the
    # KL stops at 0.034-0.037 after about 10,000 steps: what is left is G's unclear digits, which the classifier
    # reads as other digits. Width 48 draws clearer ones and keeps falling to about 0.028 by 12,000 steps
    # (width 64: no lower); 16,000 steps at width 48 give KL 0.0284 (0.0255-0.0304, seeds 0-2) in 764-860 s on
    # 2 cores of an AMD EPYC with AVX-512 BF16, against 0.035-0.037 for width 32 at 13,000 steps. bf16
    # autocast, where the CPU computes it natively (precision auto), gives the same KL in 0.55-0.9 of fp32's step.
    # On the slower Intel host of BENCHMARKS.md the step is about twice as long: `--width 32 --steps 13000`
    # is the recipe that fits 15 minutes there (KL 0.035-0.037).
    ("dcgan", "stacked-digits"): {"loss": "rpgan", "r1": 0.1, "r2": 0.1, "penalty_every": 4, "steps": 16_000,
                                  "width": 48,
                                  "ema": 0.999, "lr_d": 8e-4, "lr_g": 8e-4, "feature_matching": 100.0,
                                  "precision": "auto"},
}
