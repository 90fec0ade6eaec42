"""``ganforge experiment``: answer a question by training every variant of a config over several seeds.

A spec (YAML) holds a base config (any config keys, flat or in ``model:``/``data:``/``train:`` sections),
``vary:`` (config key -> list of values), ``seeds:`` (a count or a list), and optionally ``metrics:`` (what
to evaluate; default: all that apply) and ``description:``. Each combination of the varied values is a
*variant*; each variant trains once per seed into ``OUT/runs/<variant>/seed-<s>/``, an ordinary run folder,
and is then evaluated by :mod:`ganforge.evaluation`. The experiment writes

- ``OUT/results.jsonl``: one row per run (metrics, real-data floors, mode coverage);
- ``OUT/summary.json`` and ``OUT/table.md``: per variant, mean, standard deviation, min and max over seeds,
  and how many seeds covered every mode (and from which step, when the runs evaluate with ``eval_every``);
- ``OUT/report.html``, through ``ganforge report OUT``: the table and a chart per metric with error bars.

Resumable: a run's ``result.json`` is written last and atomically, and marks it done. Running the same
command again skips done runs, continues interrupted ones from their last checkpoint (ganforge's resume,
which gives the numbers of an uninterrupted run) and starts the others. Runs train in worker processes,
``jobs`` at a time with ``threads`` torch threads each (jobs x threads <= cores by default); with one job
they train in this process. Ctrl-C (or SIGTERM) makes every running run finish its step and save a checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import html
import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ganforge.config.resolve import total_steps
from ganforge.evaluation.hook import PeriodicEvaluation
from ganforge.train import run as training
from ganforge.runs.checkpoint import list_checkpoints, read_checkpoint
from ganforge.config.schema import RunConfig, apply_overrides, config_keys, flatten_keys
from ganforge.errors import shown
from ganforge.config.io import load_yaml
from ganforge.config.validate import validate
from ganforge.runs.files import write_text_atomically
from ganforge.data import IMAGE_SETS, MIXTURES, builtin_names, load_data, mixture_modes
from ganforge.data.digits import STACKED_DIGITS_MODES
from ganforge.runs.metrics_log import read_metrics, training_history
from ganforge.errors import ConfigError, GanforgeError, TrainingDivergedError
from ganforge.evaluation.evaluator import DIGIT_DATA, FEATURE_METRICS, HIGHER_IS_BETTER, evaluate, resolve_feature_extractor, resolve_metrics, write_results
from ganforge.evaluation.metrics.classifier import NUM_CLASSES
from ganforge.report.run_page import PALETTE, REPORT_NAME, SMALL_CHART_WIDTH, Interval, Series, html_page, interval_chart, line_chart
from ganforge.sampling.generator import TrainedGenerator

SPEC_FILE = "experiment.yaml"  # the spec as run, in OUT; marks OUT as an experiment folder
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
TABLE_FILE = "table.md"
RUNS_FOLDER = "runs"
RUN_PLAN_FILE = "run.json"  # in each run folder: its variant, seed, config and metrics, written before it starts
RUN_RESULT_FILE = "result.json"  # in each run folder, written last: the run is done
RUN_LOG_FILE = "log.txt"  # in each run folder: what training printed
RUN_LOCK_FILE = ".running"  # in each run folder while a process trains it: that process's id
SPEC_KEYS = ("description", "vary", "seeds", "metrics")  # the spec's own keys; every other key is config
DEFAULT_SEEDS = 3
MAX_NAME_CHARS = 60  # characters of one value in a variant's folder name
POLL_SECONDS = 0.2  # how often the scheduler looks at its worker processes
WORKER_CODE = """
try:
    from ganforge.experiment.core import worker_main
except KeyboardInterrupt:  # stopped while still importing torch
    raise SystemExit(130)
worker_main()
"""
DONE_STATUSES = ("finished", "diverged")  # a diverged run is an outcome of the experiment, not redone
PLAN_IDENTITY = ("variant", "seed", "settings", "metrics")  # what must match for an earlier result to count


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Variant:
    """One combination of the varied values; ``name`` is its folder, e.g. ``loss=minimax,order=g-first``."""

    name: str
    values: dict[str, Any]


@dataclass
class ExperimentSpec:
    """A parsed, checked spec."""

    base: dict[str, Any]  # flat config keys shared by every run
    vary: dict[str, list[Any]]  # config key -> its values, in the spec's order
    seeds: list[int]
    metrics: list[str] | None  # None = the runs' eval_metrics, or every metric that applies
    description: str | None
    source: str  # the spec file (or "spec" for a mapping), for messages
    path: str | None = None  # the spec file, None for a mapping

    def variants(self) -> list[Variant]:
        """Every combination of the varied values (the first key varies slowest); one ``base`` variant if none."""
        if not self.vary:
            return [Variant("base", {})]
        keys = list(self.vary)
        variants = []
        for combination in itertools.product(*self.vary.values()):
            values = dict(zip(keys, combination))
            variants.append(Variant(",".join(f"{key}={_slug(value)}" for key, value in values.items()), values))
        return variants

    def to_dict(self) -> dict[str, Any]:
        """The spec as ``OUT/experiment.yaml`` holds it (config keys flat)."""
        values: dict[str, Any] = {"description": self.description} if self.description else {}
        values.update(self.base)
        values["vary"] = self.vary
        values["seeds"] = self.seeds
        if self.metrics is not None:
            values["metrics"] = self.metrics
        return values


def load_spec(spec: str | Path | Mapping[str, Any]) -> ExperimentSpec:
    """Read and check a spec: a YAML file, or its contents as a mapping."""
    if isinstance(spec, Mapping):
        return parse_spec(dict(spec), "spec")
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"experiment spec {path} does not exist: pass a YAML file such as experiments/loss.yaml")
    return dataclasses.replace(parse_spec(load_yaml(path), str(path)), path=str(path))


def parse_spec(values: dict[str, Any], source: str = "spec") -> ExperimentSpec:
    """Check a spec's keys and values; every problem is one ConfigError naming ``source``."""
    known = (*SPEC_KEYS, *config_keys(), "train")
    for raw_key in values:
        if str(raw_key).replace("-", "_") not in known:
            raise ConfigError(f"{source}: unknown key {shown(raw_key)}{_suggestion(str(raw_key), known)}")
    try:
        base = flatten_keys({key: value for key, value in values.items() if key not in SPEC_KEYS})
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    if "seed" in base:
        raise ConfigError(f"{source}: an experiment sets its seeds with 'seeds:' (a count such as 3, or a list "
                          "such as [0, 1, 2]), not 'seed'")
    description = values.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigError(f"{source}: description must be a line of text, got {shown(description)}")
    return ExperimentSpec(base, _parse_vary(values.get("vary"), source), _parse_seeds(values.get("seeds"), source),
                          _parse_metrics(values.get("metrics"), source), description, source)


def _parse_vary(raw: Any, source: str) -> dict[str, list[Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: vary must map config keys to lists of values, "
                          f"e.g. 'vary: {{loss: [minimax, nonsaturating]}}', got {shown(raw)}")
    vary: dict[str, list[Any]] = {}
    for raw_key, values in raw.items():
        key = str(raw_key).replace("-", "_")
        if key == "seed":
            raise ConfigError(f"{source}: vary seeds with 'seeds:' (a count such as 3, or a list such as [0, 1, 2]), "
                              "not with vary.seed")
        if key not in config_keys():
            raise ConfigError(f"{source}: vary.{raw_key} is not a config key{_suggestion(key, config_keys())}")
        if not isinstance(values, list):
            raise ConfigError(f"{source}: vary.{key} must be a list of values, e.g. '{key}: [a, b]', "
                              f"got {shown(values)}")
        if not values:
            raise ConfigError(f"{source}: vary.{key} is empty: list at least one value")
        slugs: dict[str, Any] = {}
        for value in values:
            if isinstance(value, (dict, list)) or value is None:
                raise ConfigError(f"{source}: vary.{key} holds {shown(value)}: each value must be a single "
                                  "number, word or true/false")
            slug = _slug(value)
            if slug in slugs:
                same = "twice" if slugs[slug] == value else f"and {shown(slugs[slug])} (the same folder name)"
                raise ConfigError(f"{source}: vary.{key} lists {shown(value)} {same}: list each value once")
            slugs[slug] = value
        vary[key] = values
    return vary


def _parse_seeds(raw: Any, source: str) -> list[int]:
    if raw is None:
        return list(range(DEFAULT_SEEDS))
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 1:
            raise ConfigError(f"{source}: seeds must be at least 1 (the number of seeds per variant), got {raw}")
        return list(range(raw))
    if isinstance(raw, list) and raw and all(isinstance(s, int) and not isinstance(s, bool) for s in raw):
        if len(set(raw)) != len(raw):
            raise ConfigError(f"{source}: seeds lists a seed twice ({shown(raw)}): list each seed once")
        return list(raw)
    raise ConfigError(f"{source}: seeds must be a count such as 3 or a list of whole numbers such as [0, 1, 2], "
                      f"got {shown(raw)}")


def _parse_metrics(raw: Any, source: str) -> list[str] | None:
    if raw is None:
        return None
    names = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else None
    if names is None or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"{source}: metrics must be a list of metric names such as [modes_covered, reverse_kl], "
                          f"got {shown(raw)}")
    names = [name.strip() for name in names if name.strip()]
    if not names:
        raise ConfigError(f"{source}: metrics is empty: name at least one, or leave it out for all that apply")
    return names


def _suggestion(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key.replace("-", "_"), list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (spec keys: {', '.join(SPEC_KEYS)}, or a config key)"


def _slug(value: Any) -> str:
    """A value as it appears in a folder name: letters, digits and ``._+-`` kept, anything else ``_``."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text)[:MAX_NAME_CHARS] or "_"


# --------------------------------------------------------------------------- the plan


@dataclass
class PlannedRun:
    """One run of the grid: a variant trained with one seed into ``run_dir``."""

    variant: Variant
    seed: int
    settings: dict[str, Any]  # the config keys the spec sets for this run (seed included), flat
    config: RunConfig  # those applied to the defaults
    metrics: list[str]  # what its evaluation measures
    run_dir: Path

    @property
    def label(self) -> str:
        return f"{self.variant.name} seed {self.seed}"

    def plan(self) -> dict[str, Any]:
        """What ``run.json`` holds: what defines the run, and its config for the worker process that trains it."""
        return json.loads(json.dumps({"variant": self.variant.name, "values": self.variant.values, "seed": self.seed,
                                      "settings": self.settings, "metrics": self.metrics,
                                      "config": self.config.to_dict()}))

    def defined_by(self) -> dict[str, Any]:
        """The parts of the plan that must match for an earlier result to count: the spec's keys, not the
        defaults (so a ganforge that adds a config key still continues an experiment it finds half done)."""
        plan = self.plan()
        return {key: plan[key] for key in PLAN_IDENTITY}


def plan_runs(spec: ExperimentSpec, out: Path | str) -> list[PlannedRun]:
    """Every run of the grid, each config built and checked before anything trains."""
    runs = []
    for variant in spec.variants():
        where = f"variant {variant.name}" if variant.values else "config"
        values = {**spec.base, **variant.values}
        values.setdefault("tensorboard", False)  # dozens of runs: TensorBoard logs only when the spec asks
        try:
            config = apply_overrides(RunConfig(), values)
            validate(config)
            _check_model_and_data(config)
            metrics = resolve_metrics(config, spec.metrics if spec.metrics is not None else config.train.eval_metrics)
            _check_feature_extractor(config, metrics)
            seeded = [apply_overrides(config, {"seed": seed}) for seed in spec.seeds]
            for run_config in seeded:
                validate(run_config)
        except GanforgeError as error:
            raise ConfigError(f"{spec.source}, {where}: {error}") from None
        for seed, run_config in zip(spec.seeds, seeded):
            runs.append(PlannedRun(variant, seed, {**values, "seed": seed}, run_config, metrics,
                                   Path(out) / RUNS_FOLDER / variant.name / f"seed-{seed}"))
    return runs


def _check_model_and_data(config: RunConfig) -> None:
    """The model/data mismatches training would find only after loading the data."""
    model, data = config.model.model, config.data.data
    if model == "toy" and data in IMAGE_SETS:
        raise ConfigError(f"the toy model learns 2-D points, but {data} holds images: "
                          "use data ring8 or grid25, or model mlp or dcgan")
    if model != "toy" and data in MIXTURES:
        raise ConfigError(f"model {model} learns images, but {data} holds 2-D points: use model toy")
    if data not in builtin_names() and not Path(data).expanduser().exists():
        raise ConfigError(f"data source '{data}' is neither a built-in ({', '.join(builtin_names())}) nor an "
                          "existing path: check the spelling or the path")


def _check_feature_extractor(config: RunConfig, metrics: Sequence[str]) -> None:
    extractor = resolve_feature_extractor(config, config.train.feature_extractor)
    if extractor == "classifier" and config.data.data not in DIGIT_DATA and any(m in FEATURE_METRICS for m in metrics):
        raise ConfigError(f"the classifier feature extractor knows only {' and '.join(DIGIT_DATA)}, not "
                          f"{config.data.data}: set feature_extractor: inception, or choose other metrics")


def coverage_target(config: RunConfig, metrics: Sequence[str]) -> tuple[str, int] | None:
    """(metric, its value when every mode is covered): mixtures' modes, the 10 digit classes, 1,000 stacked modes."""
    data = config.data.data
    if data in MIXTURES and "modes_covered" in metrics:
        return "modes_covered", len(mixture_modes(data)[0])
    if data == "stacked-digits" and "modes_covered" in metrics:
        return "modes_covered", STACKED_DIGITS_MODES
    if data == "digits" and "classes_covered" in metrics:
        return "classes_covered", NUM_CLASSES
    return None


# --------------------------------------------------------------------------- one run


def run_one(run_dir: Path | str) -> dict[str, Any]:
    """Train the planned run in ``run_dir`` to its last step (resuming from its checkpoint if it has one),
    evaluate it and write ``result.json`` last; returns that row (status ``stopped``, and no file, when a
    stop signal ended training early)."""
    run_dir = Path(run_dir)
    plan = json.loads((run_dir / RUN_PLAN_FILE).read_text())
    config = RunConfig.from_dict(plan["config"])
    row: dict[str, Any] = {"variant": plan["variant"], "values": plan["values"], "seed": plan["seed"]}
    with _claim(run_dir), _output_to(run_dir / RUN_LOG_FILE):
        try:
            stopped = _train_to_end(run_dir, config)
        except TrainingDivergedError as error:  # an outcome of the experiment: recorded, not retried
            row.update(status="diverged", step=error.step, error=str(error))
        else:
            if stopped:
                return {**row, "status": "stopped"}
            row.update(status="finished", **_evaluate(run_dir, config, plan["metrics"]))
        row["train_seconds"] = round(_train_seconds(run_dir), 1)
        write_text_atomically(run_dir / RUN_RESULT_FILE, json.dumps(row) + "\n")
    return row


def _train_to_end(run_dir: Path, config: RunConfig) -> bool:
    """Train or resume to the last step; True when a stop signal ended training first (it saved a checkpoint)."""
    if list_checkpoints(run_dir):
        checkpoint = read_checkpoint(run_dir)
        if checkpoint.step >= _last_step(checkpoint.config):
            return False  # trained before; stopped before its evaluation
        result = training.resume(run_dir, show_progress=False, hooks=[PeriodicEvaluation.for_run])
    else:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # a best.json from an attempt with no checkpoint
        result = training.train(config, run_dir, show_progress=False, hooks=[PeriodicEvaluation.for_run])
    return result.stopped_by is not None


def _last_step(config: RunConfig) -> int:
    """The step a resolved config trains to (``steps``, or ``epochs`` through the data's batches)."""
    if config.train.steps is not None:
        return config.train.steps
    data = load_data(config.data, config.model.image_size, config.model.channels, config.train.seed,
                     torch.device("cpu"))
    return total_steps(config, data)


def _evaluate(run_dir: Path, config: RunConfig, metrics: list[str]) -> dict[str, Any]:
    """The run's last checkpoint measured (eval.json written), and when it first covered every mode."""
    generator = TrainedGenerator.load(run_dir, device=config.train.device)
    results = evaluate(generator, metrics, config.train.eval_samples, config.train.feature_extractor,
                       seed=config.train.seed)
    write_results(results, run_dir)
    row: dict[str, Any] = {"step": generator.step, "metrics": {name: results[name] for name in metrics},
                           "floors": {name: results[f"{name}_floor"] for name in metrics}}
    target = coverage_target(config, metrics)
    if target is not None:
        key, count = target
        row["all_covered"] = bool(results[key] >= count)
        logged = [r for r in training_history(read_metrics(run_dir)) if _is_number(r.get(key))]
        if logged:  # the run evaluated itself while training (eval_every)
            row["first_full_coverage_step"] = next((r["step"] for r in logged if r[key] >= count), None)
            row["full_coverage_evaluations"] = [sum(r[key] >= count for r in logged), len(logged)]  # [all, of]
    return row


def _train_seconds(run_dir: Path) -> float:
    """Wall seconds of training (evaluations during it included) over the steps the weights went through."""
    total, previous = 0.0, 0
    for row in training_history(read_metrics(run_dir)):
        if _is_number(row.get("seconds_per_step")):
            total += row["seconds_per_step"] * (row["step"] - previous)
        previous = row["step"]
    return total


@contextlib.contextmanager
def _claim(run_dir: Path) -> Iterator[None]:
    """Hold ``RUN/.running`` (this process's id) while training, so two experiments never train one run at once."""
    path = run_dir / RUN_LOCK_FILE
    while True:
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = _lock_owner(path)
            if owner is not None and owner != os.getpid() and _process_alive(owner):
                raise GanforgeError(f"{run_dir} is being trained by process {owner} (another 'ganforge experiment' "
                                    "on the same --out?): wait for it to finish or stop it") from None
            path.unlink(missing_ok=True)  # left by a process that no longer runs (or by this one)
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(str(os.getpid()))
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _lock_owner(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """What training prints (progress lines, warnings) goes to the run's log instead of the terminal."""
    with open(path, "a", encoding="utf-8") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield


# --------------------------------------------------------------------------- the experiment


@dataclass
class ExperimentResult:
    """What one call did and where the experiment's files are."""

    out_dir: Path
    table: Path  # table.md
    results: Path  # results.jsonl
    summary: Path  # summary.json
    planned: int  # runs in the grid: variants x seeds
    already_done: int  # done before this call, not redone
    completed: int  # runs this call brought to done (trained or resumed, then evaluated)
    resumed: int  # runs this call continued from a checkpoint
    stopped: bool  # a stop signal ended the call early; the same command continues


def available_cores() -> int:
    """CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def run_experiment(spec: str | Path | Mapping[str, Any], out: str | Path, *, jobs: int | None = None,
                   threads: int | None = None, show_progress: bool = True) -> ExperimentResult:
    """Run every variant of ``spec`` with every seed into ``out``, evaluate each, and write the tables.

    ``jobs``: runs trained at once, each in its own process (None = one per core, at most the runs left; 1 =
    in this process). ``threads``: torch threads per run (None = cores // jobs, at most torch's own thread
    count, which OMP_NUM_THREADS sets). Runs already done are not redone; interrupted ones continue from their
    last checkpoint.
    """
    for name, value in (("jobs", jobs), ("threads", threads)):
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    parsed = load_spec(spec)
    out = Path(out)
    if (out / "config.yaml").is_file() or list_checkpoints(out):
        raise ConfigError(f"{out} is the folder of a training run: choose a new --out folder for the experiment")
    runs = plan_runs(parsed, out)
    done = [run for run in runs if _is_done(run)]
    pending = [run for run in runs if run not in done]
    cores = available_cores()
    if jobs is None and torch.cuda.is_available() and any(r.config.train.device != "cpu" for r in pending):
        jobs = 1  # one GPU: the runs take turns on it rather than each holding memory there
    jobs = max(1, min(jobs or cores, len(pending)))
    threads = threads or max(1, min(cores // jobs, torch.get_num_threads()))  # OMP_NUM_THREADS is a ceiling
    say: Callable[[str], None] = (lambda text: print(text, flush=True)) if show_progress else (lambda text: None)

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / SPEC_FILE, yaml.safe_dump(parsed.to_dict(), sort_keys=False))
    resumed = 0
    for run in pending:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(run.run_dir / RUN_PLAN_FILE, json.dumps(run.plan(), indent=2) + "\n")
        resumed += bool(list_checkpoints(run.run_dir))
    variants = len(runs) // len(parsed.seeds)
    say(f"experiment {out}: {variants} variant{'s' if variants != 1 else ''} x {len(parsed.seeds)} seed"
        f"{'s' if len(parsed.seeds) != 1 else ''} = {len(runs)} runs; {len(done)} done, {len(pending)} to run"
        + (f", {jobs} at a time with {threads} torch thread{'s' if threads != 1 else ''} each" if pending else ""))
    completed, stopped = 0, False
    try:
        if pending and jobs == 1:
            completed, stopped = _run_here(pending, threads, say)
        elif pending:
            completed, stopped = _run_in_workers(pending, jobs, threads, say)
    finally:
        write_summary(parsed, runs, out)
    return ExperimentResult(out, out / TABLE_FILE, out / RESULTS_FILE, out / SUMMARY_FILE, len(runs), len(done),
                            completed, resumed, stopped)


def _is_done(run: PlannedRun) -> bool:
    """Whether the run has its result; a run folder planned with another config is refused."""
    plan_file = run.run_dir / RUN_PLAN_FILE
    if plan_file.is_file():
        try:
            previous = json.loads(plan_file.read_text())
        except json.JSONDecodeError:
            previous = None  # torn by a crash before it was renamed into place: it is rewritten
        wanted = run.defined_by()
        if isinstance(previous, dict) and {key: previous.get(key) for key in wanted} != wanted:
            raise ConfigError(f"{run.run_dir} was run with another config ({_first_difference(previous, wanted)}): "
                              "choose a new --out folder, or delete that run folder to run it again")
    return _read_result(run) is not None


def _first_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The first setting that differs, as 'steps 2000, now 3000'."""
    flat_old = {**old, **(old.get("settings") or {})}
    flat_new = {**new, **new["settings"]}
    for key in dict.fromkeys([*flat_new, *flat_old]):
        if key not in ("settings", "config", "values") and flat_old.get(key) != flat_new.get(key):
            return f"{key} {shown(flat_old.get(key))}, now {shown(flat_new.get(key))}"
    return "a different plan"


def _read_result(run: PlannedRun) -> dict[str, Any] | None:
    path = run.run_dir / RUN_RESULT_FILE
    try:
        row = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return row if isinstance(row, dict) and row.get("status") in DONE_STATUSES else None


def _run_here(pending: list[PlannedRun], threads: int, say: Callable[[str], None]) -> tuple[int, bool]:
    """One run after another in this process; returns (runs completed, whether a stop signal ended it)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    completed = 0
    try:
        for run in pending:
            start = time.monotonic()
            try:
                row = run_one(run.run_dir)
            except GanforgeError as error:
                raise GanforgeError(f"{run.run_dir}: {error}") from None
            if row["status"] == "stopped":
                return completed, True
            completed += 1
            say(_progress_line(completed, len(pending), run, row, time.monotonic() - start))
    except KeyboardInterrupt:  # between runs or during an evaluation: the run in hand is redone from its checkpoint
        return completed, True
    finally:
        torch.set_num_threads(previous)
    return completed, False


def _run_in_workers(pending: list[PlannedRun], jobs: int, threads: int,
                    say: Callable[[str], None]) -> tuple[int, bool]:
    """``jobs`` worker processes at a time; SIGINT/SIGTERM are passed on to them, so each saves a checkpoint."""
    queue = list(pending)
    running: dict[subprocess.Popen[bytes], tuple[PlannedRun, float]] = {}
    signals: list[int] = []
    failures: list[str] = []
    completed = 0

    def pass_on(signum: int, frame: object) -> None:
        signals.append(signum)
        for process in list(running):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)  # a second Ctrl-C stops them at once, as in 'ganforge train'

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, pass_on) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        while queue or running:
            while queue and len(running) < jobs and not signals and not failures:
                run = queue.pop(0)
                running[_launch(run, threads)] = (run, time.monotonic())
            if not running:
                break
            time.sleep(POLL_SECONDS)
            for process in [p for p in running if p.poll() is not None]:
                run, start = running.pop(process)
                row = _read_result(run)
                if process.returncode == 0 and row is not None:
                    completed += 1
                    say(_progress_line(completed, len(pending), run, row, time.monotonic() - start))
                elif not signals:
                    failures.append(_failure(run, process.returncode))
    finally:
        for process in running:  # only after an unexpected error here: let them checkpoint and stop
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in running:
            process.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failures:
        more = f" ({len(failures) - 1} more run{'s' if len(failures) > 2 else ''} failed)" if len(failures) > 1 else ""
        raise GanforgeError(failures[0] + more)
    return completed, bool(signals)


def _launch(run: PlannedRun, threads: int) -> subprocess.Popen[bytes]:
    """Start a worker process for one run; its output goes to the run's log.txt. It gets its own session,
    so a Ctrl-C reaches it only once, passed on by the experiment."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(run.run_dir / RUN_LOG_FILE, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE, str(run.run_dir), str(threads)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)


def _failure(run: PlannedRun, returncode: int) -> str:
    """A failed worker's error line from its log, or where to look."""
    log = run.run_dir / RUN_LOG_FILE
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    error = next((line[len("error: "):] for line in reversed(lines) if line.startswith("error: ")), None)
    if error is not None:
        return f"{run.run_dir}: {error}"
    return f"{run.run_dir}: its process ended with status {returncode}: see {log}"


def worker_main() -> None:
    """Entry point of a worker process: ``RUN_DIR THREADS``; exit status 0 done, 130 stopped, 2 error."""
    run_dir, threads = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(threads)
    try:
        row = run_one(run_dir)
    except GanforgeError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(130 if row["status"] == "stopped" else 0)


def _progress_line(index: int, total: int, run: PlannedRun, row: dict[str, Any], seconds: float) -> str:
    if row["status"] == "diverged":
        outcome = f"diverged at step {row.get('step')}"
    else:
        outcome = ", ".join(f"{name} {_format(value)}" for name, value in row["metrics"].items())
        if "all_covered" in row:
            outcome += "; all modes covered" if row["all_covered"] else "; not all modes covered"
        if row.get("first_full_coverage_step") is not None:
            outcome += f" (first at step {row['first_full_coverage_step']})"
    return f"[{index}/{total}] {run.label}: {outcome} ({seconds:.0f} s)"


# --------------------------------------------------------------------------- tables


def spread(values: Sequence[float]) -> dict[str, float | int]:
    """n, mean, standard deviation (n - 1 in the denominator; 0 for one value), min and max."""
    values = [float(v) for v in values]
    count = len(values)
    mean = sum(values) / count
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (count - 1)) if count > 1 else 0.0
    return {"n": count, "mean": mean, "std": std, "min": min(values), "max": max(values)}


def write_summary(spec: ExperimentSpec, runs: Sequence[PlannedRun], out: Path) -> dict[str, Any]:
    """Write results.jsonl, summary.json and table.md from the runs done so far; returns the summary."""
    rows: list[dict[str, Any]] = []
    variants: list[dict[str, Any]] = []
    for variant in spec.variants():
        variant_runs = [run for run in runs if run.variant == variant]
        done = [(run, row) for run in variant_runs if (row := _read_result(run)) is not None]
        for run, row in done:
            rows.append({"run": run.run_dir.relative_to(out).as_posix(), **row})
        finished = [(run, row) for run, row in done if row["status"] == "finished"]
        metrics = variant_runs[0].metrics
        entry: dict[str, Any] = {
            "name": variant.name, "values": variant.values, "seeds": spec.seeds, "planned": len(variant_runs),
            "finished": len(finished), "diverged": len(done) - len(finished),
            "diverged_seeds": [row["seed"] for _, row in done if row["status"] == "diverged"], "metrics": {},
        }
        for name in metrics:
            values = [row["metrics"][name] for _, row in finished if _is_number(row["metrics"].get(name))]
            floors = [row["floors"][name] for _, row in finished if _is_number(row["floors"].get(name))]
            entry["metrics"][name] = {**(spread(values) if values else {"n": 0}),
                                      "values": {str(row["seed"]): row["metrics"].get(name) for _, row in finished},
                                      "floor": sum(floors) / len(floors) if floors else None}
        target = coverage_target(variant_runs[0].config, metrics)
        if target is not None:
            entry["coverage"] = {
                "metric": target[0], "target": target[1],
                "all_covered": sum(bool(row.get("all_covered")) for _, row in finished),
                "first_full_coverage_step": {str(row["seed"]): row["first_full_coverage_step"]
                                             for _, row in finished if "first_full_coverage_step" in row},
                "full_coverage_evaluations": {str(row["seed"]): row["full_coverage_evaluations"]
                                              for _, row in finished if "full_coverage_evaluations" in row},
            }
        variants.append(entry)
    eval_every = {run.config.train.eval_every for run in runs}
    summary = {
        "description": spec.description, "spec": spec.path, "axes": spec.vary, "seeds": spec.seeds,
        "metrics": list(dict.fromkeys(name for run in runs for name in run.metrics)),
        "higher_is_better": {name: HIGHER_IS_BETTER.get(name) for run in runs for name in run.metrics},
        "eval_every": eval_every.pop() if len(eval_every) == 1 else None,
        "runs": {"planned": len(runs), "done": len(rows),
                 "finished": sum(row["status"] == "finished" for row in rows),
                 "diverged": sum(row["status"] == "diverged" for row in rows)},
        "variants": variants,
    }
    write_text_atomically(out / RESULTS_FILE, "".join(json.dumps(row) + "\n" for row in rows))
    write_text_atomically(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    write_text_atomically(out / TABLE_FILE, render_table_markdown(summary, out))
    return summary


def table_cells(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The results table as header cells and rows of text cells (the last row: the real-data floors)."""
    axes = list(summary["axes"]) or ["variant"]
    metrics = summary["metrics"]
    covered = any("coverage" in v for v in summary["variants"])
    steps = any(v.get("coverage", {}).get("first_full_coverage_step") for v in summary["variants"])
    arrows = {True: " \u2191", False: " \u2193", None: ""}
    headers = [*axes, "seeds done"] + [name + arrows[summary["higher_is_better"].get(name)] for name in metrics]
    if covered:
        headers.append("all modes covered at the end")
    if steps:
        headers.append("first step with all modes (evaluations with all modes), per seed")
    rows = []
    for variant in summary["variants"]:
        cells = [_show_value(variant["values"].get(axis)) for axis in axes] if summary["axes"] else [variant["name"]]
        done = f"{variant['finished']}/{variant['planned']}"
        if variant["diverged"]:
            done += f" ({variant['diverged']} diverged)"
        cells.append(done)
        cells += [_spread_cell(variant["metrics"].get(name, {"n": 0})) for name in metrics]
        coverage = variant.get("coverage")
        if covered:
            cells.append(f"{coverage['all_covered']}/{variant['finished']}" if coverage and variant["finished"]
                         else "\u2014")
        if steps:
            first = (coverage or {}).get("first_full_coverage_step", {})
            counts = (coverage or {}).get("full_coverage_evaluations", {})
            per_seed = []
            for seed in variant["seeds"]:
                if str(seed) in first:
                    step = "never" if first[str(seed)] is None else str(first[str(seed)])
                    per_seed.append(f"{step} ({counts[str(seed)][0]}/{counts[str(seed)][1]})"
                                    if str(seed) in counts else step)
                elif seed in variant["diverged_seeds"]:
                    per_seed.append("diverged")
                else:
                    per_seed.append("\u2014")
            cells.append(", ".join(per_seed))
        rows.append(cells)
    floors = []
    for name in metrics:
        values = [v["metrics"][name]["floor"] for v in summary["variants"]
                  if name in v["metrics"] and v["metrics"][name]["floor"] is not None]
        floors.append(_format(sum(values) / len(values)) if values else "\u2014")
    rows.append(["real data (floor)", *[""] * len(axes), *floors, *[""] * (covered + steps)])
    return headers, rows


def render_table_markdown(summary: dict[str, Any], out: Path) -> str:
    """table.md: a title, the command that reproduces it, the table and how to read it."""
    headers, rows = table_cells(summary)
    lines = [f"# {summary['description'] or 'Experiment ' + out.name}", ""]
    if summary["spec"]:
        lines += [f"`ganforge experiment {summary['spec']} --out {out}`", ""]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    lines += ["", table_note(summary), ""]
    return "\n".join(lines)


def table_note(summary: dict[str, Any]) -> str:
    """How to read the table, in one paragraph."""
    seeds = ", ".join(map(str, summary["seeds"]))
    note = (f"Each metric: mean \u00b1 standard deviation [min, max] over the seeds that finished (seeds {seeds}; "
            f"standard deviation with n - 1). \u2191 higher is better, \u2193 lower is better; the last row is what "
            f"real data scores. {summary['runs']['done']} of {summary['runs']['planned']} runs done.")
    if any("coverage" in v for v in summary["variants"]):
        note += (" A mode is covered when at least one of the generated samples is a high-quality sample of it "
                 "(for digits: a class is generated).")
        if summary.get("eval_every"):
            note += (f" The first step with all modes is the first evaluation during training (every "
                     f"{summary['eval_every']} steps) at which every mode was covered (never: at none of them); "
                     "in brackets, at how many of the evaluations every mode was covered.")
    return note


def _spread_cell(stats: dict[str, Any]) -> str:
    if not stats.get("n"):
        return "\u2014"
    if stats["n"] == 1:
        return _format(stats["mean"])
    return (f"{_format(stats['mean'])} \u00b1 {_format(stats['std'])} "
            f"[{_format(stats['min'])}, {_format(stats['max'])}]")


def _format(value: Any) -> str:
    """Three significant digits; whole numbers as they are."""
    if not _is_number(value):
        return "\u2014" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def _show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- the report page


def is_experiment(path: Path | str) -> bool:
    """Whether ``path`` is a folder written by ``ganforge experiment``."""
    return (Path(path) / SPEC_FILE).is_file()


def write_experiment_report(folder: Path | str, out: Path | str | None = None) -> Path:
    """Write the HTML page of an experiment folder (default ``FOLDER/report.html``) and return its path:
    the results table, a chart per metric of each variant's mean with error bars (standard deviation) and
    its seeds, each logged metric over training (mean over seeds), every run, and the spec."""
    folder = Path(folder)
    summary_path = folder / SUMMARY_FILE
    if not summary_path.is_file():
        raise GanforgeError(f"{folder} has no {SUMMARY_FILE} yet: run 'ganforge experiment SPEC --out {folder}' first")
    summary = json.loads(summary_path.read_text())
    rows = [json.loads(line) for line in (folder / RESULTS_FILE).read_text().splitlines() if line.strip()] \
        if (folder / RESULTS_FILE).is_file() else []
    sections = [
        ("results", "Results", _results_section(summary)),
        ("metrics", "Metrics by variant", _metric_charts(summary)),
        ("training", "Over training", _training_charts(summary, rows, folder)),
        ("runs", "Runs", _runs_section(summary, rows)),
        ("spec", "Spec", f'<pre>{html.escape((folder / SPEC_FILE).read_text())}</pre>'),
    ]
    esc = html.escape
    command = (f"; reproduce with <code>ganforge experiment {esc(summary['spec'])} --out {esc(str(folder))}</code>"
               if summary["spec"] else "")
    header = (f'<p class="path">{esc(str(folder.resolve()))}</p>'
              f'<p class="note">{summary["runs"]["done"]} of {summary["runs"]["planned"]} runs done{command}.</p>')
    page = html_page(f"ganforge experiment: {summary['description'] or folder.name}", header, sections)
    target = folder / REPORT_NAME if out is None else Path(out)
    if target.is_dir():
        target = target / REPORT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


def _results_section(summary: dict[str, Any]) -> str:
    esc = html.escape
    headers, rows = table_cells(summary)
    head = "".join(f"<th>{esc(cell)}</th>" for cell in headers)
    body = "".join("<tr" + (' class="floor"' if index == len(rows) - 1 else "") + ">"
                   + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for index, row in enumerate(rows))
    return (f'<table class="experiment"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            f'<p class="note">{esc(table_note(summary))}</p>')


def _metric_charts(summary: dict[str, Any]) -> str:
    charts = []
    for index, name in enumerate(summary["metrics"]):
        rows, floors = [], []
        for v_index, variant in enumerate(summary["variants"]):
            stats = variant["metrics"].get(name, {"n": 0})
            values = [float(x) for x in stats.get("values", {}).values() if _is_number(x)]
            if stats.get("floor") is not None:
                floors.append(stats["floor"])
            if not stats.get("n"):
                continue
            rows.append(Interval(variant["name"], stats["mean"], stats["mean"] - stats["std"],
                                 stats["mean"] + stats["std"], values, PALETTE[v_index % len(PALETTE)],
                                 f"{variant['name']}: {_spread_cell(stats)} over {stats['n']} seeds"))
        if not rows:
            continue
        direction = summary["higher_is_better"].get(name)
        better = "" if direction is None else " (higher is better)" if direction else " (lower is better)"
        guides = [(sum(floors) / len(floors), "real data")] if floors else []
        chart = interval_chart(rows, name + better, guides=guides, chart_id=f"chart-{name}", x_label=name)
        charts.append(f'<figure class="chart">{chart}</figure>')
    coverage_rows = []
    for v_index, variant in enumerate(summary["variants"]):
        steps = [s for s in variant.get("coverage", {}).get("first_full_coverage_step", {}).values() if s is not None]
        if steps:
            stats = spread(steps)
            coverage_rows.append(Interval(variant["name"], stats["mean"], stats["min"], stats["max"],
                                          [float(s) for s in steps], PALETTE[v_index % len(PALETTE)],
                                          f"{variant['name']}: {len(steps)} seeds covered every mode, first at "
                                          f"steps {', '.join(map(str, steps))}"))
    if coverage_rows:
        chart = interval_chart(coverage_rows, "first step with all modes covered (the seeds that got there; "
                               "bar: min to max)", chart_id="chart-coverage-step", x_label="step")
        charts.append(f'<figure class="chart">{chart}</figure>')
    if not charts:
        return '<p class="empty">No finished runs yet.</p>'
    return ('<p class="note">Each variant: its mean over seeds (filled dot), one standard deviation either side '
            '(bar) and each seed (hollow dots); the dashed line is what real data scores.</p>' + "".join(charts))


def _training_charts(summary: dict[str, Any], rows: Sequence[dict[str, Any]], folder: Path) -> str:
    """Each metric the runs evaluated while training, averaged over seeds at each step, one line per variant."""
    histories: dict[str, list[list[dict[str, Any]]]] = {}
    for row in rows:
        if row.get("status") == "finished":
            histories.setdefault(row["variant"], []).append(training_history(read_metrics(folder / row["run"])))
    charts = []
    for name in summary["metrics"]:
        series = []
        for index, variant in enumerate(summary["variants"]):
            by_step: dict[int, list[float]] = {}
            for history in histories.get(variant["name"], []):
                for entry in history:
                    if _is_number(entry.get(name)):
                        by_step.setdefault(entry["step"], []).append(float(entry[name]))
            if by_step:
                steps = sorted(by_step)
                series.append(Series(variant["name"], [float(s) for s in steps],
                                     [sum(by_step[s]) / len(by_step[s]) for s in steps], PALETTE[index % len(PALETTE)]))
        if series:
            chart = line_chart(series, f"{name}, mean over seeds", chart_id=f"chart-training-{name}",
                               width=SMALL_CHART_WIDTH)
            charts.append(f'<figure class="chart small">{chart}</figure>')
    if not charts:
        return ('<p class="empty">The runs did not evaluate while training: set eval_every in the spec to follow '
                "the metrics over the steps.</p>")
    return f'<div class="chart-grid">{"".join(charts)}</div>'


def _runs_section(summary: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    esc = html.escape
    metrics = summary["metrics"]
    head = "".join(f"<th>{esc(cell)}</th>" for cell in ["run", "status", "step", *metrics, "train seconds"])
    body = []
    for row in rows:
        values = row.get("metrics", {})
        cells = [f'<td><a href="{esc(row["run"])}/">{esc(row["run"])}</a></td>', f"<td>{esc(row['status'])}</td>",
                 f"<td>{esc(_format(row.get('step')))}</td>"]
        cells += [f"<td>{esc(_format(values.get(name)))}</td>" for name in metrics]
        cells.append(f"<td>{esc(_format(row.get('train_seconds')))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        return '<p class="empty">No run is done yet.</p>'
    return ('<p class="note">Each run is an ordinary run folder: <code>ganforge report RUN</code> shows its curves '
            f'and samples.</p><table class="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


__all__ = [
    "ExperimentResult",
    "ExperimentSpec",
    "PlannedRun",
    "Variant",
    "is_experiment",
    "load_spec",
    "parse_spec",
    "plan_runs",
    "run_experiment",
    "run_one",
    "spread",
    "write_experiment_report",
    "write_summary",
]
