"""Ctrl-C and SIGTERM as a request to stop at the end of the current step, with a checkpoint; and Ctrl-C
during start-up without the half-imported modules that would turn it into an unrelated traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

SAVING_MESSAGE = "saving checkpoint, Ctrl-C again to abort without saving"


class StopRequest:
    """Turns SIGINT/SIGTERM into a request to stop after the current step and save a checkpoint.

    A second Ctrl-C does not cut the checkpoint short: it says how to, and only a third one aborts
    (KeyboardInterrupt), so a user who presses Ctrl-C twice in a row still keeps the work since the last one.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: str | None = None  # the signal's name once one arrived
        self.interrupts_after_request = 0  # Ctrl-Cs since the request: 1 warns, 2 aborts
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested is None:
            self.requested = signal.Signals(signum).name
            return
        if signum != signal.SIGINT:
            return
        self.interrupts_after_request += 1
        if self.interrupts_after_request > 1:
            raise KeyboardInterrupt
        with contextlib.suppress(OSError):  # straight to the file: the interrupted code may be printing itself
            os.write(2, f"\n{SAVING_MESSAGE}\n".encode())


@contextlib.contextmanager
def interrupts_between_imports() -> Iterator[None]:
    """Ctrl-C that comes while a module is being imported takes effect the moment that import has finished.

    An import cut short leaves a half-made module behind (numpy's then recurses without end when touched), so
    a Ctrl-C during the command's start-up would end in an unrelated traceback. The KeyboardInterrupt is raised
    instead in the code that asked for the import, once it returns. Used by the ``ganforge`` command only; the
    Python API leaves the signals alone.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:  # ignored (nohup) or someone else's
        yield
        return
    armed = False

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal armed
        importer = _importer(frame)
        if importer is None:
            raise KeyboardInterrupt
        # The importer's next trace event comes when its import has returned; tracing is switched on for it alone.
        importer.f_trace = _raise_interrupt
        sys.settrace(_trace_no_new_frames)
        armed = True

    signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if armed:
            sys.settrace(None)


def _importer(frame: FrameType | None) -> FrameType | None:
    """The frame that the outermost import running in ``frame``'s stack was called from; None when none runs."""
    importer = None
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            importer = frame.f_back
        frame = frame.f_back
    return importer


def _trace_no_new_frames(frame: FrameType, event: str, arg: Any) -> None:
    return None


def _raise_interrupt(frame: FrameType, event: str, arg: Any) -> None:
    sys.settrace(None)
    raise KeyboardInterrupt
