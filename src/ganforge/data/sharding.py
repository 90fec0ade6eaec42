"""Sharding under torchrun: each process takes its own disjoint slice of every global draw."""

from __future__ import annotations

from torch import Tensor


def own_share(global_batch: Tensor, rank: int, per_rank: int) -> Tensor:
    """Process ``rank``'s slice of a global batch that every process drew from the same random stream:
    the shares are disjoint, and together they are what one process would have drawn."""
    return global_batch[rank * per_rank : (rank + 1) * per_rank]
