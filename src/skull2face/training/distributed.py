"""Processes and devices of a training run: one process alone, or several under ``torchrun``.

The process group (gloo on CPU, nccl on CUDA) is set up from the ``RANK`` / ``WORLD_SIZE``
environment that ``torchrun`` sets; without it the run is one process of a world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class Dist:
    """This process's place in the run: rank, world size, local rank / size and device."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    device: torch.device
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int) -> torch.device:
    """``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` (this process's GPU) or ``"cuda:N"``.

    Raises
    ------
    ValueError
        CUDA asked for but not available.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


def dist_context(device: str) -> Dist:
    """Rank, world size and device from the torchrun environment (1 process without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return Dist(rank, world, local_rank, local_world, resolve_device(device, local_rank))


def init_group(ctx: Dist) -> None:
    """Start the process group of a multi-process run (unless one exists); ``ctx.owns_group`` then."""
    import torch.distributed as dist

    if ctx.world <= 1 or dist.is_initialized():
        return
    if ctx.device.type == "cuda":
        torch.cuda.set_device(ctx.device)
    dist.init_process_group(backend="nccl" if ctx.device.type == "cuda" else "gloo")
    ctx.owns_group = True


def all_mean(t: torch.Tensor, ctx: Dist) -> torch.Tensor:
    """``t`` averaged over the processes, in place (``t`` itself with one process)."""
    if ctx.world > 1:
        import torch.distributed as dist

        dist.all_reduce(t)
        t /= ctx.world
    return t


def barrier(ctx: Dist) -> None:
    """Wait for every process (nothing with one process)."""
    if ctx.world > 1:
        import torch.distributed as dist

        dist.barrier()


def close_group(ctx: Dist) -> None:
    """Destroy the process group if `init_group` started it."""
    if ctx.owns_group:
        import torch.distributed as dist

        dist.destroy_process_group()


__all__ = ["Dist", "all_mean", "barrier", "close_group", "dist_context", "init_group", "resolve_device"]
