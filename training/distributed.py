"""Process-group setup from torchrun's environment, and wrapping the model for DDP or FSDP2.

One process (no torchrun) is world size 1 with no process group. Under torchrun: NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from corpus.errors import InputError


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    """`--device`: auto (CUDA when available, else CPU), or any torch device name; one line when unusable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise InputError(f"--device {name!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


def init_distributed(device: str = "auto") -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local}")  # one GPU per local rank
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(
            "nccl" if dev.type == "cuda" else "gloo", device_id=dev if dev.type == "cuda" else None
        )
    return Dist(rank, world, local, dev)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: torch.nn.Module, env: Dist, fsdp: bool) -> torch.nn.Module:
    """DDP for data parallelism; FSDP2 (`fully_shard` per block, then the root) for large presets."""
    if env.world_size == 1 and not fsdp:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        if not dist.is_initialized() and "RANK" not in os.environ:
            raise InputError(
                "--fsdp shards the model over torchrun's processes: "
                "torchrun --nproc_per_node=N --no-python webtext train ... --fsdp"
            )

        for block in model.transformer.h:
            fully_shard(block)
        fully_shard(model)
        return model
    return DistributedDataParallel(model, device_ids=[env.local_rank] if env.device.type == "cuda" else None)


def all_mean(value: torch.Tensor, env: Dist) -> torch.Tensor:
    if env.world_size > 1:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= env.world_size
    return value


def gather_objects(obj: object, env: Dist) -> list:
    """Every rank's `obj` (plain containers and tensors), in rank order, on every rank.

    Sent as torch.save bytes and read back with weights_only=True: all_gather_object cannot carry tensors
    whose storage it unpickles itself.
    """
    if env.world_size == 1:
        return [obj]
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    gathered: list = [None] * env.world_size
    dist.all_gather_object(gathered, buffer.getvalue())
    return [torch.load(io.BytesIO(blob), weights_only=True) for blob in gathered]


def barrier(env: Dist) -> None:
    if env.world_size > 1:
        dist.barrier()
