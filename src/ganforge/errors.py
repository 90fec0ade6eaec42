"""User-facing errors: one line that names the problem and the fix."""

from __future__ import annotations

import errno
import math
import reprlib


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


_FILESYSTEM_FIXES = {  # errno -> what to do, for the one line a file-system error becomes
    errno.ENOSPC: "free disk space, then run the command again",
    errno.EFBIG: "free disk space or raise the file-size limit, then run the command again",
    errno.EDQUOT: "free space within your disk quota, then run the command again",
    errno.EROFS: "the file system is read-only: write to a folder on a writable disk (--out), or copy the run there",
    errno.EACCES: "you may not use that path: choose another folder (--out) or change its permissions",
    errno.EPERM: "you may not use that path: choose another folder (--out) or change its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "it is a folder where a file is needed: name a file",
    errno.EEXIST: "something is already there: choose another path",
    errno.ENOENT: "it does not exist: check the path",
    errno.ENAMETOOLONG: "the name is too long for the file system: choose a shorter path",
}


def filesystem_error(error: OSError) -> str:
    """One line for an OSError: the path, the system's reason, and what to do."""
    where = f"{error.filename}" if error.filename else "a file"
    if error.filename2:
        where += f" -> {error.filename2}"
    reason = error.strerror or type(error).__name__
    fix = _FILESYSTEM_FIXES.get(error.errno or 0, "check the path, its permissions and the free disk space")
    return f"could not use {where} ({reason}): {fix}"


class _ShortRepr(reprlib.Repr):
    """repr() cut to a few elements and characters, so that a message about a YAML alias bomb
    ("billion laughs": a billion strings through shared references) or a huge number stays one short line."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 2, 60, 60, 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:  # repr() of more than 4300 digits raises ValueError
            digits = int((x.bit_length() - 1) * math.log10(2)) + 1
            digits += abs(x) >= 10**digits
            return f"{'-' if x < 0 else ''}<an integer of {digits} digits>"
        return super().repr_int(x, level)


shown = _ShortRepr().repr  # repr() short enough for a one-line message
