"""Plots of a policy's episode (SimplerEnv's `visualize_epoch` hook)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

ACTION_KEYS = ("world_vector", "rotation_delta", "gripper_closedness_action", "terminate_episode")


def plot_episode_actions(raw_actions: Sequence[Mapping[str, np.ndarray]], images: Sequence[np.ndarray],
                         save_path: str | Path) -> None:
    """One panel per raw action dimension over time, under a strip of (at most ~8) of the episode's frames."""
    series = {f"{k}_{i}": [float(np.asarray(a[k]).reshape(-1)[i]) for a in raw_actions]
              for k in ACTION_KEYS for i in range(np.asarray(raw_actions[0][k]).size)} if raw_actions else {}
    fig = Figure(figsize=(4 * max(len(series), 1), 8))   # the object API: no pyplot state, no GUI backend
    axes = fig.subplot_mosaic([["image"] * max(len(series), 1), list(series) or ["image"]])
    if images:
        strip = np.concatenate([np.asarray(im) for im in list(images)[::max(1, len(images) // 8)]], axis=1)
        axes["image"].imshow(strip)
    axes["image"].set_axis_off()
    for name, values in series.items():
        axes[name].plot(values)
        axes[name].set_title(name)
        axes[name].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(save_path)
