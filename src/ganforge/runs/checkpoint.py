"""One resumable training state per folder: ``RUN/checkpoints/step_NNNNNNN/``.

- ``generator.safetensors``, ``discriminator.safetensors``: the weights and BatchNorm statistics;
- ``training.safetensors``: both optimizers' tensors, the noise RNG and the data stream's position;
- ``state.json``: step, the run's resolved config, the optimizers' hyper-parameters, and a sha256 checksum
  of each file (runs/integrity.py).

Nothing is unpickled, so loading a checkpoint cannot run code. Nothing unchecked is trusted either: a
checkpoint loads only when its checksums match, every state.json field has a sane type and range and
every tensor is finite; anything else is a CheckpointError naming the file.

Crash safety: a checkpoint is written into ``.step_NNNNNNN.tmp-PID/``, each file
and the folder are flushed to disk, and only then is it renamed into place, so a
process killed mid-save leaves the previous checkpoints whole (and a temporary
folder, which readers ignore and the next save of a later process removes).
Old checkpoints are renamed out of the way before they are deleted, so no
reader ever sees half of one. A save that fails (a full disk) removes its
temporary folder and raises a CheckpointError naming the last good checkpoint.
Given a run folder, readers take the most recent checkpoint that passes every
check, and warn about newer damaged ones; a checkpoint folder named explicitly
must be whole.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from ganforge.config.schema import RunConfig
from ganforge.errors import CheckpointError, shown
from ganforge.runs.files import other_process_alive
from ganforge.runs.integrity import (
    CHECKSUMS,
    STATE_FILE,
    bytes_checksum,
    check_checksum_field,
    check_state_fields,
    file_checksum,
    first_non_finite,
    shape_text,
    state_checksum,
    state_mismatch,
)

FORMAT_VERSION = 1
EMA_SECTION = "generator_ema"  # section of training.safetensors holding G's moving average (--ema)
TENSOR_FILES = ("generator.safetensors", "discriminator.safetensors", "training.safetensors")
CHECKPOINT_FILES = (*TENSOR_FILES, STATE_FILE)
_STEP_FOLDER = re.compile(r"^step_(\d+)$")
# A save in progress (tmp) or a checkpoint being deleted or replaced (old), by the process PID.
_TEMPORARY_FOLDER = re.compile(r"^\.step_\d+\.(?:tmp|old)-(\d+)$")

EARLIER = "use an earlier checkpoint, or pass the run folder to take its latest readable one"

logger = logging.getLogger("ganforge")
_warned: set[tuple[str, str]] = set()  # (checkpoint, problem) pairs already warned about, so a resume warns once


class _UnreadableCheckpointError(CheckpointError):
    """A checkpoint folder that is incomplete, truncated, corrupt or of another format version."""

    def __init__(self, problem: str, fix: str = EARLIER) -> None:
        super().__init__(f"{problem}: {fix}")
        self.problem = problem


@dataclass
class Checkpoint:
    """A checkpoint read from disk; tensors are on the CPU."""

    path: Path
    step: int
    config: RunConfig
    generator: dict[str, Tensor]
    discriminator: dict[str, Tensor]
    training: dict[str, Tensor]
    state: dict[str, Any]

    def restore_models(self, generator: nn.Module, discriminator: nn.Module) -> None:
        for name, module, weights in (("generator", generator, self.generator),
                                      ("discriminator", discriminator, self.discriminator)):
            mismatch = state_mismatch(module.state_dict(), weights)
            if mismatch:
                raise CheckpointError(
                    f"checkpoint {self.path}: {name}.safetensors does not fit the {self.config.model.model} {name} "
                    f"its state.json describes ({mismatch}): the file was replaced or comes from another model; "
                    "use a checkpoint written by this run"
                )
            module.load_state_dict(weights)

    def restore_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        prefix = f"optimizer.{name}."
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        state: dict[int, dict[str, Tensor]] = {}
        try:
            for key, tensor in self.training.items():
                if key.startswith(prefix):
                    index, field = key[len(prefix):].split(".", 1)
                    parameter = parameters[int(index)]
                    if tensor.ndim and tensor.shape != parameter.shape:  # moments have their parameter's shape
                        raise ValueError(f"'{key}' is {shape_text(tensor)}, its parameter {shape_text(parameter)}")
                    state.setdefault(int(index), {})[field] = tensor
            optimizer.load_state_dict({"state": state, "param_groups": self.state["optimizers"][name]})
        except (ValueError, IndexError, KeyError, TypeError) as error:
            raise CheckpointError(
                f"checkpoint {self.path}: the {name} optimizer's state in training.safetensors/state.json does not fit "
                f"the model ({_first_line(error)}): the files were replaced or come from another model; "
                "use a checkpoint written by this run"
            ) from None

    def section(self, name: str) -> dict[str, Tensor]:
        """The tensors saved under ``name.`` (e.g. the data stream's state), without the prefix."""
        prefix = f"{name}."
        return {key[len(prefix):]: value for key, value in self.training.items() if key.startswith(prefix)}


def save_checkpoint(
    run_dir: Path,
    step: int,
    config: RunConfig,
    generator: nn.Module,
    discriminator: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    sections: dict[str, dict[str, Tensor]],
    keep: int = 0,
) -> Path:
    """Write the state after ``step`` atomically and keep only the ``keep`` most recent (0 = all).

    Raises CheckpointError when the files cannot be written (a full disk, a file size
    limit): the half-written folder is removed and the earlier checkpoints stay as they were.
    """
    final = checkpoint_path(run_dir, step)
    folder = final.parent
    temporary = folder / f".{final.name}.tmp-{os.getpid()}"

    training: dict[str, Tensor] = {}
    param_groups: dict[str, list[dict[str, Any]]] = {}
    for name, optimizer in optimizers.items():
        optimizer_state = optimizer.state_dict()
        param_groups[name] = optimizer_state["param_groups"]
        for index, values in optimizer_state["state"].items():
            for field, value in values.items():
                training[f"optimizer.{name}.{index}.{field}"] = torch.as_tensor(value)
    for section, tensors in sections.items():
        for key, value in tensors.items():
            training[f"{section}.{key}"] = value
    state: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "config": config.to_dict(),
        "optimizers": param_groups,
    }
    state = json.loads(json.dumps(state))  # the values as a reader will see them, so that its checksum agrees

    replaced: Path | None = None  # an existing checkpoint of the same step, renamed aside until the new one is in
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True)
            _fsync_path(folder.parent)
        _remove_stale_temporaries(folder)
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        checksums = {name: _save_tensors(tensors, temporary / name) for name, tensors in
                     zip(TENSOR_FILES, (generator.state_dict(), discriminator.state_dict(), training))}
        state[CHECKSUMS] = {**checksums, STATE_FILE: state_checksum(state)}
        _write_synced(temporary / STATE_FILE, json.dumps(state, indent=1).encode())
        _fsync_path(temporary)
        replaced = _move_aside(final) if final.exists() else None
        os.replace(temporary, final)
        _fsync_path(folder)
    except (OSError, SafetensorError) as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if replaced is not None and not final.exists():
            with contextlib.suppress(OSError):  # put back the checkpoint of the same step it was to replace
                os.replace(replaced, final)
        code, reason = _os_reason(error)
        fix = "free disk space" if code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) else f"make {folder} writable"
        good = latest_good_checkpoint(run_dir)
        then = f"continue with --resume {run_dir}" if good else "start the run again"
        raise CheckpointError(
            f"could not write checkpoint {final} ({reason}): "
            f"{f'the last good checkpoint {good} is intact' if good else 'no earlier checkpoint was written'}; "
            f"{fix}, then {then}"
        ) from None
    except BaseException:  # e.g. a second Ctrl-C: leave no half-written folder behind
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    if keep:
        for old in list_checkpoints(run_dir)[:-keep]:
            _delete_checkpoint(old)
    return final


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """The folder of the checkpoint after ``step``: ``RUN/checkpoints/step_NNNNNNN``."""
    return run_dir / "checkpoints" / f"step_{step:07d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint folders of a run (complete unless damaged after the save), oldest first.

    Temporary folders of saves in progress or killed mid-save (``.step_N.tmp-PID``) are not listed.
    """
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _STEP_FOLDER.match(p.name)]
    return sorted(found, key=lambda p: int(_STEP_FOLDER.match(p.name).group(1)))  # type: ignore[union-attr]


def find_checkpoint(path: Path) -> Path:
    """A checkpoint folder given itself, or given its run folder the most recent one that passes every check.

    Newer checkpoints of the run that are damaged (a file missing, truncated or corrupt, a checksum that
    does not match, a NaN) are skipped with a warning; a checkpoint folder named explicitly is returned as it is.
    """
    path = _checked_location(path)
    return path if _names_one_checkpoint(path) else _newest_good(path).path


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and check a checkpoint (a folder, or a run folder for its most recent good one)."""
    path = _checked_location(path)
    return _load_checked(path) if _names_one_checkpoint(path) else _newest_good(path)


def latest_good_checkpoint(run_dir: Path) -> Path | None:
    """The run's most recent checkpoint that passes every check; None when it has none."""
    try:
        return find_checkpoint(run_dir)
    except CheckpointError:
        return None


def _checked_location(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: pass a run folder (from --out) or one of its checkpoints")
    if not path.is_dir():
        hint = f" such as {path.parent}" if (path.parent / STATE_FILE).is_file() else ""
        raise CheckpointError(
            f"{path} is a file, not a run or checkpoint folder: pass a run folder (from --out) or a checkpoint "
            f"folder{hint} written by 'ganforge train' (ganforge never loads pickled .pt/.pth/.pkl files)"
        )
    return path


def _names_one_checkpoint(path: Path) -> bool:
    return (path / STATE_FILE).exists() or bool(_STEP_FOLDER.match(path.name))


def _newest_good(run_dir: Path) -> Checkpoint:
    """The run's most recent checkpoint that passes every check, warning once about each newer one that fails."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise CheckpointError(f"{run_dir} holds no checkpoints: pass a run folder written by 'ganforge train'")
    newest_error: _UnreadableCheckpointError | None = None
    for index in range(len(checkpoints) - 1, -1, -1):
        try:
            return _load_checked(checkpoints[index])
        except _UnreadableCheckpointError as error:
            newest_error = newest_error or error
            if index:
                previous = checkpoints[index - 1]
                _warn_once(checkpoints[index], f"{error.problem}; using the previous checkpoint {previous}")
    assert newest_error is not None
    earlier = "no earlier checkpoint" if len(checkpoints) == 1 else "no earlier readable checkpoint"
    raise _UnreadableCheckpointError(newest_error.problem,
                                    f"{run_dir} has {earlier}; train it again or restore its checkpoints from a backup")


def _load_checked(folder: Path) -> Checkpoint:
    """Read a checkpoint folder and check it all (runs/integrity.py). Raises _UnreadableCheckpointError."""
    state, config = _read_state(folder)
    tensors = {}
    for name in TENSOR_FILES:
        path = folder / name
        try:
            tensors[name] = load_file(path)
            matches = CHECKSUMS not in state or file_checksum(path) == state[CHECKSUMS][name]
        except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
            raise _corrupt(path, error) from None
        if not matches:
            raise _UnreadableCheckpointError(f"checkpoint file {path} does not match its checksum in {STATE_FILE}: "
                                             "it changed after it was written (a disk error or an edit)")
        bad = first_non_finite(tensors[name])
        if bad is not None:
            raise _UnreadableCheckpointError(f"checkpoint file {path} holds NaN or infinite values in '{bad}'")
    generator, discriminator, training = (tensors[name] for name in TENSOR_FILES)
    return Checkpoint(path=folder, step=state["step"], config=config, generator=generator,
                      discriminator=discriminator, training=training, state=state)


def _read_state(folder: Path) -> tuple[dict[str, Any], RunConfig]:
    """state.json, with its checksum and every field checked. Raises _UnreadableCheckpointError."""
    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
    if missing:
        raise _UnreadableCheckpointError(f"checkpoint {folder} is incomplete (missing {', '.join(missing)})")
    try:
        state = json.loads((folder / STATE_FILE).read_bytes())
        if not isinstance(state, dict):
            raise TypeError("not a JSON object")
    except (ValueError, TypeError, RecursionError, OSError) as error:
        raise _damaged_state(folder, error) from None
    version = state.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise _UnreadableCheckpointError(
            f"checkpoint {folder} has format version {shown(version)}, this ganforge reads version {FORMAT_VERSION}",
            "use the ganforge version that wrote it, or an earlier checkpoint")
    step_folder = _STEP_FOLDER.match(folder.name)
    try:
        check_checksum_field(state, TENSOR_FILES)
        config = check_state_fields(state, int(step_folder.group(1)) if step_folder else None)
    except ValueError as error:
        raise _damaged_state(folder, error) from None
    return state, config


def _damaged_state(folder: Path, error: Exception) -> _UnreadableCheckpointError:
    return _UnreadableCheckpointError(f"checkpoint {folder} has a damaged state.json ({_first_line(error)})")


def _corrupt(path: Path, error: Exception) -> _UnreadableCheckpointError:
    return _UnreadableCheckpointError(f"checkpoint file {path} is corrupt or truncated ({_first_line(error)})")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _os_reason(error: BaseException) -> tuple[int | None, str]:
    """The errno and the operating system's words for a failed write ('No space left on device', 'File too large')."""
    if isinstance(error, OSError) and error.strerror:
        return error.errno, error.strerror
    code = re.search(r"os error (\d+)", str(error))  # safetensors reports I/O errors as text
    return (int(code.group(1)), os.strerror(int(code.group(1)))) if code else (None, _first_line(error))


def _warn_once(folder: Path, message: str) -> None:
    key = (str(folder), message)
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary folders of saves and deletions whose process is gone (killed mid-save)."""
    for entry in folder.iterdir():
        match = _TEMPORARY_FOLDER.match(entry.name)
        if match and entry.is_dir() and not other_process_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


def _move_aside(checkpoint: Path) -> Path:
    """Rename a checkpoint out of the readers' way (one rename), to be deleted after."""
    aside = checkpoint.parent / f".{checkpoint.name}.old-{os.getpid()}"
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(checkpoint, aside)
    return aside


def _delete_checkpoint(checkpoint: Path) -> None:
    try:
        aside = _move_aside(checkpoint)
    except OSError:
        aside = checkpoint
    shutil.rmtree(aside, ignore_errors=True)


def _save_tensors(tensors: dict[str, Tensor], path: Path) -> str:
    """Write a safetensors file (flushed, with the umask's permissions) and return its checksum."""
    data = save({key: value.detach().cpu().contiguous() for key, value in tensors.items()})
    _write_synced(path, data)
    return bytes_checksum(data)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
