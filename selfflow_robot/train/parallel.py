"""Distributed setup, applied from outside the model (the model code never imports torch.distributed).

`init_distributed` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT;
multi-node works the same way) and falls back to one process. `parallelize` applies, in this
order: activation checkpointing, `torch.compile`, then DDP or FSDP2 (`fully_shard` per block,
then the root), as torchtitan's `parallelize.py` does.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms._checkpoint import checkpoint_wrapper
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP

from selfflow_robot.errors import ConfigError
from selfflow_robot.model.device import resolve_device
from selfflow_robot.train.config import Parallelism


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, world size, local rank, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", timeout_s: int = 1800) -> DistInfo:
    """Join the process group torchrun set up (NCCL on CUDA, gloo on CPU), or return a single-process info."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s),
                                device_id=dev if dev.type == "cuda" else None)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def cleanup() -> None:
    """Leave the process group (no-op when single-process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of `t` over all ranks (in place copy returned; identity when single-process)."""
    if dist.is_available() and dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= dist.get_world_size()
    return t


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of `t` over all ranks (identity when single-process)."""
    if dist.is_available() and dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (a one-element list when single-process)."""
    if dist.is_available() and dist.is_initialized():
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def resolve_parallelism(choice: Parallelism, info: DistInfo) -> Parallelism:
    """`none` for one process; otherwise the choice (`auto` must be resolved by the caller: DDP or FSDP2)."""
    if not info.distributed:
        return Parallelism.none
    if choice == Parallelism.auto:
        return Parallelism.ddp
    if choice == Parallelism.none:
        raise ConfigError("train.parallel=none cannot run under torchrun with WORLD_SIZE > 1; use auto, ddp or fsdp")
    return choice


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks (the units of activation checkpointing and FSDP sharding)."""
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.ModuleList) and len(blocks) > 0:
        return list(blocks)
    raise ConfigError(f"{type(model).__name__} has no `blocks` ModuleList; cannot shard or checkpoint per block")


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each block's activations in backward (non-reentrant `torch.utils.checkpoint`)."""
    ids = {id(b) for b in _blocks(model)}
    checkpoint_wrapper.apply_activation_checkpointing(
        model, checkpoint_impl=checkpoint_wrapper.CheckpointImpl.NO_REENTRANT, check_fn=lambda m: id(m) in ids)


def parallelize(model: nn.Module, info: DistInfo, strategy: Parallelism, *, compile: bool = False,
                activation_checkpointing: bool = False, find_unused_parameters: bool = False) -> nn.Module:
    """Wrap `model` for training. Returns the module to call (the original object for FSDP2, a DDP wrapper
    for DDP); `unwrap` gives back the plain model for EMA updates, saving and sampling."""
    if activation_checkpointing:
        apply_activation_checkpointing(model)
    if compile:
        for block in _blocks(model):
            block.compile()
    if strategy == Parallelism.ddp:
        ids = [info.device.index] if info.device.type == "cuda" else None
        return DDP(model, device_ids=ids, find_unused_parameters=find_unused_parameters)
    if strategy == Parallelism.fsdp:
        mesh = init_device_mesh(info.device.type, (info.world_size,))
        for block in _blocks(model):
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP / `torch.compile` wrappers (FSDP2 modules are the model itself)."""
    while True:
        if isinstance(model, DDP):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def is_fsdp(model: nn.Module) -> bool:
    """Whether `model` was sharded with FSDP2 `fully_shard`."""
    return isinstance(model, FSDPModule)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The complete, unsharded CPU state dict (collective under FSDP2: call on every rank)."""
    if is_fsdp(model):
        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state keyed by parameter name (collective under FSDP2: call on every rank)."""
    return get_optimizer_state_dict(unwrap(model) if not is_fsdp(model) else model, optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Inverse of `full_optimizer_state` (every rank passes the same full state)."""
    set_optimizer_state_dict(unwrap(model) if not is_fsdp(model) else model, optimizer, state,
                             options=StateDictOptions(full_state_dict=True))


def load_full_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a complete state dict into a (possibly FSDP2-sharded) model, strictly."""
    if is_fsdp(model):
        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=True))
    else:
        unwrap(model).load_state_dict(state, strict=True)


def no_sync(model: nn.Module, enabled: bool):
    """Skip DDP's gradient all-reduce on accumulation micro-batches (FSDP2: defer reduce-scatter)."""
    if enabled and hasattr(model, "no_sync") and not is_fsdp(model):
        return model.no_sync()
    if enabled and is_fsdp(model):
        model.set_requires_gradient_sync(False)
        return _restore_sync(model)
    return contextlib.nullcontext()


class _restore_sync:
    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Iterable[Any] | None) -> None:
        self.model.set_requires_gradient_sync(True)
