"""One process of a torchrun job in tests/test_distributed.py: real ``ganforge train`` commands, observed.

    torchrun --standalone --nproc-per-node 2 tests/distributed_worker.py SPEC.json

SPEC.json: {"results": folder, "watch": folder, "runs": [{"name": ..., "argv": [...]}, ...]}. Each run is
the ganforge command line ``argv`` (through ganforge.cli.main, as ``torchrun -m ganforge`` runs it), in
this process, one after the other. A run may add "fail": {"rank": R, "step": S} (that rank raises a
DataError after step S) or "nan": {"rank": R, "step": S} (that rank alone sees a NaN D loss at step S).
Per run and rank the worker writes RESULTS/NAME/rank{R}.json (the data and noise this process drew, the
files it wrote under ``watch``, the exit status) and RESULTS/NAME/rank{R}.safetensors (G and D at the end).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ganforge import cli
from ganforge.data import MixtureData, TensorData
from ganforge.errors import DataError
from ganforge.train import loop
from ganforge.train import run as train_run
from ganforge.train.loop import TrainResult
from ganforge.train.monitor import Meter
from ganforge.train.trainer import Trainer

RANK = int(os.environ["RANK"])
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Observer:
    """What this process did during the current run."""

    def __init__(self, watch: Path) -> None:
        self.watch = watch.resolve()
        self.reset()

    def reset(self) -> None:
        self.draws: list[list[Any]] = []  # TensorData: the indices of each batch; MixtureData: its points
        self.noise: list[list[list[float]]] = []
        self.writes: list[str] = []  # "event path" for each change under the watched folder
        self.trainer: Trainer | None = None
        self.fail: dict[str, int] | None = None  # the current run's injected failure
        self.nan: dict[str, int] | None = None  # the current run's injected NaN

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        """sys.addaudithook: note every file opened for writing, folder made, renamed or removed under watch."""
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE_FLAGS)
            paths = [path] if writing else []
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate"):
            paths = [args[0]]
        elif event == "os.rename":
            paths = [args[0], args[1]]
        else:
            return
        for path in paths:
            if isinstance(path, (str, bytes, os.PathLike)) and self._watched(os.fsdecode(path)):
                self.writes.append(f"{event} {os.fsdecode(path)}")

    def _watched(self, path: str) -> bool:
        try:
            return Path(os.path.abspath(path)).is_relative_to(self.watch)
        except (OSError, ValueError):
            return False


def observe(observer: Observer) -> None:
    """Wrap the few functions whose calls the tests look at, or that fail on purpose."""
    next_index, next_points = TensorData._next_index, MixtureData.next_batch
    sample_noise, fit, train_step = Trainer.sample_noise, train_run.fit, loop.train_step
    meter_add = Meter.add

    def record_index(self: TensorData, batch_size: int) -> torch.Tensor:
        index = next_index(self, batch_size)
        observer.draws.append(index.tolist())
        return index

    def record_points(self: MixtureData, batch_size: int) -> torch.Tensor:
        points = next_points(self, batch_size)
        observer.draws.append(points.tolist())
        return points

    def record_noise(self: Trainer, count: int) -> torch.Tensor:
        noise = sample_noise(self, count)
        observer.noise.append(noise.tolist())
        return noise

    def capture(trainer: Trainer, *args: Any, **kwargs: Any) -> TrainResult:
        observer.trainer = trainer
        return fit(trainer, *args, **kwargs)

    def step_then_fail(trainer: Trainer) -> None:
        train_step(trainer)
        fail = observer.fail
        if fail is not None and RANK == fail["rank"] and trainer.step == fail["step"]:
            raise DataError(f"injected failure on rank {RANK} at step {trainer.step}")

    def add_nan(self: Meter, step: int, **values: torch.Tensor) -> None:
        nan = observer.nan
        if nan is not None and RANK == nan["rank"] and step == nan["step"] and "d_loss" in values:
            values["d_loss"] = torch.tensor(float("nan"))
        meter_add(self, step, **values)

    TensorData._next_index = record_index
    MixtureData.next_batch = record_points
    Trainer.sample_noise = record_noise
    train_run.fit = capture
    loop.train_step = step_then_fail
    Meter.add = add_nan


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    observer = Observer(Path(spec["watch"]))
    observe(observer)
    sys.addaudithook(observer.audit)
    for run in spec["runs"]:
        observer.reset()
        observer.fail, observer.nan = run.get("fail"), run.get("nan")
        sys.argv = ["ganforge", *run["argv"]]
        try:
            cli.main()
            status = 0
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else 1
        folder = Path(spec["results"]) / run["name"]
        folder.mkdir(parents=True, exist_ok=True)
        result = {"status": status, "draws": observer.draws, "noise": observer.noise, "writes": observer.writes}
        (folder / f"rank{RANK}.json").write_text(json.dumps(result))
        if observer.trainer is not None:
            state = {f"generator.{k}": v for k, v in observer.trainer.generator.state_dict().items()}
            state |= {f"discriminator.{k}": v for k, v in observer.trainer.discriminator.state_dict().items()}
            save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, folder / f"rank{RANK}.safetensors")
        if status and not run.get("expect_failure"):
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
