"""Evaluation where users meet it: `ganforge eval`, `--eval-every` with the best checkpoint, `ganforge compare`."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import ganforge
from ganforge.cli import app
from ganforge.config.schema import DataConfig
from ganforge.data import load_data
from ganforge.errors import ConfigError
from ganforge.runs.checkpoint import list_checkpoints, read_checkpoint

runner = CliRunner()


def test_eval_prints_each_metric_with_its_floor_and_writes_eval_json(tmp_path, tiny_toy):
    run = ganforge.train(out=tmp_path / "run", steps=2, show_progress=False, **tiny_toy).run_dir
    result = runner.invoke(app, ["eval", str(run), "-n", "500"])
    assert result.exit_code == 0, result.output
    assert "modes_covered" in result.output and "floor" in result.output
    saved = json.loads((run / "eval.json").read_text())
    assert saved["num_samples"] == 500 and saved["step"] == 2
    assert saved["modes_covered_floor"] == 8 and 0 <= saved["modes_covered"] <= 8
    assert 0 <= saved["high_quality"] <= 1 and saved["reverse_kl"] >= 0


def test_eval_every_logs_metrics_and_keeps_the_best_checkpoint_beside_the_last_n(tmp_path, tiny_toy, monkeypatch):
    scores = iter([0.5, 0.1, 0.9, 0.3])  # reverse_kl at steps 2, 4, 6, 8: lower is better, the best is step 4
    from ganforge.evaluation import evaluator as evaluation

    real_call = evaluation.Evaluator.__call__

    def scripted(self, generator):
        results = real_call(self, generator)
        return {**results, "reverse_kl": next(scores)}

    monkeypatch.setattr(evaluation.Evaluator, "__call__", scripted)
    keys = {**tiny_toy, "eval_every": 2, "eval_samples": 200, "checkpoint_every": 2, "keep_checkpoints": 1,
            "log_every": 100}
    result = ganforge.train(out=tmp_path / "run", steps=8, show_progress=False, **keys)
    run = result.run_dir
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "reverse_kl" in row] == [2, 4, 6, 8]
    assert [row["reverse_kl"] for row in rows if "reverse_kl" in row] == [0.5, 0.1, 0.9, 0.3]
    assert [p.name for p in list_checkpoints(run)] == ["step_0000008"], "--keep 1 keeps the last one"
    assert json.loads((run / "checkpoints" / "best.json").read_text()) == {
        "metric": "reverse_kl", "value": 0.1, "step": 4}
    assert read_checkpoint(run / "checkpoints" / "best").step == 4, "plus the best"
    assert json.loads((run / "eval.json").read_text())["step"] == 8


def test_eval_every_picks_its_best_checkpoint_by_a_metric_the_run_measures(tmp_path, tiny_toy):
    keys = {**tiny_toy, "eval_every": 2, "eval_samples": 200, "eval_metrics": "high_quality,modes_covered"}
    run = ganforge.train(out=tmp_path / "run", steps=2, show_progress=False, **keys).run_dir
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    assert best["metric"] == "high_quality", "reverse_kl is not measured, so the first listed metric decides"


def test_a_best_metric_the_run_does_not_measure_is_refused_before_training(tmp_path, tiny_toy):
    keys = {**tiny_toy, "eval_every": 2, "eval_samples": 200, "eval_metrics": "modes_covered",
            "best_metric": "reverse_kl"}
    with pytest.raises(ConfigError, match=r"best_metric 'reverse_kl' is not among this run's metrics \(modes_covered\)"):
        ganforge.train(out=tmp_path / "run", steps=4, show_progress=False, **keys)
    assert not (tmp_path / "run").exists(), "refused at the start: no step was trained and nothing was left"


def test_compare_lists_what_differs_first(tmp_path, tiny_toy):
    first = ganforge.train(out=tmp_path / "a", steps=2, show_progress=False, **tiny_toy).run_dir
    second = ganforge.train(out=tmp_path / "b", steps=2, loss="minimax", show_progress=False, **tiny_toy).run_dir
    result = runner.invoke(app, ["compare", str(first), str(second)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    differs = next(i for i, line in enumerate(lines) if "config (differs)" in line)
    metrics = next(i for i, line in enumerate(lines) if "metrics" in line and i > differs)
    loss_line = next(line for line in lines[differs:metrics] if " loss " in f" {line} ")
    assert "nonsaturating" in loss_line and "minimax" in loss_line
    assert not any("batch_size" in line for line in lines[differs:metrics]), "equal keys are not listed"


def test_stacked_digits_is_a_built_in_with_1000_modes():
    data = load_data(DataConfig("stacked-digits"), None, None, 0, torch.device("cpu"))
    assert data.sample_shape == (3, 28, 28)
    assert len(torch.unique(data.labels)) > 990 and int(data.labels.max()) <= 999
