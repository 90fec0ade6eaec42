"""The training algorithm: phases, step counts, determinism, exact resume, run folder, divergence."""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import pytest
import torch
import yaml

import ganforge
from ganforge.config.resolve import resolve_config, total_steps
from ganforge.config.schema import RunConfig, apply_overrides
from ganforge.data import load_data
from ganforge.errors import TrainingDivergedError
from ganforge.runs.checkpoint import list_checkpoints, read_checkpoint
from ganforge.train import loop
from ganforge.train import step as step_module
from ganforge.train.monitor import Meter
from ganforge.train.step import discriminator_phase, generator_phase, train_step
from ganforge.train.trainer import Trainer


def make_trainer(keys: dict) -> Trainer:
    config = apply_overrides(RunConfig(), keys)
    data = load_data(config.data, config.model.image_size, config.model.channels, config.train.seed, torch.device("cpu"))
    return Trainer(resolve_config(config, data), data, torch.device("cpu"))


def parameters(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def all_equal(first: list[torch.Tensor], second: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_generator_phase_moves_only_the_generator(tiny_dcgan):
    trainer = make_trainer(tiny_dcgan)
    g_before, d_before = parameters(trainer.generator), parameters(trainer.discriminator)
    generator_phase(trainer, 1)
    assert all_equal(d_before, parameters(trainer.discriminator))
    assert not all_equal(g_before, parameters(trainer.generator))
    assert all(p.requires_grad for p in trainer.discriminator.parameters()), "D is unfrozen after the G phase"


def test_discriminator_phase_moves_only_the_discriminator(tiny_dcgan):
    trainer = make_trainer(tiny_dcgan)
    g_before, d_before = parameters(trainer.generator), parameters(trainer.discriminator)
    discriminator_phase(trainer, 1)
    assert all_equal(g_before, parameters(trainer.generator))
    assert not all_equal(d_before, parameters(trainer.discriminator))
    assert all(p.grad is None for p in trainer.generator.parameters()), "fakes for D are made without G's graph"


def test_each_optimizer_owns_only_its_network(tiny_toy):
    trainer = make_trainer(tiny_toy)
    g_ids = {id(p) for p in trainer.generator.parameters()}
    d_ids = {id(p) for p in trainer.discriminator.parameters()}
    assert {id(p) for group in trainer.opt_g.param_groups for p in group["params"]} == g_ids
    assert {id(p) for group in trainer.opt_d.param_groups for p in group["params"]} == d_ids
    assert trainer.opt_d.param_groups[0]["lr"] == 1e-3 and trainer.opt_d.param_groups[0]["betas"] == (0.5, 0.999)


@pytest.mark.parametrize(("d_steps", "g_steps", "order"), [(1, 1, "d-first"), (3, 2, "d-first"), (2, 3, "g-first")])
def test_step_runs_k_discriminator_and_g_generator_updates_in_order(tiny_toy, d_steps, g_steps, order):
    trainer = make_trainer({**tiny_toy, "d_steps": d_steps, "g_steps": g_steps, "order": order})
    calls: list[str] = []
    for name, optimizer in (("D", trainer.opt_d), ("G", trainer.opt_g)):
        original = optimizer.step
        optimizer.step = lambda *args, _original=original, _name=name, **kwargs: (calls.append(_name), _original(*args, **kwargs))[1]
    batches: list[int] = []
    next_batch = trainer.data.next_batch
    trainer.data.next_batch = lambda size: (batches.append(size), next_batch(size))[1]
    train_step(trainer)
    train_step(trainer)
    one_step = ["D"] * d_steps + ["G"] * g_steps if order == "d-first" else ["G"] * g_steps + ["D"] * d_steps
    assert calls == one_step * 2
    assert batches == [32] * (2 * d_steps), "each D update takes a fresh real batch; G updates take none"


def test_epochs_count_discriminator_batches(tiny_dcgan):
    config = apply_overrides(RunConfig(), {**tiny_dcgan, "epochs": 2, "d_steps": 2})
    data = load_data(config.data, 28, 1, 0, torch.device("cpu"))
    config = resolve_config(config, data)
    assert total_steps(config, data) == round(2 * (1797 // 8) / 2)


def run_metrics(run_dir) -> list[dict]:
    """The statistic rows, without the timings (event rows are left out)."""
    rows = [row for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "event" not in row]
    for row in rows:
        row.pop("seconds_per_step")
        row.pop("images_per_second")
    return rows


def test_same_seed_same_numbers(tmp_path, tiny_dcgan):
    first = ganforge.train(out=tmp_path / "a", steps=4, show_progress=False, **tiny_dcgan)
    second = ganforge.train(out=tmp_path / "b", steps=4, show_progress=False, **tiny_dcgan)
    other = ganforge.train(out=tmp_path / "c", steps=4, seed=1, show_progress=False, **tiny_dcgan)
    a, b, c = (read_checkpoint(r.run_dir) for r in (first, second, other))
    assert all(torch.equal(a.generator[k], b.generator[k]) for k in a.generator)
    assert run_metrics(first.run_dir) == run_metrics(second.run_dir)
    assert not all(torch.equal(a.generator[k], c.generator[k]) for k in a.generator)


@pytest.mark.parametrize("fixture", ["tiny_dcgan", "tiny_toy"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, fixture, request):
    keys = request.getfixturevalue(fixture)
    straight = ganforge.train(out=tmp_path / "straight", steps=6, show_progress=False, **keys)
    ganforge.train(out=tmp_path / "split", steps=3, show_progress=False, **keys)
    resumed = ganforge.resume(tmp_path / "split", steps=6, show_progress=False)
    assert resumed.step == 6
    a, b = read_checkpoint(straight.run_dir), read_checkpoint(resumed.run_dir)
    for name in ("generator", "discriminator", "training"):
        first, second = getattr(a, name), getattr(b, name)
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), name
    assert run_metrics(straight.run_dir)[-1] == run_metrics(resumed.run_dir)[-1]


def test_run_folder_holds_config_metrics_samples_and_checkpoints(tmp_path, tiny_dcgan):
    keys = {**tiny_dcgan, "sample_every": 2, "checkpoint_every": 2, "keep_checkpoints": 2}
    result = ganforge.train(out=tmp_path / "run", steps=7, show_progress=False, **keys)
    run = result.run_dir
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"] == {"model": "dcgan", "image_size": 28, "channels": 1, "z_dim": 50, "width": 4,
                              "conditional": False, "num_classes": None, "spectral_norm": False, "d_norm": "batch",
                              "depth": None, "pack": 1, "components": 1, "info_weight": 0.0}
    assert (saved["train"]["d_steps"], saved["train"]["beta1"], saved["train"]["beta2"]) == (1, 0.5, 0.999)
    assert saved["train"]["steps"] == 7 and saved["train"]["lr_g"] == 2e-4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [2, 4, 6, 7]
    assert set(rows[0]) == {"step", "d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm",
                            "seconds_per_step", "images_per_second", "lr_d", "lr_g", "diversity", "threads"}
    assert rows[0]["images_per_second"] == pytest.approx(8 / rows[0]["seconds_per_step"], rel=1e-3)
    assert 0 < rows[0]["d_real"] < 1 and 0 < rows[0]["d_fake"] < 1
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_0000002.png", "step_0000004.png", "step_0000006.png", "step_0000007.png"]
    assert [p.name for p in list_checkpoints(run)] == ["step_0000006", "step_0000007"], "keeps the last 2"
    assert sorted(p.name for p in result.checkpoint.iterdir()) == [
        "discriminator.safetensors", "generator.safetensors", "state.json", "training.safetensors"]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")], "no temporary folder left"


def test_checkpoint_rebuilds_the_generator(tmp_path, tiny_dcgan):
    result = ganforge.train(out=tmp_path / "run", steps=2, show_progress=False, **tiny_dcgan)
    trainer = make_trainer(tiny_dcgan)
    trainer.restore(result.run_dir)
    loaded = ganforge.load(result.run_dir, device="cpu")
    trainer.generator.eval()
    z = torch.randn(5, 50)
    with torch.no_grad():
        assert torch.equal(loaded.generate(z), trainer.generator(z))


def test_preview_does_not_change_batch_norm_statistics(tiny_dcgan):
    trainer = make_trainer(tiny_dcgan)
    before = [b.clone() for b in trainer.generator.buffers()]
    images = trainer.preview()
    assert images.shape == (64, 1, 28, 28)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.generator.buffers()))
    assert trainer.generator.training, "back in train mode after the preview"


def test_meter_reports_means_and_the_first_non_finite_step():
    meter = Meter(torch.device("cpu"))
    meter.add(1, d_loss=torch.tensor(1.0), g_loss=torch.tensor(3.0))
    meter.add(2, d_loss=torch.tensor(2.0), g_loss=torch.tensor(float("nan")))
    meter.add(3, d_loss=torch.tensor(float("inf")))
    values, bad_step = meter.read()
    assert values["d_loss"] == float("inf") and bad_step == 2
    meter.reset()
    meter.add(4, d_loss=torch.tensor(1.0), d_real=torch.tensor(0.25))
    meter.add(4, g_loss=torch.tensor([5.0]))
    meter.add(5, d_loss=torch.tensor(2.0), d_real=torch.tensor(0.75))
    assert meter.read() == ({"d_loss": 1.5, "g_loss": 5.0, "d_real": 0.5}, None)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_toy, monkeypatch):
    ganforge.train(out=tmp_path / "run", steps=4, checkpoint_every=2, show_progress=False, **{
        k: v for k, v in tiny_toy.items() if k != "checkpoint_every"})
    good = read_checkpoint(tmp_path / "run")
    real_loss = ganforge.algorithm.losses.LOSS_FAMILIES["nonsaturating"].generator

    def diverging_loss(logits):
        return real_loss(logits) * float("nan")

    monkeypatch.setitem(ganforge.algorithm.losses.LOSS_FAMILIES, "nonsaturating", dataclasses.replace(ganforge.algorithm.losses.LOSS_FAMILIES["nonsaturating"], generator=diverging_loss))
    with pytest.raises(TrainingDivergedError, match=r"g_loss.* became NaN or infinite at step 5.*step_0000004"):
        ganforge.resume(tmp_path / "run", steps=8, show_progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step_0000002", "step_0000004"]
    kept = read_checkpoint(tmp_path / "run")
    assert kept.step == 4 and all(torch.equal(kept.generator[k], good.generator[k]) for k in good.generator)


def test_sigterm_stops_after_the_step_with_a_checkpoint(tmp_path, tiny_toy, monkeypatch):
    original_step = loop.train_step

    def step_then_signal(trainer):
        original_step(trainer)
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(loop, "train_step", step_then_signal)
    result = ganforge.train(out=tmp_path / "run", steps=50, show_progress=False, **tiny_toy)
    assert result.stopped_by == "SIGTERM" and result.step == 3
    assert read_checkpoint(tmp_path / "run").step == 3
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "the handler is restored"
    monkeypatch.undo()
    assert ganforge.resume(tmp_path / "run", steps=5, show_progress=False).step == 5


def nan_generator_loss_at(monkeypatch, bad_steps: set[int], trainer_steps: list[int], once: bool = False):
    """Make the generator loss NaN at ``bad_steps`` (with ``once``, only the first time each runs)."""
    real_loss = ganforge.algorithm.losses.LOSS_FAMILIES["nonsaturating"].generator
    original_phase = step_module.generator_phase

    def phase(trainer, step):
        trainer_steps.append(step)
        original_phase(trainer, step)

    def loss(logits):
        step = trainer_steps[-1]
        bad = step in bad_steps and not (once and trainer_steps.count(step) > 1)
        return real_loss(logits) * (float("nan") if bad else 1.0)

    monkeypatch.setattr(step_module, "generator_phase", phase)
    monkeypatch.setitem(ganforge.algorithm.losses.LOSS_FAMILIES, "nonsaturating", dataclasses.replace(ganforge.algorithm.losses.LOSS_FAMILIES["nonsaturating"], generator=loss))


def test_rollback_returns_to_the_last_checkpoint_with_halved_learning_rates(tmp_path, tiny_toy, monkeypatch):
    seen: list[int] = []
    nan_generator_loss_at(monkeypatch, {5}, seen, once=True)
    keys = {**tiny_toy, "checkpoint_every": 4, "on_nan": "rollback"}
    result = ganforge.train(out=tmp_path / "run", steps=8, show_progress=False, **keys)
    assert result.step == 8
    assert seen.count(5) == 2, "step 5 ran, diverged, and ran again after the rollback"
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if "event" in json.loads(line)]
    assert events == [{"step": 6, "event": "rollback", "diverged_at": 5, "to_step": 4,
                       "lr_d": 5e-4, "lr_g": 5e-4, "rollback": 1}]
    final = read_checkpoint(result.run_dir)
    assert final.state["optimizers"]["generator"][0]["lr"] == 5e-4
    assert all(torch.isfinite(t).all() for t in final.generator.values())


def test_rollback_gives_up_after_max_rollbacks(tmp_path, tiny_toy, monkeypatch):
    nan_generator_loss_at(monkeypatch, set(range(5, 100)), [])
    keys = {**tiny_toy, "checkpoint_every": 4, "on_nan": "rollback", "max_rollbacks": 2}
    with pytest.raises(TrainingDivergedError, match=r"at step 5.*step_0000004.*after 2 rollbacks"):
        ganforge.train(out=tmp_path / "run", steps=8, show_progress=False, **keys)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step_0000004"]


def test_tensorboard_event_files_hold_the_training_scalars_and_samples(tmp_path, tiny_dcgan):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    keys = {**tiny_dcgan, "sample_every": 2, "tensorboard": True}
    ganforge.train(out=tmp_path / "run", steps=4, show_progress=False, **keys)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) >= {
        "loss/discriminator", "loss/generator", "D/real D(x)", "D/fake D(G(z))", "gradient_norm/discriminator",
        "gradient_norm/generator", "learning_rate/discriminator", "learning_rate/generator",
        "speed/images_per_second"}
    assert [event.step for event in events.Scalars("loss/generator")] == [2, 4]
    assert events.Tags()["images"] == ["samples"] and len(events.Images("samples")) == 2


def test_tensorboard_off_writes_no_event_files(tmp_path, tiny_toy):
    ganforge.train(out=tmp_path / "run", steps=2, show_progress=False, **tiny_toy)  # the fixture sets tensorboard=False
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_bf16_autocast_trains_and_resumes_exactly(tmp_path, tiny_dcgan):
    keys = {**tiny_dcgan, "precision": "bf16"}
    straight = ganforge.train(out=tmp_path / "straight", steps=4, show_progress=False, **keys)
    ganforge.train(out=tmp_path / "split", steps=2, show_progress=False, **keys)
    resumed = ganforge.resume(tmp_path / "split", steps=4, show_progress=False)
    a, b = read_checkpoint(straight.run_dir), read_checkpoint(resumed.run_dir)
    assert all(torch.equal(a.generator[k], b.generator[k]) for k in a.generator)
    assert all(v.dtype == torch.float32 for v in a.generator.values() if v.is_floating_point()), "weights stay fp32"
    fp32 = ganforge.train(out=tmp_path / "fp32", steps=4, show_progress=False, **tiny_dcgan)
    c = read_checkpoint(fp32.run_dir)
    assert not all(torch.equal(a.generator[k], c.generator[k]) for k in a.generator), "bf16 really ran"


def test_channels_last_is_a_memory_layout_not_a_different_model(tiny_dcgan):
    fast, plain = make_trainer(tiny_dcgan), make_trainer({**tiny_dcgan, "channels_last": False})
    assert fast.generator.layers[1][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.discriminator.layers[1][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.generator.layers[1][0].weight.is_contiguous()
    z = torch.randn(8, 50)
    images = plain.generator(z)
    assert fast.generator(z).is_contiguous(memory_format=torch.channels_last) and images.is_contiguous()
    torch.testing.assert_close(fast.generator(z), images, rtol=1e-4, atol=1e-6)
    for trainer in (fast, plain):
        trainer.discriminator(images.detach()).sum().backward()
    for (name, a), b in zip(fast.discriminator.named_parameters(), plain.discriminator.parameters()):
        if name.endswith("weight"):  # a conv bias before BatchNorm has a true gradient of 0: only rounding noise
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)


def test_fp16_needs_a_gpu(tmp_path, tiny_toy):
    with pytest.raises(ganforge.ConfigError, match="fp16 needs a CUDA GPU.*bf16"):
        ganforge.train(out=tmp_path / "run", steps=2, precision="fp16", device="cpu", show_progress=False, **tiny_toy)


@pytest.mark.slow
def test_compiled_networks_compute_the_same_losses_and_save_plain_weights(tmp_path, tiny_toy):
    keys = {**tiny_toy, "log_every": 1}
    compiled = ganforge.train(out=tmp_path / "compiled", steps=1, compile=True, show_progress=False, **keys)
    plain = ganforge.train(out=tmp_path / "plain", steps=1, show_progress=False, **keys)
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert compiled.metrics[key] == pytest.approx(plain.metrics[key], rel=1e-4), key
    weights = read_checkpoint(compiled.run_dir).generator
    assert weights.keys() == read_checkpoint(plain.run_dir).generator.keys(), "no _orig_mod. prefixes"
