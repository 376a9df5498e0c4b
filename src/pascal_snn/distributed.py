"""Multi-process runs under ``torchrun`` (DistributedDataParallel), and their single-process twin.

``torchrun --nproc_per_node=N -m pascal_snn train …`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` then joins the process group (nccl on GPUs, gloo on
CPUs). Without those variables everything here is a no-op, so the same code runs in one process.

Evaluation is sharded without duplicates: rank ``r`` of ``W`` sees items ``r, r+W, r+2W, …``,
and :func:`all_reduce_sum` adds the per-rank counts, so the result equals one process exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sized
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from pascal_snn.data.info import dataset_size
from pascal_snn.errors import ConfigError

__all__ = [
    "ShardSampler",
    "WorldInfo",
    "all_reduce_sum",
    "barrier",
    "broadcast_buffers",
    "destroy_distributed",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "rank",
    "resolve_device",
    "sharded_loader",
    "world_info",
    "world_size",
]


@dataclass(frozen=True)
class WorldInfo:
    """Where this process sits: global ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def world_info() -> WorldInfo:
    """Read ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (set by torchrun); defaults 0 / 1 / 0."""
    try:
        return WorldInfo(
            rank=int(os.environ.get("RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        )
    except ValueError as exc:
        raise ConfigError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {exc}") from None


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0 (and in a single-process run): the one that logs and writes files."""
    if is_distributed():
        return dist.get_rank() == 0
    return world_info().rank == 0


def resolve_device(name: str | None = None) -> torch.device:
    """The device for this process: ``name`` (``--device``), else CUDA if available, else CPU.

    Under torchrun a bare ``cuda`` (or the automatic choice) means ``cuda:LOCAL_RANK``.
    """
    if name is None or name == "":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"--device {name!r} is not a device ({exc}); use cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name}: CUDA is not available on this machine; use --device cpu"
            )
        index = device.index if device.index is not None else world_info().local_rank
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {name}: GPU {index} does not exist ({torch.cuda.device_count()} visible)"
            )
        device = torch.device("cuda", index)
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: MPS is not available on this machine")
    return device


def init_distributed(device: torch.device, timeout_s: float = 1800.0) -> WorldInfo:
    """Join the torchrun process group if ``WORLD_SIZE > 1`` (idempotent); return the info.

    Backend: nccl for CUDA devices, gloo otherwise.
    """
    info = world_info()
    if info.world_size <= 1 or is_distributed():
        return WorldInfo(rank(), world_size(), info.local_rank) if is_distributed() else info
    if not dist.is_available():
        raise ConfigError("torch.distributed is not available in this PyTorch build")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend=backend, init_method="env://", timeout=timedelta(seconds=timeout_s)
    )
    return info


def destroy_distributed() -> None:
    """Leave the process group (no-op outside one), after every rank has arrived: a rank that
    tears gloo down while another still talks to it can abort ("terminate called without an
    active exception")."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if is_distributed():
        dist.barrier()


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``src``'s buffers (e.g. BatchNorm running statistics) to every rank, in place."""
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over all ranks, returned as a new tensor on the input's device.

    Outside a process group it returns a copy. Use it for integer counts (correct predictions,
    agreements, spikes): integer sums are exact, so sharded results equal one process's.
    """
    out = tensor.detach().clone()
    if not is_distributed():
        return out
    if dist.get_backend() == "nccl" and out.device.type != "cuda":
        work = out.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        return work.to(tensor.device)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + W, rank + 2W, …`` of ``range(n)``: disjoint shards, no padding.

    Together the ranks see every item exactly once (shards differ in size by at most one).
    """

    def __init__(self, data: Sized | int, rank: int | None = None, world: int | None = None):
        self.n = data if isinstance(data, int) else len(data)
        self.rank = (dist.get_rank() if is_distributed() else 0) if rank is None else rank
        self.world = world_size() if world is None else world
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} is outside world size {self.world}")

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


def sharded_loader(
    dataset: Dataset, batch_size: int, workers: int = 0, pin_memory: bool = False
) -> DataLoader:
    """An in-order evaluation loader over this rank's shard (the whole set in one process).

    Sum per-rank counts with :func:`all_reduce_sum` to get the exact whole-set figure.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(dataset_size(dataset)),
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
