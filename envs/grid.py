"""SimplerEnv's Google-robot visual-matching grid, as episode indices.

Numbers are SimplerEnv's `scripts/rt1_drawer_visual_matching.sh` and
`scripts/rt1_put_in_drawer_visual_matching.sh` (simpler-env/SimplerEnv), which equal
ManiSkill2_real2sim's `_additional_prepackaged_config_reset`:

- drawer tasks: 9 robot base poses (each with its own real overlay image `open_drawer_{a,b,c}{0,1,2}.png`)
  x 4 robot URDF colourings = 36 episodes per task (6 tasks -> 216);
- place apple: 3 base poses (a0, b0, c0) x 3 x 3 apple positions x 4 URDFs = 108 episodes.

Episode index layout (URDF outermost so a sweep reloads the robot only 4 times):
drawer `e = urdf * 9 + pose`; apple `e = urdf * 27 + pose * 9 + ix * 3 + iy`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# URDF colour variants, in the order of SimplerEnv's scripts; "" is the plain URDF (`urdf_version=None`).
URDF_VERSIONS = ("recolor_cabinet_visual_matching_1", "recolor_tabletop_visual_matching_1",
                 "recolor_tabletop_visual_matching_2", "")

# (overlay id, base x, base y, base yaw offset in rad) per robot pose.
DRAWER_POSES = (
    ("a0", 0.644, -0.179, -0.03), ("a1", 0.765, -0.182, -0.02), ("a2", 0.889, -0.203, -0.06),
    ("b0", 0.652, 0.009, 0.0), ("b1", 0.752, 0.009, 0.0), ("b2", 0.851, 0.035, 0.0),
    ("c0", 0.665, 0.224, 0.0), ("c1", 0.765, 0.222, -0.025), ("c2", 0.865, 0.222, -0.025),
)
APPLE_POSES = (DRAWER_POSES[0], DRAWER_POSES[3], DRAWER_POSES[6])
# `--obj-init-x-range -0.08 -0.02 3 --obj-init-y-range -0.02 0.08 3` (np.linspace, x outer loop).
APPLE_XS = tuple(float(v) for v in np.linspace(-0.08, -0.02, 3))
APPLE_YS = tuple(float(v) for v in np.linspace(-0.02, 0.08, 3))

ROBOT_BASE_HEIGHT = 0.06205 + 0.017  # base height + ground offset (ManiSkill2_real2sim base_env)


@dataclass(frozen=True)
class EpisodeConfig:
    """Everything that defines one visual-matching episode."""

    index: int
    urdf_version: str          # "" = plain URDF
    overlay_id: str            # e.g. "a0" -> real_inpainting/open_drawer_a0.png
    robot_xy: tuple[float, float]
    robot_yaw: float           # added to the 180-degree base rotation (robot faces -x)
    apple_xy: tuple[float, float] | None = None

    @property
    def robot_quat_wxyz(self) -> tuple[float, float, float, float]:
        """Base orientation: `euler2quat(0, 0, yaw) * quat(0, 0, 0, 1)` as in SimplerEnv (w, x, y, z)."""
        yaw = np.pi + self.robot_yaw
        return (float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2)))


def num_episodes(task_family: str) -> int:
    """Grid size: 36 for a drawer task, 108 for the apple task."""
    return len(URDF_VERSIONS) * (len(DRAWER_POSES) if task_family == "drawer"
                                 else len(APPLE_POSES) * len(APPLE_XS) * len(APPLE_YS))


def episode_config(task_family: str, index: int) -> EpisodeConfig:
    """Map an episode index of the visual-matching grid to its configuration.

    `task_family` is "drawer" (open/close) or "apple" (open top drawer and place apple).
    Raises IndexError outside [0, num_episodes(task_family)).
    """
    n = num_episodes(task_family)
    if not 0 <= index < n:
        raise IndexError(f"episode index {index} outside the {task_family} grid [0, {n})")
    if task_family == "drawer":
        urdf, pose = divmod(index, len(DRAWER_POSES))
        oid, x, y, yaw = DRAWER_POSES[pose]
        return EpisodeConfig(index, URDF_VERSIONS[urdf], oid, (x, y), yaw)
    urdf, rest = divmod(index, len(APPLE_POSES) * 9)
    pose, rest = divmod(rest, 9)
    ix, iy = divmod(rest, 3)
    oid, x, y, yaw = APPLE_POSES[pose]
    return EpisodeConfig(index, URDF_VERSIONS[urdf], oid, (x, y), yaw, (APPLE_XS[ix], APPLE_YS[iy]))
