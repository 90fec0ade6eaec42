"""Learning-rate schedules: the fraction of the base learning rate each step uses.

Decaying the rates late in training lets the networks settle instead of wandering around the
equilibrium, which sharpens the samples (``--lr-schedule linear|cosine --lr-floor F``).
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine")


def learning_rate_factor(schedule: str, step: int, total: int, floor: float) -> float:
    """The factor of the base rate at ``step`` (1-based) of ``total``: 1 at the start, ``floor`` at the end.

    ``constant`` is 1 throughout; ``linear`` falls in a straight line; ``cosine`` follows half a cosine.
    """
    if schedule == "constant" or total <= 1:
        return 1.0
    progress = min(max(step - 1, 0) / (total - 1), 1.0)
    if schedule == "linear":
        decay = 1.0 - progress
    elif schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown learning-rate schedule {schedule!r} (use one of {', '.join(SCHEDULES)})")
    return floor + (1.0 - floor) * decay
