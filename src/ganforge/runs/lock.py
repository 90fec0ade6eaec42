"""One process at a time in a run folder: ``RUN/.ganforge.lock`` while a process trains there.

Two trainers in one folder would interleave their rows in metrics.jsonl and their checkpoints. The lock is an
advisory ``flock`` on that file, which the kernel drops when its process ends, however it ends: a file left by a
killed process is taken over with a warning, and a reused pid never holds a folder. The file names its owner
(pid and host) for the message that refuses a second process; it is removed when its owner is done.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.runs.files import other_process_alive

LOCK_FILE = ".ganforge.lock"
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)  # a file system without flock
_held: dict[Path, int] = {}  # run folders this process holds -> its pid (a forked child holds none of them)
logger = logging.getLogger("ganforge")


@contextlib.contextmanager
def hold_run_folder(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` (created when missing) for this process while the block runs.

    A folder another process holds is a GanforgeError naming that process. Holding a folder this process
    already holds is free (an experiment's runner holds the run its training holds too). At the end the lock
    file goes, and so do the folders this call created when they are still empty (a start that failed).
    """
    key = Path(os.path.abspath(run_dir))
    if _held.get(key) == os.getpid():
        yield
        return
    created = _make_folder(run_dir)
    try:
        descriptor = _acquire(run_dir)
    except BaseException:
        _remove_empty(created)
        raise
    _held[key] = os.getpid()
    try:
        yield
    finally:
        del _held[key]
        with contextlib.suppress(OSError):  # removed while still locked: a process waiting then opens a new file
            (run_dir / LOCK_FILE).unlink()
        os.close(descriptor)
        _remove_empty(created)


def _make_folder(run_dir: Path) -> list[Path]:
    """Create ``run_dir`` and its missing parents; returns those created, the deepest first."""
    if run_dir.exists() and not run_dir.is_dir():
        raise GanforgeError(f"{run_dir} is a file, not a folder: name a new folder for the run")
    missing = [folder for folder in (run_dir, *run_dir.parents) if not folder.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GanforgeError(f"cannot create the run folder {run_dir} ({error.strerror}): "
                            "name a folder where you can write") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty: something else was written there
            return


def _acquire(run_dir: Path) -> int:
    """Lock ``RUN/.ganforge.lock`` and write this process's pid and host into it; returns its descriptor."""
    path = run_dir / LOCK_FILE
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as error:
            raise GanforgeError(f"cannot write the lock file {path} ({error.strerror}): a run folder must be "
                                "writable to train in it (check its permissions, or copy the run elsewhere)") from None
        try:
            locked = _try_lock(descriptor, path)
            replaced = locked and _replaced(descriptor, path)
        except BaseException:
            os.close(descriptor)
            raise
        if not locked:
            os.close(descriptor)
            raise GanforgeError(_held_by(run_dir, _read_owner(path)))
        if replaced:  # its owner removed the file between our open and our lock: lock the file now there
            os.close(descriptor)
            continue
        previous = _read_owner(path)
        if previous is not None and previous.get("pid") != os.getpid():
            logger.warning(f"{path} was left by process {previous.get('pid')} on {previous.get('host')}, which "
                           "ended without removing it (killed?): this process takes the run folder over")
        os.ftruncate(descriptor, 0)
        os.write(descriptor, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        return descriptor


def _try_lock(descriptor: int, path: Path) -> bool:
    """flock without waiting; where the file system has no flock, the pid in the file decides."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno not in _NO_FLOCK:
            raise
        owner = _read_owner(path) or {}
        pid = owner.get("pid")
        return not (isinstance(pid, int) and owner.get("host") == socket.gethostname() and other_process_alive(pid))
    return True


def _replaced(descriptor: int, path: Path) -> bool:
    """Whether ``path`` no longer names the file open as ``descriptor``."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return True
    opened = os.fstat(descriptor)
    return (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino)


def _read_owner(path: Path) -> dict[str, object] | None:
    """The owner written in a lock file ({"pid": ..., "host": ...}), or None (no file, empty, not ours)."""
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _held_by(run_dir: Path, owner: dict[str, object] | None) -> str:
    who = f"process {owner.get('pid')} on {owner.get('host')}" if owner else "another process"
    return (f"{run_dir} is being trained by {who}: wait for it to finish or stop it (two processes in one run "
            "folder would mix their logs and checkpoints)")
