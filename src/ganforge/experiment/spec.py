"""An experiment's spec: reading it, checking every key and value, and the variants it defines.

Every problem is one ConfigError naming the spec file (or ``spec`` for a mapping), raised before anything trains.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganforge.config.io import load_yaml
from ganforge.config.schema import config_keys, flatten_keys
from ganforge.errors import ConfigError, shown

SPEC_KEYS = ("description", "vary", "seeds", "metrics")  # the spec's own keys; every other key is config
DEFAULT_SEEDS = 3
MAX_NAME_CHARS = 60  # characters of one value in a variant's folder name
MAX_RUNS = 10_000  # runs in one experiment: weeks of a 2-core machine at a minute a run, and the plan fits in memory


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
    vary = _parse_vary(values.get("vary"), source)
    seeds = _parse_seeds(values.get("seeds"), source)
    variants = math.prod(len(values) for values in vary.values())
    if variants * len(seeds) > MAX_RUNS:
        raise ConfigError(f"{source}: {variants:,} variants x {len(seeds):,} seeds make {variants * len(seeds):,} runs, "
                          f"more than the {MAX_RUNS:,} one experiment may hold: vary fewer values or use fewer seeds")
    return ExperimentSpec(base, vary, seeds, _parse_metrics(values.get("metrics"), source), description, source)


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
        if not 1 <= raw <= MAX_RUNS:
            raise ConfigError(f"{source}: seeds must be a count from 1 to {MAX_RUNS:,} (the seeds per variant), "
                              f"got {shown(raw)}")
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
