"""Where a model runs: the device for `device=auto|cpu|cuda[:N]`, and the inference precision."""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from selfflow_robot.errors import ConfigError


def resolve_device(preference: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """`auto` -> this rank's CUDA device if there is one, else CPU; `cpu` / `cuda` / `cuda:N` as given.

    Raises `ConfigError` for a device name torch does not know or CUDA that is not there."""
    if isinstance(preference, torch.device):
        preference = str(preference)
    if preference == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(preference)
    except RuntimeError as e:
        raise ConfigError(f"device={preference!r} is not a torch device; use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={preference} was asked for but torch sees no CUDA device; "
                              "use device=cpu or auto")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    elif dev.type != "cpu":
        raise ConfigError(f"device={preference!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev


def cpu_has_bf16_matmul() -> bool | None:
    """Whether this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX-BF16), read from /proc/cpuinfo;
    None where that file does not exist. Without them, CPU bf16 autocast is emulated and slower than fp32."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for `precision=bf16`, or `auto` on CUDA; otherwise a no-op context (inference and training)."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
