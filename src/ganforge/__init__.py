"""ganforge: train Generative Adversarial Networks with PyTorch, from one command or three lines of Python."""

from ganforge.api import TrainedGenerator, TrainResult, load, resume, run_experiment, train, write_samples
from ganforge.config.schema import DataConfig, ModelConfig, RunConfig, TrainConfig
from ganforge.errors import CheckpointError, ConfigError, DataError, GanforgeError, TrainingDivergedError

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
    "train",
    "write_samples",
]
