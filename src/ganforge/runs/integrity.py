"""What a checkpoint must satisfy before it is trusted: checksums that match, state.json fields of the right
type and range, and finite tensors.

state.json keeps a sha256 checksum of each tensor file under ``checksums``, and one of its own content (its
JSON without ``checksums``, in a canonical form) under ``checksums["state.json"]``, so a flipped bit anywhere
in a checkpoint is caught, a changed number in state.json included. Checkpoints written before checksums
existed (release 0.1.0) have none; their fields and tensors are checked all the same.

Each check raises ValueError with the problem in a few words, and state_mismatch describes weights that do
not fit a model; runs/checkpoint.py names the file around them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from torch import Tensor

from ganforge.config.resolve import resolve_model
from ganforge.config.schema import SECTIONS, RunConfig
from ganforge.config.validate import UPPER_LIMITS, validate
from ganforge.errors import ConfigError, shown

STATE_FILE = "state.json"
CHECKSUMS = "checksums"  # the state.json field that holds them
STATE_FIELDS = ("format_version", "step", "config", "optimizers")  # each required; CHECKSUMS since this release
OPTIMIZERS = ("generator", "discriminator")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LARGEST_STEP = UPPER_LIMITS["steps"][0]
# Adam's hyper-parameters as torch checks them (torch/optim/adam.py); other keys of a group must be plain values.
_AT_LEAST_ZERO = ("lr", "initial_lr", "eps", "weight_decay")
_CHOSEN_BY_TORCH = ("foreach", "fused")  # true, false or null (torch picks)
# Variants of Adam that ganforge never trains with: true would change the update (or need state it never saved).
_ALWAYS_OFF = ("amsgrad", "maximize", "capturable", "differentiable", "decoupled_weight_decay")


def file_checksum(path: Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def bytes_checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_checksum(state: dict[str, Any]) -> str:
    """The sha256 of state.json's content without its checksums: keys sorted, no spaces, so that the same
    values give the same checksum however the file is laid out."""
    content = {key: value for key, value in state.items() if key != CHECKSUMS}
    return bytes_checksum(json.dumps(content, sort_keys=True, separators=(",", ":")).encode())


def check_checksum_field(state: dict[str, Any], tensor_files: tuple[str, ...]) -> dict[str, str] | None:
    """state.json's checksums (None for a checkpoint written before them), checked for form and against the
    state's own content."""
    if CHECKSUMS not in state:
        return None
    checksums = state[CHECKSUMS]
    expected = {*tensor_files, STATE_FILE}
    if not isinstance(checksums, dict) or set(checksums) != expected:
        raise ValueError(f"'{CHECKSUMS}' is {shown(checksums)}, not one sha256 for each of "
                         f"{', '.join(sorted(expected))}")
    for name, checksum in checksums.items():
        if not isinstance(checksum, str) or not _SHA256.match(checksum):
            raise ValueError(f"the checksum of {name} is {shown(checksum)}, not 64 hex digits")
    if state_checksum(state) != checksums[STATE_FILE]:
        raise ValueError("its content does not match its checksum: it changed after it was written")
    return checksums


def check_state_fields(state: dict[str, Any], folder_step: int | None) -> RunConfig:
    """Check every field but the format version and the checksums; returns the run's config.

    ``folder_step`` is the step in the folder's name (``step_NNNNNNN``), None for a folder named otherwise.
    """
    unknown = [key for key in state if key not in (*STATE_FIELDS, CHECKSUMS)]
    missing = [key for key in STATE_FIELDS if key not in state]
    if unknown or missing:
        raise ValueError(f"field {shown(unknown[0])} is unknown" if unknown else f"field '{missing[0]}' is missing")
    step = state["step"]
    if type(step) is not int or not 0 <= step <= _LARGEST_STEP:
        raise ValueError(f"'step' is {shown(step)}, not a whole number from 0 to {_LARGEST_STEP:,}")
    if folder_step is not None and step != folder_step:
        raise ValueError(f"'step' is {step} in a folder named for step {folder_step}")
    config = _check_config(state["config"])
    optimizers = state["optimizers"]
    if not isinstance(optimizers, dict) or sorted(optimizers) != sorted(OPTIMIZERS):
        raise ValueError(f"'optimizers' is {shown(optimizers)}, not a mapping of {' and '.join(OPTIMIZERS)}")
    for name in OPTIMIZERS:
        groups = optimizers[name]
        if not isinstance(groups, list) or not groups:
            raise ValueError(f"the {name} optimizer's groups are {shown(groups)}, not a list of parameter groups")
        for group in groups:
            _check_group(name, group)
        indices = [index for group in groups for index in group["params"]]
        if indices != list(range(len(indices))):
            raise ValueError(f"the {name} optimizer's 'params' are {shown(indices)}, not 0, 1, 2, ... in order")
    return config


def first_non_finite(tensors: dict[str, Tensor]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, None when all are finite."""
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            return key
    return None


def state_mismatch(expected: dict[str, Tensor], found: dict[str, Tensor]) -> str:
    """What differs between a module's state dict and tensors from a file ('' when they fit)."""
    parts = [f"'{key}' is {shape_text(found[key])} in the file, {shape_text(tensor)} in the model"
             for key, tensor in expected.items() if key in found and found[key].shape != tensor.shape][:1]
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    if missing:
        parts.append(f"missing {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected {_names(unexpected)}")
    return "; ".join(parts)


def _names(keys: list[str]) -> str:
    listed = ", ".join(f"'{key}'" for key in keys[:2])
    return listed + (f" and {len(keys) - 2} more" if len(keys) > 2 else "")


def shape_text(tensor: Tensor) -> str:
    """A tensor's shape as 3x4, or 'a scalar'."""
    return "x".join(map(str, tensor.shape)) or "a scalar"


def _check_config(values: object) -> RunConfig:
    """The run's resolved config: each section a mapping, the model and data named, every value valid, and a
    model that can be built (keys added since the checkpoint was written take their defaults)."""
    if not isinstance(values, dict) or not all(isinstance(values.get(section), dict) for section in SECTIONS):
        raise ValueError(f"'config' is {shown(values)}, not a mapping of the sections {', '.join(SECTIONS)}")
    for section, key in (("model", "model"), ("data", "data")):
        if values[section].get(key) is None:
            raise ValueError(f"'config' names no {key} (its {section} section has no '{key}')")
    try:
        config = RunConfig.from_dict(values)
        validate(config)
        resolve_model(config.model)
    except (ConfigError, ValueError, TypeError) as error:
        raise ValueError(f"'config' does not hold a valid run config: {error}") from None
    return config


def _check_group(optimizer: str, group: object) -> None:
    """One parameter group of ganforge's Adam: numbers finite and in range, flags as ganforge sets them."""
    where = f"the {optimizer} optimizer's"
    if not isinstance(group, dict):
        raise ValueError(f"{where} group {shown(group)} is not a mapping")
    params = group.get("params")
    if not isinstance(params, list) or not params or any(type(index) is not int for index in params):
        raise ValueError(f"{where} 'params' is {shown(params)}, not a list of parameter indices")
    if "lr" not in group:
        raise ValueError(f"{where} group has no 'lr'")
    for key in _AT_LEAST_ZERO:
        if key in group and not _number_at_least_zero(group[key]):
            raise ValueError(f"{where} '{key}' is {shown(group[key])}, not a finite number >= 0")
    betas = group.get("betas", [0.0, 0.0])
    if not (isinstance(betas, list) and len(betas) == 2
            and all(_number_at_least_zero(beta) and beta < 1 for beta in betas)):
        raise ValueError(f"{where} 'betas' is {shown(betas)}, not two numbers from 0 to below 1")
    for key, value in group.items():
        if key in _CHOSEN_BY_TORCH and not (value is None or isinstance(value, bool)):
            raise ValueError(f"{where} '{key}' is {shown(value)}, not true, false or null")
        if key in _ALWAYS_OFF and value is not False:
            raise ValueError(f"{where} '{key}' is {shown(value)}: ganforge's Adam always has it false")
        known = key in (*_AT_LEAST_ZERO, *_CHOSEN_BY_TORCH, *_ALWAYS_OFF, "params", "betas")
        if not known and isinstance(value, (list, dict)):
            raise ValueError(f"{where} {shown(key)} is {shown(value)}, not a plain value")


def _number_at_least_zero(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value)) and value >= 0
    except OverflowError:  # an integer beyond any float
        return False
