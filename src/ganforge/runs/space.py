"""Room to write: free disk and memory checked before a big job starts, not discovered when it fails half-way."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ganforge.errors import GanforgeError


def readable_size(count: float) -> str:
    """Bytes for people: ``1.5 GB``."""
    if count < 1000:
        return f"{count:.0f} bytes"
    for unit in ("kB", "MB", "GB"):
        count /= 1000
        if count < 1000:
            return f"{count:.1f} {unit}"
    return f"{count / 1000:.1f} TB"


def free_disk(path: Path) -> int:
    """Free bytes on the file system that ``path`` (or its nearest existing parent) lives on."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def available_memory() -> int | None:
    """Bytes of memory a new allocation can use (Linux MemAvailable), or None where the system does not say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require_disk(path: Path, needed: int, what: str, fix: str) -> None:
    """Refuse to start writing ``what`` (``needed`` bytes) where the disk has no room for it."""
    free = free_disk(path)
    if needed > free:
        raise GanforgeError(f"{what} needs about {readable_size(needed)} but {path} has {readable_size(free)} free: "
                            f"{fix}")


def require_memory(needed: int, what: str, fix: str) -> None:
    """Refuse to build ``what`` (``needed`` bytes) in memory when the machine has not that much available."""
    available = available_memory()
    if available is not None and needed > available:
        raise GanforgeError(f"{what} needs about {readable_size(needed)} of memory but {readable_size(available)} "
                            f"is available: {fix}")
