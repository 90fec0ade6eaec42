"""Small crash-safe file operations that every writer of a run folder shares."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomically(path: Path, text: str) -> None:
    """Replace a small text file so that a crash leaves the old or the new version, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def other_process_alive(pid: int) -> bool:
    """Whether ``pid`` names a running process other than this one (a lock or temporary folder's owner)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return False
    return True
