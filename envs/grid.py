"""SimplerEnv's Google-robot visual-matching grid, as episode indices.

Numbers are SimplerEnv's `scripts/rt1_drawer_visual_matching.sh` and
`scripts/rt1_put_in_drawer_visual_matching.sh` (simpler-env/SimplerEnv), which equal
ManiSkill2_real2sim's `_additional_prepackaged_config_reset`:

- drawer tasks: 9 robot base poses (each with its own real overlay image `open_drawer_{a,b,c}{0,1,2}.png`)
  x 4 robot URDF colourings = 36 episodes per task (6 tasks -> 216);
- place apple: 3 base poses (a0, b0, c0) x 3 x 3 apple positions x 4 URDFs = 108 episodes.

Episode index layout (URDF outermost so a sweep reloads the robot only 4 times):
drawer `e = urdf * 9 + pose`; apple `e = urdf * 27 + pose * 9 + ix * 3 + iy`.

SimplerEnv's drawer **variant aggregation** (`scripts/rt1_drawer_variant_agg.sh`; task family
"drawer_variant"): the `frl_apartment_stage_simple` stage, no overlay, the plain robot URDF, the robot
base at x in linspace(0.65, 0.85, 3) x y in linspace(-0.2, 0.2, 3) facing -x, in each scene variant
of `VARIANTS` = base, lighting brighter / darker, cabinets mk_station2 / mk_station3 (the script's two
background variants need stage files that are not in the asset copy: `MISSING_VARIANTS`).
Layout (variant outermost so a sweep rebuilds the scene only once per variant):
`e = variant * 9 + ix * 3 + iy` (x outer, y inner, as SimplerEnv's evaluator loops), 45 per task.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfflow_robot.config import check_choice
from selfflow_robot.errors import ConfigError

# The two SIMPLER protocols (evaluation protocols of a grid): visual matching (the real image green-screened
# behind the sim; tasks "drawer" and "apple") and variant aggregation (scene variants, no overlay).
VISUAL_MATCHING, VARIANT_AGGREGATION = "visual_matching", "variant_aggregation"
PROTOCOLS = (VISUAL_MATCHING, VARIANT_AGGREGATION)
VARIANT_FAMILY = "drawer_variant"   # the task family of the variant-aggregation grid

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


# ---- variant aggregation (rt1_drawer_variant_agg.sh: --robot-init-x 0.65 0.85 3 --robot-init-y -0.2 0.2 3)
VARIANT_ROBOT_XS = tuple(float(v) for v in np.linspace(0.65, 0.85, 3))
VARIANT_ROBOT_YS = tuple(float(v) for v in np.linspace(-0.2, 0.2, 3))
VARIANT_STAGE = "frl_apartment_stage_simple"   # --scene-name of the base, lighting and cabinet runs


@dataclass(frozen=True)
class SceneVariant:
    """One scene variant of SimplerEnv's drawer variant aggregation (ManiSkill2_real2sim env kwargs)."""

    name: str           # our name = the value the .sh sets ("base" for the unchanged scene)
    scene_name: str     # stage `data/hab2_bench_assets/stages/<scene_name>.glb`
    light_mode: str     # "default" (light_mode=None), "brighter" or "darker"
    station_name: str   # cabinet `data/custom/<station_name>.urdf`


# In the order of the .sh, without the two background runs.
VARIANTS = (
    SceneVariant("base", VARIANT_STAGE, "default", "mk_station"),
    SceneVariant("brighter", VARIANT_STAGE, "brighter", "mk_station"),
    SceneVariant("darker", VARIANT_STAGE, "darker", "mk_station"),
    SceneVariant("mk_station2", VARIANT_STAGE, "default", "mk_station2"),
    SceneVariant("mk_station3", VARIANT_STAGE, "default", "mk_station3"),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)
# Variants of the .sh the port leaves out, and why.
MISSING_VARIANTS = {
    name: (f"SimplerEnv's background variant scene_name={name} needs the stage "
           f"data/hab2_bench_assets/stages/{name}.glb, which is not in the ManiSkill2_real2sim asset copy "
           f"(nor in the `assets fetch` manifest), so the port does not build it")
    for name in ("modern_bedroom_no_roof", "modern_office_no_roof")
}


def scene_variant(name: str) -> SceneVariant:
    """The variant called `name`; `ConfigError` for the left-out backgrounds (saying why) or an unknown name."""
    if name in MISSING_VARIANTS:
        raise ConfigError(f"variant {name!r} is not available: {MISSING_VARIANTS[name]}. "
                          f"Choose from {list(VARIANT_NAMES)}")
    check_choice("variant", name, list(VARIANT_NAMES))  # ConfigError with a close match
    return VARIANTS[VARIANT_NAMES.index(name)]


def variant_episodes(name: str) -> list[int]:
    """The 9 grid indices of one variant (robot poses x-major)."""
    k = VARIANTS.index(scene_variant(name))
    n = len(VARIANT_ROBOT_XS) * len(VARIANT_ROBOT_YS)
    return list(range(k * n, (k + 1) * n))


@dataclass(frozen=True)
class EpisodeConfig:
    """Everything that defines one grid episode (visual matching, or variant aggregation with `variant`)."""

    index: int
    urdf_version: str          # "" = plain URDF
    overlay_id: str            # e.g. "a0" -> real_inpainting/open_drawer_a0.png; "" = no overlay
    robot_xy: tuple[float, float]
    robot_yaw: float           # added to the 180-degree base rotation (robot faces -x)
    apple_xy: tuple[float, float] | None = None
    variant: str = ""          # variant aggregation: a name of VARIANT_NAMES; "" = visual matching

    @property
    def robot_quat_wxyz(self) -> tuple[float, float, float, float]:
        """Base orientation: `euler2quat(0, 0, yaw) * quat(0, 0, 0, 1)` as in SimplerEnv (w, x, y, z)."""
        yaw = np.pi + self.robot_yaw
        return (float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2)))


def protocol_of(task_family: str) -> str:
    """The SIMPLER protocol a task family's grid is scored under."""
    return VARIANT_AGGREGATION if task_family == VARIANT_FAMILY else VISUAL_MATCHING


def num_episodes(task_family: str) -> int:
    """Grid size: 36 for a drawer task, 108 for the apple task, 45 for a drawer variant-aggregation task."""
    if task_family == VARIANT_FAMILY:
        return len(VARIANTS) * len(VARIANT_ROBOT_XS) * len(VARIANT_ROBOT_YS)
    return len(URDF_VERSIONS) * (len(DRAWER_POSES) if task_family == "drawer"
                                 else len(APPLE_POSES) * len(APPLE_XS) * len(APPLE_YS))


def episode_config(task_family: str, index: int) -> EpisodeConfig:
    """Map an episode index of the visual-matching grid to its configuration.

    `task_family` is "drawer" (open/close), "apple" (open top drawer and place apple) or
    "drawer_variant" (open/close, variant aggregation).
    Raises IndexError outside [0, num_episodes(task_family)).
    """
    n = num_episodes(task_family)
    if not 0 <= index < n:
        raise IndexError(f"episode index {index} outside the {task_family} grid [0, {n})")
    if task_family == VARIANT_FAMILY:
        variant, rest = divmod(index, len(VARIANT_ROBOT_XS) * len(VARIANT_ROBOT_YS))
        ix, iy = divmod(rest, len(VARIANT_ROBOT_YS))
        return EpisodeConfig(index, "", "", (VARIANT_ROBOT_XS[ix], VARIANT_ROBOT_YS[iy]), 0.0,
                             variant=VARIANTS[variant].name)
    if task_family == "drawer":
        urdf, pose = divmod(index, len(DRAWER_POSES))
        oid, x, y, yaw = DRAWER_POSES[pose]
        return EpisodeConfig(index, URDF_VERSIONS[urdf], oid, (x, y), yaw)
    urdf, rest = divmod(index, len(APPLE_POSES) * 9)
    pose, rest = divmod(rest, 9)
    ix, iy = divmod(rest, 3)
    oid, x, y, yaw = APPLE_POSES[pose]
    return EpisodeConfig(index, URDF_VERSIONS[urdf], oid, (x, y), yaw, (APPLE_XS[ix], APPLE_YS[iy]))
