"""One resumable training state per folder: ``RUN/checkpoints/step_NNNNNNN/``.

- ``generator.safetensors``, ``discriminator.safetensors``: the weights and BatchNorm statistics;
- ``training.safetensors``: both optimizers' tensors, the noise RNG and the data stream's position;
- ``state.json``: step, the run's resolved config, the optimizers' hyper-parameters.

Nothing is unpickled, so loading a checkpoint cannot run code. A checkpoint is
written to a temporary folder, flushed to disk and renamed into place, so a
crash mid-save leaves the previous checkpoints whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ganforge.config import RunConfig
from ganforge.errors import CheckpointError, ConfigError

FORMAT_VERSION = 1
CHECKPOINT_FILES = ("generator.safetensors", "discriminator.safetensors", "training.safetensors", "state.json")
_STEP_FOLDER = re.compile(r"^step_(\d+)$")


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
            try:
                module.load_state_dict(weights)
            except RuntimeError:
                raise CheckpointError(
                    f"checkpoint {self.path} holds a {name} of another shape than its config describes: "
                    "the file was changed or comes from another model"
                ) from None

    def restore_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        prefix = f"optimizer.{name}."
        state: dict[int, dict[str, Tensor]] = {}
        for key, tensor in self.training.items():
            if key.startswith(prefix):
                index, field = key[len(prefix):].split(".", 1)
                state.setdefault(int(index), {})[field] = tensor
        optimizer.load_state_dict({"state": state, "param_groups": self.state["optimizers"][name]})

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
    """Write the state after ``step`` atomically and keep only the ``keep`` most recent (0 = all)."""
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step_{step:07d}"
    temporary = folder / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()

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

    _save_tensors(generator.state_dict(), temporary / "generator.safetensors")
    _save_tensors(discriminator.state_dict(), temporary / "discriminator.safetensors")
    _save_tensors(training, temporary / "training.safetensors")
    state = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "config": config.to_dict(),
        "optimizers": param_groups,
    }
    _write_synced(temporary / "state.json", json.dumps(state, indent=1).encode())
    _fsync_path(temporary)
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)
    _fsync_path(folder)
    if keep:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _STEP_FOLDER.match(p.name)]
    return sorted(found, key=lambda p: int(_STEP_FOLDER.match(p.name).group(1)))  # type: ignore[union-attr]


def find_checkpoint(path: Path) -> Path:
    """A checkpoint folder given itself or its run folder (then the most recent one)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: pass a run folder (from --out) or one of its checkpoints")
    if (path / "state.json").exists() or _STEP_FOLDER.match(path.name):
        return path
    checkpoints = list_checkpoints(path)
    if not checkpoints:
        raise CheckpointError(f"{path} holds no checkpoints: pass a run folder written by 'ganforge train'")
    return checkpoints[-1]


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and check a checkpoint (a folder, or a run folder for its most recent one)."""
    folder = find_checkpoint(path)
    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {folder} is incomplete (missing {', '.join(missing)}): use an earlier one")
    try:
        state = json.loads((folder / "state.json").read_text())
        step = int(state["step"])
        config = RunConfig.from_dict(state["config"])
        if not isinstance(state["optimizers"], dict):
            raise TypeError("'optimizers' is not a mapping")
    except (ValueError, KeyError, TypeError, ConfigError) as error:
        raise CheckpointError(f"checkpoint {folder} has a damaged state.json ({error}): use an earlier one") from None
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {folder} has format version {state.get('format_version')}, "
            f"this ganforge reads version {FORMAT_VERSION}"
        )
    return Checkpoint(
        path=folder,
        step=step,
        config=config,
        generator=_load_tensors(folder / "generator.safetensors"),
        discriminator=_load_tensors(folder / "discriminator.safetensors"),
        training=_load_tensors(folder / "training.safetensors"),
        state=state,
    )


def _load_tensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint file {path} is corrupt or truncated ({str(error).splitlines()[0]}): use an earlier checkpoint"
        ) from None


def _save_tensors(tensors: dict[str, Tensor], path: Path) -> None:
    save_file({key: value.detach().cpu().contiguous() for key, value in tensors.items()}, path)
    _fsync_path(path)


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
