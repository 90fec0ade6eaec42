"""ganforge experiment: the spec's checks, the grid of runs and its tables, resuming without redoing finished
runs, worker processes, and the report page of an experiment folder."""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import statistics
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import TINY_TOY
from ganforge.api import write_report
from ganforge.cli import app
from ganforge.errors import ConfigError, GanforgeError
from ganforge.experiment import scheduler
from ganforge.experiment.plan import plan_runs
from ganforge.experiment.scheduler import run_experiment
from ganforge.experiment.spec import load_spec, parse_spec
from ganforge.experiment.summary import spread
from ganforge.runs.lock import LOCK_FILE

# TINY_TOY on grid25, a little wider and longer so that the runs cover a few modes and their numbers differ.
BASE = {**TINY_TOY, "data": "grid25", "width": 32, "batch_size": 64, "steps": 60, "checkpoint_every": 20,
        "eval_every": 20, "eval_samples": 500}
METRICS = ["modes_covered", "high_quality", "reverse_kl"]
SPEC = {**BASE, "description": "loss x order", "vary": {"loss": ["minimax", "nonsaturating"],
                                                         "order": ["d-first", "g-first"]},
        "seeds": 2, "metrics": METRICS}
VARIANTS = ["loss=minimax,order=d-first", "loss=minimax,order=g-first",
            "loss=nonsaturating,order=d-first", "loss=nonsaturating,order=g-first"]
RUNS = [f"runs/{variant}/seed-{seed}" for variant in VARIANTS for seed in (0, 1)]


def read_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def result_times(folder: Path) -> dict[str, int]:
    return {run: (folder / run / "result.json").stat().st_mtime_ns for run in RUNS
            if (folder / run / "result.json").is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2 x 2 x 2-seed experiment, run once in this process."""
    out = tmp_path_factory.mktemp("experiment") / "loss-order"
    result = run_experiment(SPEC, out, jobs=1, threads=1, show_progress=False)
    assert (result.planned, result.already_done, result.completed, result.stopped) == (8, 0, 8, False)
    return out


# --------------------------------------------------------------------------- the spec


def test_the_grid_is_every_combination_of_the_varied_values_times_the_seeds(tmp_path):
    spec = parse_spec({**BASE, "vary": {"d_steps": [1, 2, 5], "g-steps": [1, 2]}, "seeds": [3, 7]})
    assert [v.name for v in spec.variants()] == [f"d_steps={d},g_steps={g}" for d in (1, 2, 5) for g in (1, 2)]
    runs = plan_runs(spec, tmp_path)
    assert len(runs) == 12
    assert [(r.config.train.d_steps, r.config.train.g_steps, r.config.train.seed) for r in runs[:4]] == \
        [(1, 1, 3), (1, 1, 7), (1, 2, 3), (1, 2, 7)]
    assert runs[0].run_dir == tmp_path / "runs" / "d_steps=1,g_steps=1" / "seed-3"
    assert all(r.config.train.steps == 60 and r.config.data.data == "grid25" for r in runs)
    assert not any(tmp_path.iterdir()), "planning writes nothing"


def test_sectioned_base_keys_default_seeds_and_no_axis():
    spec = parse_spec({"model": {"model": "toy", "width": 8}, "data": "ring8", "train": {"steps": 5}})
    assert spec.seeds == [0, 1, 2]
    assert [v.name for v in spec.variants()] == ["base"]
    assert spec.base == {"model": "toy", "width": 8, "data": "ring8", "steps": 5}


@pytest.mark.parametrize(("change", "fragment"), [
    ({"varry": {"loss": ["minimax"]}}, "unknown key 'varry' (did you mean 'vary'?)"),
    ({"vary": {"los": ["minimax"]}}, "vary.los is not a config key (did you mean 'loss'?)"),
    ({"vary": {"loss": []}}, "vary.loss is empty"),
    ({"vary": {"loss": "minimax"}}, "vary.loss must be a list of values"),
    ({"vary": {"loss": ["minimax", "minimax"]}}, "lists 'minimax' twice"),
    ({"vary": {"loss": ["minimax", "minmax"]}}, "variant loss=minmax: loss 'minmax' is not one of"),
    ({"vary": {"d_steps": [1, 0]}}, "variant d_steps=0: d_steps must be at least 1"),
    ({"vary": {"d_steps": [1, 2.5]}}, "config key 'd_steps' must be an integer, got 2.5"),
    ({"vary": {"seed": [0, 1]}}, "vary seeds with 'seeds:'"),
    ({"seed": 4}, "sets its seeds with 'seeds:'"),
    ({"seeds": 0}, "seeds must be a count from 1 to 10,000"),
    ({"seeds": 1_000_000_000}, "seeds must be a count from 1 to 10,000 (the seeds per variant), got 1000000000"),
    ({"vary": {"d_steps": list(range(1, 100_001))}, "seeds": 100},
     "100,000 variants x 100 seeds make 10,000,000 runs, more than the 10,000"),
    ({"seeds": [0, 0]}, "seeds lists a seed twice"),
    ({"seeds": "three"}, "seeds must be a count"),
    ({"metrics": ["fid"]}, "metric 'fid' needs images"),
    ({"metrics": ["modes_coverd"]}, "did you mean 'modes_covered'?"),
    ({"data": "digits"}, "the toy model learns 2-D points, but digits holds images"),
    ({"data": "no/such/folder"}, "data source 'no/such/folder' is neither a built-in"),
    ({"train": {"steps": 10, "lossx": "minimax"}}, "unknown config key 'train.lossx'"),
])
def test_bad_specs_are_one_line_errors_before_anything_runs(tmp_path, change, fragment):
    spec = {**SPEC, **change}
    with pytest.raises(ConfigError) as caught:
        run_experiment(spec, tmp_path / "out", show_progress=False)
    message = str(caught.value)
    assert fragment in message and "\n" not in message, message
    assert message.startswith("spec"), message
    assert not (tmp_path / "out").exists(), "a bad spec runs nothing and writes nothing"


def test_a_spec_file_is_named_in_its_errors(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump({**BASE, "vary": {"d_steps": [1, -2]}}))
    spec = load_spec(path)
    with pytest.raises(ConfigError, match=re.escape(f"{path}, variant d_steps=-2: d_steps must be at least 1")):
        plan_runs(spec, tmp_path / "out")
    with pytest.raises(ConfigError, match="experiment spec .*missing.yaml does not exist"):
        load_spec(tmp_path / "missing.yaml")


def test_spread_is_mean_sample_std_min_max():
    assert spread([24, 25, 25]) == pytest.approx({"n": 3, "mean": 74 / 3, "std": math.sqrt(1 / 3), "min": 24,
                                                  "max": 25})
    assert spread([0.5]) == {"n": 1, "mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5}


# --------------------------------------------------------------------------- running it


def test_every_run_is_trained_evaluated_and_listed_in_results_jsonl(finished):
    rows = read_rows(finished)
    assert [row["run"] for row in rows] == RUNS
    for row in rows:
        evaluation = json.loads((finished / row["run"] / "eval.json").read_text())
        assert row["status"] == "finished" and row["step"] == 60
        assert row["metrics"] == {name: evaluation[name] for name in METRICS}
        assert row["floors"] == {name: evaluation[f"{name}_floor"] for name in METRICS}
        assert row["all_covered"] == (row["metrics"]["modes_covered"] == 25)
        assert (finished / row["run"] / "checkpoints" / "step_0000060").is_dir()
        assert yaml.safe_load((finished / row["run"] / "config.yaml").read_text())["train"]["loss"] == \
            row["values"]["loss"]
    assert len({json.dumps(row["metrics"]) for row in rows}) > 1, "the tiny runs should differ"


def test_the_table_holds_mean_and_spread_over_seeds_of_each_variant(finished):
    rows = read_rows(finished)
    table = (finished / "table.md").read_text()
    lines = {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line
             for line in table.splitlines() if line.startswith("| minimax") or line.startswith("| nonsaturating")}
    assert len(lines) == 4
    summary = json.loads((finished / "summary.json").read_text())
    for variant in summary["variants"]:
        mine = [row for row in rows if row["variant"] == variant["name"]]
        line = lines[(variant["values"]["loss"], variant["values"]["order"])]
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[2] == "2/2"
        for column, name in enumerate(METRICS, start=3):
            values = [row["metrics"][name] for row in mine]
            expected = [statistics.mean(values), statistics.stdev(values), min(values), max(values)]
            shown = [float(x) for x in re.fullmatch(r"(\S+) ± (\S+) \[(\S+), (\S+)\]", cells[column]).groups()]
            assert shown == pytest.approx(expected, rel=5e-3, abs=1e-9), (name, cells[column])
            assert variant["metrics"][name]["mean"] == pytest.approx(expected[0])
        assert cells[6] == f"{sum(row['all_covered'] for row in mine)}/2"
        for seed, cell in zip((0, 1), cells[7].split(", ")):  # per seed: first step with all modes (evaluations)
            row = next(row for row in mine if row["seed"] == seed)
            first = "never" if row["first_full_coverage_step"] is None else str(row["first_full_coverage_step"])
            assert cell == f"{first} ({row['full_coverage_evaluations'][0]}/3)"  # evaluated at steps 20, 40, 60
    assert "| real data (floor) |" in table
    assert "`ganforge experiment" not in table, "a spec given as a mapping has no command to show"


def test_a_rerun_after_an_interruption_redoes_no_finished_run_and_resumes_the_rest(finished, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    before = {row["run"]: row for row in read_rows(out)}
    killed, unstarted = RUNS[2], RUNS[5]
    # killed between its checkpoints at steps 40 and 60: no result, no final checkpoint; never started: no folder
    (out / killed / "result.json").unlink()
    shutil.rmtree(out / killed / "checkpoints" / "step_0000060")
    shutil.rmtree(out / unstarted)
    times = result_times(out)
    assert len(times) == 6

    result = run_experiment(SPEC, out, jobs=1, threads=1, show_progress=False)

    assert (result.already_done, result.completed, result.resumed, result.stopped) == (6, 2, 1, False)
    assert {run: t for run, t in result_times(out).items() if run in times} == times, "finished runs not redone"
    after = {row["run"]: row for row in read_rows(out)}
    assert list(after) == RUNS
    for run in (killed, unstarted):  # resumed or started again, each ends where the uninterrupted run ended
        assert after[run]["metrics"] == before[run]["metrics"] and after[run]["step"] == 60
    rows = [json.loads(line) for line in (out / killed / "metrics.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in rows if "event" not in row]  # warnings of the final evaluation are event rows
    assert steps == sorted(set(steps)) and steps[-1] == 60, f"the resumed log continues from step 40: {steps}"
    assert run_experiment(SPEC, out, jobs=1, threads=1, show_progress=False).completed == 0


@pytest.mark.slow
def test_a_stop_between_runs_keeps_the_finished_ones_and_the_same_call_continues(tmp_path, monkeypatch):
    calls = []
    real_run_one = scheduler.run_one

    def stopped_after_three(run_dir: Path, threads: int | None = None) -> dict:
        calls.append(run_dir)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C between two runs
        return real_run_one(run_dir, threads)

    monkeypatch.setattr(scheduler, "run_one", stopped_after_three)
    out = tmp_path / "out"
    first = run_experiment(SPEC, out, jobs=1, threads=1, show_progress=False)
    assert (first.completed, first.stopped) == (3, True)
    assert [row["run"] for row in read_rows(out)] == RUNS[:3]
    assert "3 of 8 runs done" in (out / "table.md").read_text()
    times = result_times(out)

    monkeypatch.setattr(scheduler, "run_one", real_run_one)
    second = run_experiment(SPEC, out, jobs=1, threads=1, show_progress=False)
    assert (second.already_done, second.completed, second.stopped) == (3, 5, False)
    assert {run: t for run, t in result_times(out).items() if run in times} == times
    assert [row["run"] for row in read_rows(out)] == RUNS


@pytest.mark.slow
def test_worker_processes_give_the_numbers_of_runs_in_this_process(finished, tmp_path):
    spec = {**SPEC, "vary": {"loss": ["minimax"], "order": ["d-first"]}}
    result = run_experiment(spec, tmp_path / "out", jobs=2, threads=1, show_progress=False)
    assert (result.completed, result.stopped) == (2, False)
    workers = {row["run"]: row["metrics"] for row in read_rows(tmp_path / "out")}
    here = {row["run"]: row["metrics"] for row in read_rows(finished)}
    assert workers == {run: here[run] for run in RUNS[:2]}


def test_another_spec_for_the_same_folder_is_refused_naming_the_difference(finished, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    with pytest.raises(ConfigError, match=r"was run with another config \(steps 60, now 80\).*new --out"):
        run_experiment({**SPEC, "steps": 80}, out, show_progress=False)
    plan_file = out / RUNS[0] / "run.json"  # as a ganforge without the config key 'ema' would have written it
    plan = json.loads(plan_file.read_text())
    del plan["config"]["train"]["ema"]
    plan_file.write_text(json.dumps(plan))
    assert run_experiment(SPEC, out, show_progress=False).already_done == 8, "defaults are not part of a run's identity"


def test_a_diverged_run_is_recorded_as_such_and_not_retried(tmp_path):
    spec = {**BASE, "vary": {"lr_d": [0.001, 1e30]}, "seeds": 1, "metrics": METRICS}
    out = tmp_path / "out"
    result = run_experiment(spec, out, jobs=1, threads=1, show_progress=False)
    rows = {row["variant"]: row for row in read_rows(out)}
    assert rows["lr_d=0.001"]["status"] == "finished"
    assert rows["lr_d=1e+30"]["status"] == "diverged" and "diverged" in rows["lr_d=1e+30"]["error"]
    assert "| 1e+30 | 0/1 (1 diverged) |" in (out / "table.md").read_text()
    assert result.completed == 2
    assert run_experiment(spec, out, jobs=1, threads=1, show_progress=False).completed == 0


def test_a_run_another_live_process_is_training_is_refused(tmp_path):
    spec = {**BASE, "seeds": 1, "metrics": METRICS}
    run_dir = tmp_path / "out" / "runs" / "base" / "seed-0"
    run_dir.mkdir(parents=True)
    lock = run_dir / LOCK_FILE
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT)  # held as a live process holds it
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    os.write(descriptor, json.dumps({"pid": os.getppid(), "host": "vm"}).encode())
    try:
        with pytest.raises(GanforgeError, match=rf"is being trained by process {os.getppid()} on vm: wait for it"):
            run_experiment(spec, tmp_path / "out", jobs=1, threads=1, show_progress=False)
    finally:
        os.close(descriptor)  # as if that process ended, killed: its file stays, its flock goes
    assert run_experiment(spec, tmp_path / "out", jobs=1, threads=1, show_progress=False).completed == 1
    assert not lock.exists()


# --------------------------------------------------------------------------- the report and the command


def test_the_report_of_an_experiment_folder_holds_the_table_and_a_chart_per_metric(finished):
    page_path = write_report([finished])
    assert page_path == finished / "report.html"
    page = page_path.read_text()
    assert '<table class="experiment">' in page and "real data (floor)" in page
    for variant in VARIANTS:
        assert f'data-label="{variant}"' in page
    table = (finished / "table.md").read_text()
    first_row = next(line for line in table.splitlines() if line.startswith("| minimax | d-first"))
    for cell in first_row.strip("|").split("|"):
        assert f"<td>{cell.strip()}</td>" in page
    for name in METRICS:
        assert f'id="chart-{name}"' in page and f'id="chart-training-{name}"' in page
    assert not re.search(r"""(src|href)=["']https?:""", page), "the page needs no network"


def test_the_experiment_command_runs_a_spec_file_and_the_report_command_draws_it(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**BASE, "steps": 20, "vary": {"loss": ["minimax", "nonsaturating"]},
                                    "seeds": 1, "metrics": METRICS}))
    out = tmp_path / "exp"
    result = CliRunner().invoke(app, ["experiment", str(spec), "--out", str(out), "--jobs", "1", "--threads", "1"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "| minimax | 1/1 |" in result.output and f"ganforge report {out}" in result.output
    assert f"`ganforge experiment {spec} --out {out}`" in (out / "table.md").read_text()
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert (out / "report.html").is_file()
    bad = CliRunner().invoke(app, ["experiment", str(spec), "--out", str(out), "--jobs", "0"])
    assert isinstance(bad.exception, ConfigError) and "--jobs must be at least 1" in str(bad.exception)
