"""Several processes, one run: ``torchrun`` and PyTorch's DistributedDataParallel (DDP).

Every process runs the same ``ganforge train``; torchrun tells each one its place
through environment variables (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT). From them ganforge

- opens one process group for the run (nccl between CUDA GPUs, gloo between CPU
  processes and for small CPU-side agreements) and closes it after the run,
  also when the run fails;
- puts each process on its own GPU (``cuda:LOCAL_RANK``), or on the CPU;
- wraps both networks in DDP, which averages their gradients over the processes
  in every backward pass, so the parameters stay identical on every process;
- keeps the data and noise streams identical on every process, each process
  taking its own slice of every global batch (``RealData.shard``,
  ``Trainer.sample_noise``), so a checkpoint saved under N processes resumes
  under M;
- lets rank 0 alone write the run folder and print; the others print only errors.

Without torchrun (no WORLD_SIZE, or WORLD_SIZE=1) none of this happens: one
process trains as before. A process that fails exits with its error; torchrun
then stops the others. A process that waits for a peer that never comes fails
after ``PROCESS_GROUP_TIMEOUT`` instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ganforge.errors import ConfigError, DistributedError

# How long a process waits in a collective (a peer stalled or gone, rank 0 busy with an evaluation) before it
# fails; long evaluations on rank 0 need minutes, torchrun stops the survivors of a failure at once anyway.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=30)
_NEVER = torch.iinfo(torch.int64).max  # "no bad step" in a minimum over processes
_groups_opened = 0  # process groups this process opened so far, one per run


def launched_world_size() -> int:
    """The number of processes torchrun started for this job (1 when not started by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise DistributedError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number: launch with torchrun, "
                               "which sets it") from None


def rank() -> int:
    """This process's rank in the process group (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Processes in the process group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process writes the run folder and prints: rank 0, or the only process.

    Outside a process group (before or after the run) it is torchrun's RANK, so a rank other than 0
    stays quiet from the start of ``ganforge train`` to its end.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return not _several_launched() or os.environ.get("RANK", "0") == "0"


def _several_launched() -> bool:
    """Whether torchrun's WORLD_SIZE names more than one process (without raising on a bad value)."""
    return os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1")


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[torch.device]:
    """The process group of one run under torchrun, and the device this process trains on.

    ``device`` is the device asked for (cpu or cuda); under torchrun a CUDA process takes the GPU of its
    LOCAL_RANK. A process group opened by the caller is used and left open; one opened here is closed on
    the way out, after a barrier when the run succeeded (so no process returns before rank 0 has written
    the run folder) and at once when it failed.
    """
    if dist.is_available() and dist.is_initialized():  # the caller's own group (a script that set one up)
        yield _local_device(device)
        return
    if launched_world_size() <= 1:
        yield device
        return
    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed: install a build with it to train "
                               "under torchrun, or run one process")
    missing = [name for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise DistributedError(f"WORLD_SIZE is {launched_world_size()} but {', '.join(missing)} {verb} not set: "
                               "launch the processes with torchrun, which sets them, or unset WORLD_SIZE")
    device = _local_device(device)
    # On GPUs, gloo still carries the CPU tensors: the small per-step agreements (any_rank) then need no GPU sync.
    _open_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo", device)
    try:
        yield device
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _open_process_group(backend: str, device: torch.device) -> None:
    """init_process_group from torchrun's environment (env://), under keys of its own in torchrun's store.

    PyTorch names every default group "0" in the store, whose keys outlive the group: a second run in the
    same process (two ganforge.train calls in one script) would meet the first run's keys and wait forever.
    """
    global _groups_opened
    store, rank, size = next(dist.rendezvous("env://", timeout=PROCESS_GROUP_TIMEOUT))
    _groups_opened += 1
    dist.init_process_group(backend, store=dist.PrefixStore(f"ganforge-run-{_groups_opened}", store), rank=rank,
                            world_size=size, timeout=PROCESS_GROUP_TIMEOUT,
                            device_id=device if device.type == "cuda" else None)


def _local_device(device: torch.device) -> torch.device:
    """cuda -> this process's GPU (cuda:LOCAL_RANK); any other device is shared by the processes."""
    if device.type != "cuda":
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise DistributedError(f"process with LOCAL_RANK {local_rank} has no GPU of its own: this machine has "
                               f"{count}; use torchrun --nproc-per-node {count} or less")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def replicate(network: nn.Module, device: torch.device, sync_batch_norm: bool = False) -> nn.Module:
    """``network`` wrapped in DDP when there are several processes (the network itself otherwise).

    DDP broadcasts rank 0's parameters and buffers once, averages the gradients in every backward, and
    before every forward pass broadcasts rank 0's buffers (BatchNorm's running statistics), so each
    BatchNorm normalizes with its own process's batch statistics. ``sync_batch_norm`` turns BatchNorm
    into SyncBatchNorm (CUDA only), which normalizes with the statistics of the global batch.
    """
    if sync_batch_norm and device.type != "cuda":
        raise ConfigError("--sync-batch-norm needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU; "
                          "train without it (each process then normalizes with its own batch)")
    if world_size() == 1:
        return network
    if sync_batch_norm:  # swaps the BatchNorm children in place (same parameters and buffers, same checkpoint keys)
        nn.SyncBatchNorm.convert_sync_batchnorm(network)
    return DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)


@contextlib.contextmanager
def local_main_first() -> Iterator[None]:
    """Run the block on each machine's first process (LOCAL_RANK 0) before the others, e.g. a download
    into a cache that the other processes then read instead of downloading it again."""
    first = os.environ.get("LOCAL_RANK", "0") == "0"
    if world_size() > 1 and not first:
        dist.barrier()
    yield
    if world_size() > 1 and first:
        dist.barrier()


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on any process: one decision that every process takes alike."""
    if world_size() == 1:
        return flag
    value = torch.tensor([int(flag)], dtype=torch.int64, device=_agreement_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def all_ranks(flag: bool) -> bool:
    """Whether ``flag`` holds on every process."""
    return not any_rank(not flag)


def sum_over_ranks(tensor: Tensor) -> Tensor:
    """The sum of ``tensor`` over the processes (a new tensor; ``tensor`` itself when there is one process)."""
    if world_size() == 1:
        return tensor
    total = tensor.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def first_step_over_ranks(step: Tensor) -> Tensor:
    """The smallest of a scalar int64 step over the processes, where -1 means none (and stays -1 if all are)."""
    if world_size() == 1:
        return step
    value = torch.where(step < 0, _NEVER, step)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return torch.where(value == _NEVER, -1, value)


def require_same(values: dict[str, int]) -> None:
    """Check that every process has the same ``values`` (e.g. the steps to train): a process that trained
    fewer steps than the others would leave them waiting for it."""
    if world_size() == 1:
        return
    mine = torch.tensor(list(values.values()), dtype=torch.int64, device=_agreement_device())
    gathered = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(gathered, mine)
    for index, name in enumerate(values):
        seen = [int(row[index]) for row in gathered]
        if len(set(seen)) > 1:
            per_rank = ", ".join(f"rank {r}: {value:,}" for r, value in enumerate(seen))
            raise DistributedError(f"the processes disagree on {name} ({per_rank}): give every process the same "
                                   "data and run folder (on several machines: the same files at the same paths)")


def _agreement_device() -> torch.device:
    """Where the small tensors of agreements go: the CPU wherever gloo carries CPU tensors (ganforge's own
    groups), so a GPU's queue is not drained every step; the GPU for a caller's nccl-only group."""
    if "gloo" in str(dist.get_backend()) or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def process_name() -> str:
    """'rank N: ' under torchrun, to begin an error line with; '' for a single process."""
    return f"rank {os.environ.get('RANK', '?')}: " if _several_launched() else ""


def record_error(error: BaseException) -> None:
    """Put an error in torchrun's error file (TORCHELASTIC_ERROR_FILE), so torchrun's summary of the
    failed job shows this process's message; nothing happens outside torchrun."""
    if not os.environ.get("TORCHELASTIC_ERROR_FILE"):
        return
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

    ErrorHandler().record_exception(error)

