"""Action-conditioned world model: autoregressive rollout ("imagine"), video metrics, comparison videos.

    from selfflow_robot.world_model import WorldModel, psnr, ssim
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"WorldModel": "rollout", "psnr": "metrics", "ssim": "metrics", "mse": "metrics",
            "write_comparison": "video", "imagine": "cli", "ImagineConfig": "cli"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
