"""Worker processes: each trains one run of an experiment, ``jobs`` of them at a time.

A worker is a fresh Python running :func:`worker_main` (``WORKER_CODE``) with its own torch thread count and its
own session; the experiment passes SIGINT/SIGTERM on to every worker, so each saves a checkpoint before it stops.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ganforge.errors import GanforgeError
from ganforge.experiment.folder import RUN_LOG_FILE, read_result
from ganforge.experiment.plan import PlannedRun
from ganforge.experiment.runner import progress_line, run_one

POLL_SECONDS = 0.2  # how often the scheduler looks at its worker processes
WORKER_CODE = """
try:
    from ganforge.experiment.pool import worker_main
except KeyboardInterrupt:  # stopped while still importing torch
    raise SystemExit(130)
worker_main()
"""


def run_in_workers(pending: list[PlannedRun], jobs: int, share: int, threads: int | None,
                   say: Callable[[str], None]) -> tuple[int, bool]:
    """``jobs`` worker processes at a time, each with at most ``share`` threads (``threads`` of them, or auto);
    SIGINT/SIGTERM are passed on to them, so each saves a checkpoint."""
    queue = list(pending)
    running: dict[subprocess.Popen[bytes], tuple[PlannedRun, float]] = {}
    signals: list[int] = []
    failures: list[str] = []
    completed = 0

    def pass_on(signum: int, frame: object) -> None:
        signals.append(signum)
        for process in list(running):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)  # a third Ctrl-C aborts their checkpoints, as in 'ganforge train'

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, pass_on) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        while queue or running:
            while queue and len(running) < jobs and not signals and not failures:
                run = queue.pop(0)
                running[_launch(run, share, threads)] = (run, time.monotonic())
            if not running:
                break
            time.sleep(POLL_SECONDS)
            for process in [p for p in running if p.poll() is not None]:
                run, start = running.pop(process)
                row = read_result(run.run_dir)
                if process.returncode == 0 and row is not None:
                    completed += 1
                    say(progress_line(completed, len(pending), run, row, time.monotonic() - start))
                elif not signals:
                    failures.append(_failure(run, process.returncode))
    finally:
        for process in running:  # only after an unexpected error here: let them checkpoint and stop
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in running:
            process.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failures:
        more = f" ({len(failures) - 1} more run{'s' if len(failures) > 2 else ''} failed)" if len(failures) > 1 else ""
        raise GanforgeError(failures[0] + more)
    return completed, bool(signals)


def _launch(run: PlannedRun, share: int, threads: int | None) -> subprocess.Popen[bytes]:
    """Start a worker process for one run; its output goes to the run's log.txt. It gets its own session,
    so a Ctrl-C reaches it only once, passed on by the experiment."""
    env = {**os.environ, "OMP_NUM_THREADS": str(share), "MKL_NUM_THREADS": str(share)}
    with open(run.run_dir / RUN_LOG_FILE, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE, str(run.run_dir), str(share), str(threads or "auto")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)


def _failure(run: PlannedRun, returncode: int) -> str:
    """A failed worker's error line from its log, or where to look."""
    log = run.run_dir / RUN_LOG_FILE
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    error = next((line[len("error: "):] for line in reversed(lines) if line.startswith("error: ")), None)
    if error is not None:
        return f"{run.run_dir}: {error}"
    return f"{run.run_dir}: its process ended with status {returncode}: see {log}"


def worker_main() -> None:
    """Entry point of a worker process: ``RUN_DIR SHARE THREADS|auto``; exit status 0 done, 130 stopped, 2 error."""
    run_dir, share, threads = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(share)
    try:
        row = run_one(run_dir, None if threads == "auto" else int(threads))
    except GanforgeError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(130 if row["status"] == "stopped" else 0)
