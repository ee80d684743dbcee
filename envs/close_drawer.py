"""Close {top, middle, bottom} drawer (SimplerEnv `google_robot_close_{top,middle,bottom}_drawer`, visual matching)."""
from __future__ import annotations

from mani_skill.utils.registration import register_env

from selfflow_robot.envs.drawer_scene import DrawerSceneEnv

CLOSE_SUCCESS_QPOS = 0.05   # ManiSkill2_real2sim CloseDrawerInSceneEnv.evaluate: qpos <= 0.05
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
