"""The drawer tasks' success rule (ManiSkill2_real2sim `OpenDrawerInSceneEnv` / `CloseDrawerInSceneEnv.evaluate`),
sim-free so that judges of imagined frames apply the same thresholds as the simulator."""

OPEN_SUCCESS_QPOS = 0.15   # open: the drawer joint is at least 0.15 m open
CLOSE_SUCCESS_QPOS = 0.05  # close: the drawer joint is at most 0.05 m open
