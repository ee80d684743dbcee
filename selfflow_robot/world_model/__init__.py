"""Action-conditioned world model: autoregressive rollout ("imagine"), video metrics, comparison videos.

    from selfflow_robot.world_model import WorldModel, psnr, ssim
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"WorldModel": "selfflow_robot.world_model.rollout", "psnr": "selfflow_robot.data.video_metrics",
            "ssim": "selfflow_robot.data.video_metrics", "mse": "selfflow_robot.data.video_metrics",
            "write_comparison": "selfflow_robot.world_model.video", "imagine": "selfflow_robot.world_model.cli",
            "ImagineConfig": "selfflow_robot.world_model.cli"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
