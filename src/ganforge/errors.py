"""User-facing errors: one line that names the problem and the fix."""

from __future__ import annotations


class GanforgeError(Exception):
    """A problem with the user's input or environment, reported as one clear line.

    The CLI prints ``error: <message>`` and exits with status 2; Python callers
    can catch it. Messages name the bad value and what to do instead.
    """


class ConfigError(GanforgeError):
    """An unknown key, a bad value, or flags that contradict each other."""


class DataError(GanforgeError):
    """A data source that is missing, empty, unreadable or the wrong shape."""


class CheckpointError(GanforgeError):
    """A checkpoint that is missing, corrupt, or built for another model."""


class TrainingDivergedError(GanforgeError):
    """A loss or weight became NaN or infinite; the last good checkpoint is kept."""

    step: int | None = None  # the first step at which a non-finite value was seen


class DistributedError(GanforgeError):
    """Processes of a torchrun job that cannot work together: no GPU of their own, different data or steps."""
