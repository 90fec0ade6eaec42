"""A disk cache of what the evaluation computes on real images: their features, class probabilities,
stacked-digit modes and the real-data floors.

They depend only on the real images used, the extractor and the metrics, and take most of an evaluation's
time (stacked digits: 78,000 digit images through the classifier, and the floors' k-NN and KID maths),
so repeated evaluations of runs on the same data read them back. The key hashes the real images'
bytes with every setting that changes the result; a file that cannot be read is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from ganforge.runs.files import write_text_atomically

CACHE_VERSION = 1  # bump when what is cached, or how it is computed, changes
FOLDER = "evaluations"


def cache_path(cache_dir: Path, real: Tensor, settings: dict[str, Any]) -> Path:
    """The file (without suffix) for real images and the settings that decide their analysis."""
    digest = hashlib.sha256(json.dumps({"version": CACHE_VERSION, **settings}, sort_keys=True).encode())
    digest.update(str((tuple(real.shape), str(real.dtype))).encode())
    digest.update(real.contiguous().numpy().tobytes())
    return cache_dir / FOLDER / f"real-{digest.hexdigest()[:32]}"


def load(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """(tensors, floors) saved at ``path``, or None when absent or unreadable."""
    try:
        floors = json.loads(path.with_suffix(".json").read_text())
        tensors = load_file(path.with_suffix(".safetensors"))
    except (OSError, ValueError, SafetensorError):
        return None
    return (tensors, floors) if isinstance(floors, dict) else None


def save(path: Path, tensors: dict[str, Tensor], floors: dict[str, Any]) -> None:
    """Write both files, each atomically, the JSON that :func:`load` reads first last; failures only cost speed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.safetensors.tmp-{os.getpid()}")
        save_file({key: value.detach().cpu().contiguous() for key, value in tensors.items()}, str(temporary))
        os.replace(temporary, path.with_suffix(".safetensors"))
        write_text_atomically(path.with_suffix(".json"), json.dumps(floors))
    except OSError:
        return
