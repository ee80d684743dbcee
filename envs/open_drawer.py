"""Open {top, middle, bottom} drawer (SimplerEnv `google_robot_open_{top,middle,bottom}_drawer`, visual matching)."""
from __future__ import annotations

from mani_skill.utils.registration import register_env

from selfflow_robot.envs.drawer_scene import DrawerSceneEnv
from selfflow_robot.envs.drawer_success import OPEN_SUCCESS_QPOS
from selfflow_robot.envs.drawer_variant_scene import DrawerVariantSceneEnv

MAX_EPISODE_STEPS = 113


class OpenDrawerEnv(DrawerSceneEnv):
    """**Task Description:** open the named drawer of the mk_station cabinet.

    **Randomizations:** none; the 36 episodes of the visual-matching grid (9 robot poses with their
    real overlay images x 4 robot colourings) are selected with `reset(options={"episode": i})`.

    **Success Conditions:** the drawer joint is at least 0.15 m open (read at the last step).
    """

    def evaluate(self) -> dict:
        q = self.drawer_qpos
        return dict(success=q >= OPEN_SUCCESS_QPOS, drawer_qpos=q)

    def get_language_instruction(self) -> str:
        return f"open {self.drawer_id} drawer"


@register_env("SelfFlowOpenTopDrawer-v1", max_episode_steps=MAX_EPISODE_STEPS)
class OpenTopDrawerEnv(OpenDrawerEnv):
    drawer_id = "top"


@register_env("SelfFlowOpenMiddleDrawer-v1", max_episode_steps=MAX_EPISODE_STEPS)
class OpenMiddleDrawerEnv(OpenDrawerEnv):
    drawer_id = "middle"


@register_env("SelfFlowOpenBottomDrawer-v1", max_episode_steps=MAX_EPISODE_STEPS)
class OpenBottomDrawerEnv(OpenDrawerEnv):
    drawer_id = "bottom"


# ---- variant aggregation (SimplerEnv scripts/rt1_drawer_variant_agg.sh): frl_apartment stage, no overlay
@register_env("SelfFlowOpenTopDrawerVariantAgg-v1", max_episode_steps=MAX_EPISODE_STEPS)
class OpenTopDrawerVariantAggEnv(DrawerVariantSceneEnv, OpenTopDrawerEnv):
    """Open the top drawer in the variant-aggregation scene (45 episodes: 5 scene variants x 9 robot poses)."""


@register_env("SelfFlowOpenMiddleDrawerVariantAgg-v1", max_episode_steps=MAX_EPISODE_STEPS)
class OpenMiddleDrawerVariantAggEnv(DrawerVariantSceneEnv, OpenMiddleDrawerEnv):
    """Open the middle drawer in the variant-aggregation scene (45 episodes: 5 scene variants x 9 robot poses)."""


@register_env("SelfFlowOpenBottomDrawerVariantAgg-v1", max_episode_steps=MAX_EPISODE_STEPS)
class OpenBottomDrawerVariantAggEnv(DrawerVariantSceneEnv, OpenBottomDrawerEnv):
    """Open the bottom drawer in the variant-aggregation scene (45 episodes: 5 scene variants x 9 robot poses)."""


__all__ = ["OpenDrawerEnv", "OpenTopDrawerEnv", "OpenMiddleDrawerEnv", "OpenBottomDrawerEnv",
           "OpenTopDrawerVariantAggEnv", "OpenMiddleDrawerVariantAggEnv", "OpenBottomDrawerVariantAggEnv"]
