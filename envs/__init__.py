"""SIMPLER backends: the ManiSkill3 port of SimplerEnv's Google-robot drawer suites, assets, experts, collect.

Importing this package is cheap (no ManiSkill3/SAPIEN import). Entry points:
- `selfflow_robot.envs.tasks`: `TASKS`, `SUITES`, `make_env(task)`, `overhead_rgb(obs)`, `to_action(a)`;
- `selfflow_robot.envs.grid`: the visual-matching episode grid (`episode_config`);
- `selfflow_robot.envs.experts`: scripted experts, `make_expert(task)` -> `act(env, obs) -> action (7,)`;
- `selfflow_robot.envs.assets`: asset resolution (`SELFFLOW_ROBOT_ASSETS`) and `assets fetch`;
- `selfflow_robot.envs.collect`: `selfflow-robot collect` (expert demos as RT-1 RLDS);
- `selfflow_robot.envs.vulkan`: `ensure_vulkan_icd()` (lavapipe for CPU rendering).
See docs/sim.md.
"""
