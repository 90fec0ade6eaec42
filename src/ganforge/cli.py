"""The ``ganforge`` command: each subcommand is a thin typed layer over the Python API."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated, Literal, Optional

import typer
from rich.console import Console
from rich.table import Table

from ganforge.config.help import default_text, describe_channels_text, loss_preset_text
from ganforge.config.schema import (
    D_LOSS_REDUCTIONS,
    D_NORMS,
    DEVICES,
    LOSSES,
    LR_SCHEDULES,
    MODELS,
    ON_NAN,
    ORDERS,
    PRECISIONS,
    PRESETS,
    RunConfig,
    apply_overrides,
    flatten_keys,
)
from ganforge.config.validate import parse_threads, validate
from ganforge.errors import GanforgeError, filesystem_error
from ganforge.train.signals import interrupts_between_imports

app = typer.Typer(
    help="Train Generative Adversarial Networks (MLP GAN, DCGAN, 2-D toys) and sample from them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(width=None if sys.stdout.isatty() else 120)

MODEL = "Model"
DATA = "Data"
ALGORITHM = "Algorithm"
RUN = "Run"
SPEED = "Speed"
THREADS_HELP = ("Torch threads: a number, or auto: the cores no other process is busy on, re-checked every few "
                "seconds while training.")
EVALUATION = "Evaluation"


ModelName = Literal[MODELS]  # type: ignore[valid-type]
LossName = Literal[LOSSES]  # type: ignore[valid-type]
OrderName = Literal[ORDERS]  # type: ignore[valid-type]
ReductionName = Literal[D_LOSS_REDUCTIONS]  # type: ignore[valid-type]
DeviceName = Literal[DEVICES]  # type: ignore[valid-type]
OnNanName = Literal[ON_NAN]  # type: ignore[valid-type]
PrecisionName = Literal[PRECISIONS]  # type: ignore[valid-type]
DNormName = Literal[D_NORMS]  # type: ignore[valid-type]
ScheduleName = Literal[LR_SCHEDULES]  # type: ignore[valid-type]
PresetName = Literal[PRESETS]  # type: ignore[valid-type]


def _default(key: str) -> str:
    """The help's `[default: ...]` of a config key, computed from the schema and the presets."""
    return f"\\[default: {default_text(key)}]"


@app.command(no_args_is_help=True)
def train(
    out: Annotated[Optional[Path], typer.Option(help="Run folder to write (config, metrics.jsonl, samples/, checkpoints/).", rich_help_panel=RUN)] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue this run folder from its latest checkpoint; --steps is then the new total.", rich_help_panel=RUN)] = None,
    allow_data_change: Annotated[bool, typer.Option("--allow-data-change", help="With --resume: continue although the data changed since the checkpoint (another count, shape or content), with a warning and a data_changed event in metrics.jsonl, instead of refusing.", rich_help_panel=RUN)] = False,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML file of config keys (flat or in model/data/train sections); flags override it.", rich_help_panel=RUN)] = None,
    model: Annotated[Optional[ModelName], typer.Option(help=f"Architecture: mlp (the lectures' MLP GAN), dcgan, or toy (2-D points). {_default('model')}", rich_help_panel=MODEL)] = None,
    image_size: Annotated[Optional[int], typer.Option(help=f"Pixels per side; dcgan supports 28, 32, 64, 128. {_default('image_size')}", rich_help_panel=MODEL)] = None,
    channels: Annotated[Optional[int], typer.Option(help=f"1 (grayscale) or 3 (RGB). {_default('channels')}", rich_help_panel=MODEL)] = None,
    z_dim: Annotated[Optional[int], typer.Option(help=f"Latent size. {_default('z_dim')}", rich_help_panel=MODEL)] = None,
    width: Annotated[Optional[int], typer.Option(help=f"Base width: dcgan filters, mlp/toy hidden units. {_default('width')}", rich_help_panel=MODEL)] = None,
    conditional: Annotated[Optional[bool], typer.Option("--conditional/--no-conditional", help=f"Class-conditional GAN: labels embedded in G's input, a projection discriminator; needs labelled data (digits). Sample a class with 'ganforge sample RUN --class K'. {_default('conditional')}", rich_help_panel=MODEL)] = None,
    num_classes: Annotated[Optional[int], typer.Option(help=f"Classes of a conditional model. {_default('num_classes')}", rich_help_panel=MODEL)] = None,
    spectral_norm: Annotated[Optional[bool], typer.Option("--spectral-norm/--no-spectral-norm", help=f"Spectral normalization of D's layers (Miyato et al. 2018); D's BatchNorm is then dropped unless --d-norm says otherwise. {_default('spectral_norm')}", rich_help_panel=MODEL)] = None,
    d_norm: Annotated[Optional[DNormName], typer.Option(help=f"D's normalization layers: batch (the seed tables), layer (per sample) or none. {_default('d_norm')}", rich_help_panel=MODEL)] = None,
    depth: Annotated[Optional[int], typer.Option(help=f"Hidden layers of each toy network (PacGAN used 4 of 400 units). {_default('depth')}", rich_help_panel=MODEL)] = None,
    pack: Annotated[Optional[int], typer.Option(help=f"PacGAN packing: D judges this many samples at once, concatenated, all real or all fake, which penalizes dropped modes; 1 = off. {_default('pack')}", rich_help_panel=MODEL)] = None,
    components: Annotated[Optional[int], typer.Option(help=f"Toy: a discrete latent; z's last coordinate picks one of this many equally likely components, each with its own bias on G's first layer, so separate clusters get no points between them; 1 = off. {_default('components')}", rich_help_panel=MODEL)] = None,
    info_weight: Annotated[Optional[float], typer.Option(help=f"With --components: InfoGAN's lambda. D also predicts which component made each fake point, and G and D both descend lambda times that guess's cross-entropy, so the components part to separate clusters. {_default('info_weight')}", rich_help_panel=MODEL)] = None,
    data: Annotated[Optional[str], typer.Option(help=f"digits (embedded), ring8, grid25, mnist, fashion-mnist, cifar10, celeba (torchvision), or a folder of images / .npy / .npz path. {_default('data')}", rich_help_panel=DATA)] = None,
    data_root: Annotated[Optional[str], typer.Option(help=f"Download cache for torchvision data sets. {_default('data_root')}", rich_help_panel=DATA)] = None,
    steps: Annotated[Optional[int], typer.Option(help=f"Iterations to train in all; one step is --d-steps D updates then --g-steps G updates. {_default('steps')}", rich_help_panel=ALGORITHM)] = None,
    epochs: Annotated[Optional[float], typer.Option(help=f"Train for this many passes over the real data instead of --steps. {_default('epochs')}", rich_help_panel=ALGORITHM)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help=f"m, real and fake samples per update. {_default('batch_size')}", rich_help_panel=ALGORITHM)] = None,
    d_steps: Annotated[Optional[int], typer.Option(help=f"k, discriminator updates per step. {_default('d_steps')}", rich_help_panel=ALGORITHM)] = None,
    g_steps: Annotated[Optional[int], typer.Option(help=f"Generator updates per step. {_default('g_steps')}", rich_help_panel=ALGORITHM)] = None,
    order: Annotated[Optional[OrderName], typer.Option(help=f"Which network trains first in each step. {_default('order')}", rich_help_panel=ALGORITHM)] = None,
    reuse_fake: Annotated[Optional[bool], typer.Option("--reuse-fake/--no-reuse-fake", help=f"pytorch/examples' variant of the algorithm: the first G update of a step reuses the fake batch of D's last update instead of fresh noise (one G forward fewer a step). {_default('reuse_fake')}", rich_help_panel=ALGORITHM)] = None,
    loss: Annotated[Optional[LossName], typer.Option(help=f"The GAN loss. nonsaturating: G maximizes log D(G(z)); minimax: G minimizes log(1 - D(G(z))) (both with D's cross-entropy); lsgan: least squares; hinge: D's margin loss; wgan-gp: Wasserstein critic with gradient penalty (defaults to {loss_preset_text('wgan-gp')}); rpgan: the relativistic pairing loss, D's softplus of paired real-minus-fake logits (R3GAN, with --r1 and --r2). {_default('loss')}", rich_help_panel=ALGORITHM)] = None,
    d_loss_reduction: Annotated[Optional[ReductionName], typer.Option(help=f"D loss = the average of its real and fake terms, or their sum (2x the gradient). {_default('d_loss_reduction')}", rich_help_panel=ALGORITHM)] = None,
    lr_d: Annotated[Optional[float], typer.Option(help=f"Adam learning rate of D. {_default('lr_d')}", rich_help_panel=ALGORITHM)] = None,
    lr_g: Annotated[Optional[float], typer.Option(help=f"Adam learning rate of G. {_default('lr_g')}", rich_help_panel=ALGORITHM)] = None,
    beta1: Annotated[Optional[float], typer.Option(help=f"Adam beta1 of both optimizers. {_default('beta1')}", rich_help_panel=ALGORITHM)] = None,
    beta2: Annotated[Optional[float], typer.Option(help=f"Adam beta2 of both optimizers. {_default('beta2')}", rich_help_panel=ALGORITHM)] = None,
    ema: Annotated[Optional[float], typer.Option(help=f"Keep an exponential moving average of G's weights with this decay (e.g. 0.999), used for samples, previews and metrics. {_default('ema')}", rich_help_panel=ALGORITHM)] = None,
    diffaug: Annotated[Optional[bool], typer.Option("--diffaug/--no-diffaug", help=f"Differentiable augmentation (DiffAugment) of every image D sees, real and generated: for small data sets. {_default('diffaug')}", rich_help_panel=ALGORITHM)] = None,
    diffaug_policy: Annotated[Optional[str], typer.Option(help=f"Comma-separated DiffAugment transforms: color, translation, cutout. {_default('diffaug_policy')}", rich_help_panel=ALGORITHM)] = None,
    r1: Annotated[Optional[float], typer.Option(help=f"R1 penalty gamma/2 E||grad D(x)||^2 on real samples (Mescheder et al. 2018); 0 = off. {_default('r1')}", rich_help_panel=ALGORITHM)] = None,
    r2: Annotated[Optional[float], typer.Option(help=f"R2 penalty, the same on generated samples (R3GAN pairs R1 and R2 with --loss rpgan); 0 = off. {_default('r2')}", rich_help_panel=ALGORITHM)] = None,
    penalty_every: Annotated[Optional[int], typer.Option(help=f"Apply R1/R2 every N steps, weighted by N (lazy regularization). {_default('penalty_every')}", rich_help_panel=ALGORITHM)] = None,
    feature_matching: Annotated[Optional[float], typer.Option(help=f"Feature matching (Salimans et al. 2016): G also descends lambda times the squared distance between the fake and a real batch's mean features of D's last hidden layer, which evens out how often G draws each kind of sample; 0 = off. {_default('feature_matching')}", rich_help_panel=ALGORITHM)] = None,
    lr_schedule: Annotated[Optional[ScheduleName], typer.Option(help=f"Learning rates over the run: constant, or a linear or cosine decay to --lr-floor times the base rates, so late training sharpens samples. {_default('lr_schedule')}", rich_help_panel=ALGORITHM)] = None,
    lr_floor: Annotated[Optional[float], typer.Option(help=f"The fraction of the base learning rates a decaying schedule ends at. {_default('lr_floor')}", rich_help_panel=ALGORITHM)] = None,
    preset: Annotated[Optional[PresetName], typer.Option(help=f"auto: keys you leave unset take the tuned values of your model and data (ring8, grid25, digits, stacked-digits; README); lecture: the seed GAN exactly as the lectures give it. {_default('preset')}", rich_help_panel=ALGORITHM)] = None,
    seed: Annotated[Optional[int], typer.Option(help=f"Seed of the weights, noise and data order: same seed, same numbers. {_default('seed')}", rich_help_panel=RUN)] = None,
    device: Annotated[Optional[DeviceName], typer.Option(help=f"Where to train: auto is a CUDA GPU when there is one, else the CPU. {_default('device')}", rich_help_panel=RUN)] = None,
    log_every: Annotated[Optional[int], typer.Option(help=f"Steps between log rows (metrics.jsonl, progress bar). {_default('log_every')}", rich_help_panel=RUN)] = None,
    sample_every: Annotated[Optional[int], typer.Option(help=f"Steps between fixed-noise sample grids; 0 = only at the end. {_default('sample_every')}", rich_help_panel=RUN)] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help=f"Steps between checkpoints; 0 = only at the end. {_default('checkpoint_every')}", rich_help_panel=RUN)] = None,
    keep_checkpoints: Annotated[Optional[int], typer.Option("--keep-checkpoints", "--keep", help=f"Most recent checkpoints kept; 0 = all. {_default('keep_checkpoints')}", rich_help_panel=RUN)] = None,
    on_nan: Annotated[Optional[OnNanName], typer.Option(help=f"When a loss or weight becomes NaN/inf: stop (the last good checkpoint stays), or rollback to it with both learning rates halved. {_default('on_nan')}", rich_help_panel=RUN)] = None,
    max_rollbacks: Annotated[Optional[int], typer.Option(help=f"With --on-nan rollback, rollbacks allowed before giving up. {_default('max_rollbacks')}", rich_help_panel=RUN)] = None,
    eval_every: Annotated[Optional[int], typer.Option(help=f"Steps between evaluations (metrics.jsonl, eval.json, checkpoints/best); 0 = never. {_default('eval_every')}", rich_help_panel=EVALUATION)] = None,
    eval_metrics: Annotated[Optional[str], typer.Option(help=f"Comma-separated metrics to compute. {_default('eval_metrics')}", rich_help_panel=EVALUATION)] = None,
    eval_samples: Annotated[Optional[int], typer.Option(help=f"Generated samples per evaluation. {_default('eval_samples')}", rich_help_panel=EVALUATION)] = None,
    feature_extractor: Annotated[Optional[str], typer.Option(help=f"classifier (digits), inception (weights on disk) or auto. {_default('feature_extractor')}", rich_help_panel=EVALUATION)] = None,
    inception_weights: Annotated[Optional[str], typer.Option(help=f"With --feature-extractor inception: the FID Inception-v3 weights file (pt_inception-2015-12-05-6726825d.pth). {_default('inception_weights')}", rich_help_panel=EVALUATION)] = None,
    best_metric: Annotated[Optional[str], typer.Option(help=f"The metric that picks checkpoints/best. {_default('best_metric')}", rich_help_panel=EVALUATION)] = None,
    precision: Annotated[Optional[PrecisionName], typer.Option(help=f"Arithmetic of the forward passes: fp32, bf16 autocast (CPU and GPU), fp16 autocast with loss scaling (CUDA), or auto: bf16 where the CPU (AVX-512 BF16, AMX) or GPU computes it natively, else fp32. {_default('precision')}", rich_help_panel=SPEED)] = None,
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help=f"channels_last memory for convolutions (faster kernels, same results up to rounding). {_default('channels_last')}", rich_help_panel=SPEED)] = None,
    compile: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help=f"torch.compile both networks: costs 20-80 s at start-up; on a 2-core CPU no faster (see BENCHMARKS.md), meant for GPUs. {_default('compile')}", rich_help_panel=SPEED)] = None,
    sync_batch_norm: Annotated[Optional[bool], typer.Option("--sync-batch-norm/--no-sync-batch-norm", help=f"Under torchrun on GPUs: BatchNorm normalizes with the statistics of the global batch (SyncBatchNorm), not each process's own. {_default('sync_batch_norm')}", rich_help_panel=SPEED)] = None,
    tensorboard: Annotated[Optional[bool], typer.Option("--tensorboard/--no-tensorboard", help=f"TensorBoard logs in RUN/tensorboard (tensorboard --logdir RUN). {_default('tensorboard')}", rich_help_panel=RUN)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or log lines.", rich_help_panel=RUN)] = False,
    threads: Annotated[str, typer.Option(help=THREADS_HELP, rich_help_panel=SPEED)] = "auto",
) -> None:
    """Train a GAN and write a run folder you can resume and sample from.

    One step is one iteration of the lectures' algorithm: K discriminator
    updates (the D loss is the average of its real and fake terms unless
    --d-loss-reduction sum), then G generator updates.
    """
    flags = {key: value for key, value in locals().items()
             if key not in ("out", "resume", "allow_data_change", "config", "quiet", "threads")}
    if quiet:
        logging.getLogger("ganforge").setLevel(logging.WARNING)
    from ganforge.config.io import load_yaml  # imported after locals() is read: the flags are the only locals
    overrides = {**(flatten_keys(load_yaml(config)) if config else {}), **{k: v for k, v in flags.items() if v is not None}}
    from ganforge import api
    from ganforge.train import distributed

    if resume is not None:
        if out is not None and out != resume:
            raise GanforgeError("--out and --resume name different folders: a resumed run stays in its own folder")
        result = api.resume(resume, **overrides, show_progress=not quiet, allow_data_change=allow_data_change,
                            threads=threads)
    else:
        if allow_data_change:
            raise GanforgeError("--allow-data-change applies to --resume RUN: a new run has no earlier data to differ from")
        if out is None:
            raise GanforgeError("missing --out: name the run folder to write, e.g. --out runs/digits")
        result = api.train(out=out, show_progress=not quiet, threads=threads, **overrides)
    if distributed.is_main():  # under torchrun, rank 0 speaks for all
        console.print(f"run folder: {result.run_dir}  (sample from it: ganforge sample {result.run_dir} -n 64 --out grid.png)")
    if result.stopped_by:
        raise typer.Exit(130)


@app.command(no_args_is_help=True)
def sample(
    run: Annotated[Path, typer.Argument(help="A run folder (its latest checkpoint) or one checkpoint folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="grid.png (one grid), samples.npy (N x C x H x W in [-1, 1], or N x 2 points), or folder/ (one PNG each).")],
    n: Annotated[int, typer.Option("-n", help="Number of samples.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the noise: the same seed gives the same samples.")] = 0,
    class_index: Annotated[Optional[int], typer.Option("--class", help="For a conditional run: the class to generate. \\[default: every class in turn]")] = None,
    device: Annotated[DeviceName, typer.Option(help="Where to run the generator.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Into a --out folder that holds sample images: delete them first.")] = False,
    threads: Annotated[str, typer.Option(help=THREADS_HELP)] = "auto",
) -> None:
    """Draw samples from a trained generator."""
    from ganforge import api
    from ganforge.train.threads import ThreadBudget

    generator = api.load(run, device=device)
    with ThreadBudget(parse_threads(threads)):
        written = api.save_samples(generator, out, n, seed=seed, class_index=class_index, overwrite=overwrite)
    console.print(f"wrote {n} samples from step {generator.step} to {written}")


@app.command(no_args_is_help=True)
def interpolate(
    run: Annotated[Path, typer.Argument(help="A run folder or one checkpoint folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG grid to write.")] = Path("interpolation.png"),
    rows: Annotated[int, typer.Option(help="Walks, one per row.")] = 8,
    steps: Annotated[int, typer.Option(help="Images per walk, end points included.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the end points.")] = 0,
    device: Annotated[DeviceName, typer.Option(help="Where to run the generator.")] = "auto",
) -> None:
    """Walk the latent space between random points: one row per walk."""
    from ganforge import api

    generator = api.load(run, device=device)
    written = api.write_samples(generator.interpolate(rows, steps, seed), out, columns=steps)
    console.print(f"wrote {rows} walks of {steps} images to {written}")


@app.command()
def describe(
    model: Annotated[ModelName, typer.Option(help="Architecture.")] = "dcgan",
    image_size: Annotated[int, typer.Option(help="Pixels per side (ignored by toy).")] = 64,
    channels: Annotated[Optional[int], typer.Option(help=f"1 or 3 (ignored by toy). \\[default: {describe_channels_text()}]")] = None,
    z_dim: Annotated[Optional[int], typer.Option(help=f"Latent size. {_default('z_dim')}")] = None,
    width: Annotated[Optional[int], typer.Option(help=f"Base width. {_default('width')}")] = None,
    components: Annotated[Optional[int], typer.Option(help=f"Toy: latent components. {_default('components')}")] = None,
    info_weight: Annotated[Optional[float], typer.Option(help=f"InfoGAN's lambda: D gets a component head. {_default('info_weight')}")] = None,
) -> None:
    """Print each layer with its output shape, the parameter counts of G and D, and the FLOPs of one forward."""
    from ganforge.models.describe import describe as describe_model

    run_config = apply_overrides(RunConfig(), {"model": model, "image_size": image_size, "channels": channels,
                                               "z_dim": z_dim, "width": width, "components": components or 1,
                                               "info_weight": info_weight})  # no data preset: unset is 1
    validate(run_config)
    config = run_config.model
    if model == "toy":
        config.image_size = config.channels = None
    for network in describe_model(config):
        table = Table(title=f"{network.name} (input {_shape(network.input_shape)})", title_justify="left")
        for column in ("#", "layer", "then", "output", "parameters", "FLOPs"):
            table.add_column(column, justify="right" if column in ("#", "parameters", "FLOPs") else "left")
        for index, row in enumerate(network.rows, 1):
            table.add_row(str(index), row.layer, row.extras, _shape(row.output_shape), f"{row.parameters:,}", f"{row.flops:,}")
        table.add_row("", "total", "", "", f"{network.parameters:,}", f"{network.flops:,}", style="bold")
        console.print(table)
    console.print("FLOPs: one sample's forward pass, multiply-add = 2, convolutions and matrix products only.")


@app.command(no_args_is_help=True)
def report(
    runs: Annotated[list[Path], typer.Argument(help="One run folder, or several to overlay their curves for comparison, or one experiment folder (ganforge experiment --out).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="HTML file to write. [default: RUN/report.html; several runs: FIRST_RUN/comparison.html]")] = None,
) -> None:
    """Write a self-contained HTML page: config, loss curves, D outputs, sample timeline, evaluation, interpolation."""
    from ganforge.api import write_report
    from ganforge.runs.checkpoint import list_checkpoints, read_checkpoint
    from ganforge.runs.metrics_log import read_metrics
    from ganforge.train.diagnostics import failure_signs

    written = write_report(runs, out)
    for run in runs:
        for message in failure_signs(read_metrics(run), read_checkpoint(run).config if list_checkpoints(run) else None):
            Console(stderr=True).print(f"[yellow]warning:[/] {run}: {message}", highlight=False, soft_wrap=True)
    console.print(f"wrote {written}")


@app.command(name="eval", no_args_is_help=True)
def evaluate_run(
    run: Annotated[Path, typer.Argument(help="A run folder (its latest checkpoint) or one checkpoint folder.")],
    metrics: Annotated[Optional[str], typer.Option(help="Comma-separated metrics, e.g. fid,kid,precision,recall. \\[default: all that apply to the data]")] = None,
    n: Annotated[Optional[int], typer.Option("-n", "--num-samples", help="Generated samples. \\[default: 2,500 points; 10,000 images or the real data's size; 26,000 for stacked-digits modes]")] = None,
    feature_extractor: Annotated[str, typer.Option(help="classifier (trained on the digits, no download), inception (Inception-v3 weights on disk) or auto (classifier for digits).")] = "auto",
    inception_weights: Annotated[Optional[Path], typer.Option(help="The Inception-v3 FID weights file (pt_inception-2015-12-05-6726825d.pth).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated and real samples drawn.")] = 0,
    device: Annotated[DeviceName, typer.Option(help="Where to run the networks.")] = "auto",
    threads: Annotated[str, typer.Option(help=THREADS_HELP)] = "auto",
) -> None:
    """Measure sample quality: each metric beside its real-data floor; writes eval.json in the run folder."""
    from ganforge import api
    from ganforge.evaluation.evaluator import evaluate
    from ganforge.evaluation.results import format_results, write_results
    from ganforge.train.threads import ThreadBudget

    generator = api.load(run, device=device)
    with ThreadBudget(parse_threads(threads)):
        results = evaluate(generator, metrics, n, feature_extractor, seed, inception_weights=inception_weights)
    console.print(format_results(results), highlight=False)
    checkpoint_folder = generator.checkpoint
    assert checkpoint_folder is not None  # loaded from a checkpoint folder
    run_dir = checkpoint_folder.parent.parent if checkpoint_folder.parent.name == "checkpoints" else checkpoint_folder
    try:
        console.print(f"wrote {write_results(results, run_dir)}")
    except OSError as error:
        raise GanforgeError(f"the results above are not saved: {filesystem_error(error)}") from None


@app.command(no_args_is_help=True)
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders to compare.")],
    all_config: Annotated[bool, typer.Option("--all", help="Also list the config keys that are the same in every run.")] = False,
) -> None:
    """Print runs' configs and metrics side by side: the config keys that differ first, then eval.json and the last log row."""
    from ganforge.report.compare import compare_runs

    comparison = compare_runs(runs)
    table = Table(title_justify="left")
    table.add_column("")
    for run in comparison.runs:
        table.add_column(run, justify="right")
    groups = [("config (differs)", comparison.config_differs), ("metrics", comparison.metrics)]
    if all_config:
        groups.insert(1, ("config (same)", comparison.config_same))
    for title, rows in groups:
        table.add_row(f"[bold]{title}[/]", *[""] * len(comparison.runs))
        for key, values in rows:
            table.add_row(key, *(_cell(value) for value in values))
    console.print(table)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command(no_args_is_help=True)
def animate(
    run: Annotated[Path, typer.Argument(help="A run folder with sample grids (samples/step_*.png).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="progress.gif, or progress.mp4 where imageio's ffmpeg is installed.")] = Path("progress.gif"),
    fps: Annotated[int, typer.Option(help="Frames (saved grids) per second.")] = 4,
) -> None:
    """Animate the fixed-noise sample grid over training, one frame per saved grid."""
    from ganforge.report.animate import animate as make_animation

    console.print(f"wrote {make_animation(run, out, fps)}")


@app.command(no_args_is_help=True)
def experiment(
    spec: Annotated[Path, typer.Argument(help="YAML spec: config keys (flat or in sections), 'vary:' (config key -> list of values), 'seeds:' (a count or a list), optional 'metrics:'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Experiment folder: runs/<variant>/seed-<s>/, results.jsonl, summary.json, table.md.")],
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", help="Runs trained at once, each in its own process; 1 trains them one after another in this process. \\[default: one per CPU core, at most the runs left; one at a time on a GPU]")] = None,
    threads: Annotated[str, typer.Option(help="Torch threads per run: a number, or auto: its share of the cores (CPU cores / jobs, at most $OMP_NUM_THREADS), fewer while other processes keep cores busy.")] = "auto",
) -> None:
    """Train every combination of the spec's varied config keys with each seed, evaluate every run, and write a
    table of the mean and spread over seeds (ganforge report OUT draws it). Run it again to continue after an
    interruption: finished runs are kept, interrupted ones resume from their last checkpoint."""
    from ganforge import api

    result = api.run_experiment(spec, out, jobs=jobs, threads=parse_threads(threads))
    console.print(result.table.read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {result.table}, {result.results} and {result.summary}; "
                  f"charts with error bars: ganforge report {result.out_dir}", highlight=False, soft_wrap=True)
    if result.stopped:
        console.print(f"stopped: continue with: ganforge experiment {spec} --out {out}", highlight=False,
                      soft_wrap=True)
        raise typer.Exit(130)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _distributed() -> ModuleType | None:
    """ganforge.train.distributed where it can matter: under torchrun, or once a command has imported it.

    It imports torch, which the light commands do without. A process without torchrun's WORLD_SIZE and
    TORCHELASTIC_ERROR_FILE is the only one: it is rank 0, has no rank to name and no error file to write.
    """
    if "ganforge.train.distributed" in sys.modules or "WORLD_SIZE" in os.environ or "TORCHELASTIC_ERROR_FILE" in os.environ:
        from ganforge.train import distributed

        return distributed
    return None


class _LogLineFormatter(logging.Formatter):
    """Log records as the CLI shows them: "warning: ..." for warnings, plain lines for information."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return f"warning: {message}" if record.levelno >= logging.WARNING else message


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2.

    Under torchrun the processes other than rank 0 print errors only, each naming its rank.
    """
    distributed = _distributed()
    is_main = distributed is None or distributed.is_main()
    handler = logging.StreamHandler()
    handler.setFormatter(_LogLineFormatter())
    logging.basicConfig(handlers=[handler], level=logging.WARNING if is_main else logging.ERROR)
    if is_main:  # ganforge's information lines too (e.g. how many images a folder gave); train --quiet hides them
        logging.getLogger("ganforge").setLevel(logging.INFO)
    try:
        with interrupts_between_imports():
            app()
    except GanforgeError as error:
        distributed = _distributed()
        if distributed is not None:
            distributed.record_error(error)  # torchrun's summary of the failed job then shows this message
        process = distributed.process_name() if distributed is not None else ""
        Console(stderr=True).print(f"[bold red]error:[/] {process}{error}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as error:  # a file-system problem the command did not name itself: still one line
        Console(stderr=True).print(f"[bold red]error:[/] {filesystem_error(error)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:
        _say_interrupted(interrupt, is_main)
        sys.exit(130)
    except SystemExit as exit:  # typer ends a command that a KeyboardInterrupt stopped with exit status 130
        interrupt = _interruption(exit)
        if interrupt is not None:
            _say_interrupted(interrupt, is_main)
        raise


def _interruption(error: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt that caused ``error`` (typer's exit 130 after a Ctrl-C), if one did."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, KeyboardInterrupt):
        cause = cause.__cause__ or cause.__context__
    return cause


def _say_interrupted(interrupt: KeyboardInterrupt, is_main: bool) -> None:
    """One line, never a traceback: what the interrupted command says it left, or just that it stopped."""
    if is_main:
        Console(stderr=True).print(str(interrupt) or "interrupted", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
