"""Which metrics exist, which a run can have, and which way each is better."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from ganforge.config.resolve import learns_points
from ganforge.config.schema import RunConfig
from ganforge.data import MIXTURES
from ganforge.errors import GanforgeError

MIXTURE_METRICS = ("modes_covered", "modes_covered_strict", "high_quality", "reverse_kl")
FEATURE_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")
CLASS_METRICS = ("classifier_score", "classes_covered", "class_kl")
STACKED_METRICS = ("modes_covered", "reverse_kl")
ALL_METRICS = tuple(dict.fromkeys(MIXTURE_METRICS + FEATURE_METRICS + CLASS_METRICS + STACKED_METRICS))
FEATURE_EXTRACTORS = ("classifier", "inception", "auto")  # auto: classifier for digit data, inception otherwise
DIGIT_DATA = ("digits", "stacked-digits")  # data the digit classifier understands
HIGHER_IS_BETTER = {
    "modes_covered": True, "modes_covered_strict": True, "high_quality": True, "reverse_kl": False,
    "fid": False, "kid": False, "precision": True, "recall": True, "density": True, "coverage": True,
    "classifier_score": True, "classes_covered": True, "class_kl": False,
}

Results = dict[str, float | int | str]


def available_metrics(config: RunConfig) -> list[str]:
    """The metrics a run can be evaluated with (by any feature extractor); the default set of :func:`evaluate`."""
    data = config.data.data
    if learns_points(config):
        return list(MIXTURE_METRICS) if data in MIXTURES else []
    if data == "digits":
        return [*FEATURE_METRICS, *CLASS_METRICS]
    if data == "stacked-digits":
        return [*FEATURE_METRICS, *STACKED_METRICS]
    return list(FEATURE_METRICS)


def resolve_feature_extractor(config: RunConfig, feature_extractor: str) -> str:
    """``classifier`` or ``inception``; ``auto`` is the classifier for digit data and inception otherwise."""
    if feature_extractor not in FEATURE_EXTRACTORS:
        raise GanforgeError(f"feature extractor '{feature_extractor}' is not one of {', '.join(FEATURE_EXTRACTORS)}")
    if feature_extractor == "auto":
        return "classifier" if config.data.data in DIGIT_DATA else "inception"
    return feature_extractor


def resolve_metrics(config: RunConfig, metrics: Sequence[str] | str | None) -> list[str]:
    """The requested metrics (None = all available; a string may list them with commas), checked against the run."""
    available = available_metrics(config)
    kind = f"this run generates 2-D points ({config.data.data})" if learns_points(config) else \
        f"this run generates images ({config.data.data})"
    if metrics is None:
        if not available:
            raise GanforgeError(f"no metric applies to this run: {kind}, and the mixture metrics need the modes of "
                                f"a built-in mixture ({', '.join(MIXTURES)})")
        return available
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else [str(m).strip() for m in metrics]
    names = list(dict.fromkeys(name for name in names if name))
    if not names:
        raise GanforgeError(f"no metric was named; choose from {', '.join(available) or 'none'}")
    for name in names:
        if name not in ALL_METRICS:
            close = difflib.get_close_matches(name, ALL_METRICS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"choose from {', '.join(available)}"
            raise GanforgeError(f"unknown metric '{name}': {hint}")
        if name not in available:
            if name in FEATURE_METRICS or name in CLASS_METRICS:
                need = "images" if name in FEATURE_METRICS else "digit images (digits)"
            elif name in STACKED_METRICS:
                need = "a 2-D mixture (ring8, grid25) or stacked-digits"
            else:
                need = "a 2-D mixture (ring8, grid25)"
            raise GanforgeError(f"metric '{name}' needs {need}, but {kind}: "
                                f"use {', '.join(available) or 'no metric'}")
    return names


# ---------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------
