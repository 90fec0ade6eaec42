"""ganforge: train Generative Adversarial Networks with PyTorch, from one command or three lines of Python."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ganforge.config.schema import DataConfig, ModelConfig, RunConfig, TrainConfig
from ganforge.errors import CheckpointError, ConfigError, DataError, GanforgeError, TrainingDivergedError

if TYPE_CHECKING:
    from ganforge.api import (
        TrainedGenerator,
        TrainResult,
        load,
        resume,
        run_experiment,
        save_samples,
        train,
        write_samples,
    )

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "GanforgeError",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "TrainedGenerator",
    "TrainingDivergedError",
    "load",
    "resume",
    "run_experiment",
    "save_samples",
    "train",
    "write_samples",
]

# The API's names come from ganforge.api when first used (PEP 562), so that `import ganforge` and the light
# commands (`ganforge --help`, `ganforge describe`) do not import the training stack.
_FROM_API = frozenset({"TrainResult", "TrainedGenerator", "load", "resume", "run_experiment", "save_samples", "train",
                       "write_samples"})

# `ganforge.train` is the API's function, though the subpackage ganforge.train has the same name. Python sets a
# package's attribute to its subpackage when the subpackage is first imported, so import it now (its __init__
# is a docstring) and drop that attribute: a later `import ganforge.train.loop` then leaves the name alone.
importlib.import_module("ganforge.train")
globals().pop("train", None)


def __getattr__(name: str) -> Any:
    if name in _FROM_API:
        value = getattr(importlib.import_module("ganforge.api"), name)
        globals()[name] = value
        return value
    if not name.startswith("__"):  # a subpackage not imported yet, as `import ganforge; ganforge.models` found it
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
