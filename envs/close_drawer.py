"""Close {top, middle, bottom} drawer (SimplerEnv `google_robot_close_{top,middle,bottom}_drawer`, visual matching)."""
from __future__ import annotations

from mani_skill.utils.registration import register_env

from selfflow_robot.envs.drawer_scene import DrawerSceneEnv
from selfflow_robot.envs.drawer_success import CLOSE_SUCCESS_QPOS
from selfflow_robot.envs.drawer_variant_scene import DrawerVariantSceneEnv

CLOSE_INIT_QPOS = 0.2       # the drawer starts 0.2 m open (`cabinet_init_qpos`)
MAX_EPISODE_STEPS = 113


class CloseDrawerEnv(DrawerSceneEnv):
    """**Task Description:** close the named drawer, which starts 0.2 m open.

    **Randomizations:** none; the 36 visual-matching episodes are selected with `options={"episode": i}`.

    **Success Conditions:** the drawer joint is at most 0.05 m open (read at the last step).
    """

    init_drawer_qpos = CLOSE_INIT_QPOS

    def evaluate(self) -> dict:
        q = self.drawer_qpos
        return dict(success=q <= CLOSE_SUCCESS_QPOS, drawer_qpos=q)

    def get_language_instruction(self) -> str:
        return f"close {self.drawer_id} drawer"


@register_env("SelfFlowCloseTopDrawer-v1", max_episode_steps=MAX_EPISODE_STEPS)
class CloseTopDrawerEnv(CloseDrawerEnv):
    drawer_id = "top"


@register_env("SelfFlowCloseMiddleDrawer-v1", max_episode_steps=MAX_EPISODE_STEPS)
class CloseMiddleDrawerEnv(CloseDrawerEnv):
    drawer_id = "middle"


@register_env("SelfFlowCloseBottomDrawer-v1", max_episode_steps=MAX_EPISODE_STEPS)
class CloseBottomDrawerEnv(CloseDrawerEnv):
    drawer_id = "bottom"


# ---- variant aggregation (SimplerEnv scripts/rt1_drawer_variant_agg.sh): frl_apartment stage, no overlay
@register_env("SelfFlowCloseTopDrawerVariantAgg-v1", max_episode_steps=MAX_EPISODE_STEPS)
class CloseTopDrawerVariantAggEnv(DrawerVariantSceneEnv, CloseTopDrawerEnv):
    """Close the top drawer in the variant-aggregation scene (45 episodes: 5 scene variants x 9 robot poses)."""


@register_env("SelfFlowCloseMiddleDrawerVariantAgg-v1", max_episode_steps=MAX_EPISODE_STEPS)
class CloseMiddleDrawerVariantAggEnv(DrawerVariantSceneEnv, CloseMiddleDrawerEnv):
    """Close the middle drawer in the variant-aggregation scene (45 episodes: 5 scene variants x 9 robot poses)."""


@register_env("SelfFlowCloseBottomDrawerVariantAgg-v1", max_episode_steps=MAX_EPISODE_STEPS)
class CloseBottomDrawerVariantAggEnv(DrawerVariantSceneEnv, CloseBottomDrawerEnv):
    """Close the bottom drawer in the variant-aggregation scene (45 episodes: 5 scene variants x 9 robot poses)."""
