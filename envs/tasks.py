"""The SIMPLER Google-robot drawer tasks of the port: names, env ids, grids, and `make_env`.

    from selfflow_robot.envs.tasks import make_env, overhead_rgb
    env = make_env("open_top_drawer")                 # gymnasium env, TimeLimit 113 steps
    obs, info = env.reset(options={"episode": 5})      # episode 5 of the 36-episode visual-matching grid
    obs, reward, terminated, truncated, info = env.step(action7)   # [world_vector, rot_axangle, gripper]
    bool(info["success"]); overhead_rgb(obs)           # (512, 640, 3) uint8 with the real overlay

    env = make_env("open_top_drawer_variant_agg")      # variant aggregation: frl_apartment stage, no overlay
    obs, info = env.reset(options={"episode": 9})      # episode 9 of the 45-episode variant grid ("brighter")

Run an episode until `truncated` (SimplerEnv does not stop on success) and read `info["success"]`
at the last step.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfflow_robot.config import check_choice
from selfflow_robot.data.schema import canonical_state
from selfflow_robot.envs.grid import VARIANT_FAMILY, num_episodes, protocol_of
from selfflow_robot.envs.vulkan import ensure_vulkan_icd
from selfflow_robot.errors import ConfigError, MissingDependencyError, UserError


@dataclass(frozen=True)
class TaskSpec:
    """One task: our name, the registered ManiSkill3 id, its grid family and episode length."""

    name: str
    env_id: str
    family: str            # "drawer" | "apple" (visual matching) | "drawer_variant" (variant aggregation)
    max_episode_steps: int
    simpler_name: str      # SimplerEnv's task name (simpler_env.make), or its env id (variant aggregation)

    @property
    def num_episodes(self) -> int:
        """Episodes in this task's grid (36 or 108 visual matching, 45 variant aggregation)."""
        return num_episodes(self.family)

    @property
    def protocol(self) -> str:
        """SIMPLER protocol of the task's grid: "visual_matching" or "variant_aggregation"."""
        return protocol_of(self.family)


_DRAWER_VARIANT_TASKS = tuple(
    TaskSpec(f"{verb}_{d}_drawer_variant_agg", f"SelfFlow{verb.title()}{d.title()}DrawerVariantAgg-v1", VARIANT_FAMILY,
             113, f"{verb.title()}{d.title()}DrawerCustomInScene-v0")
    for verb in ("open", "close") for d in ("top", "middle", "bottom"))


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("open_top_drawer", "SelfFlowOpenTopDrawer-v1", "drawer", 113, "google_robot_open_top_drawer"),
    TaskSpec("open_middle_drawer", "SelfFlowOpenMiddleDrawer-v1", "drawer", 113, "google_robot_open_middle_drawer"),
    TaskSpec("open_bottom_drawer", "SelfFlowOpenBottomDrawer-v1", "drawer", 113, "google_robot_open_bottom_drawer"),
    TaskSpec("close_top_drawer", "SelfFlowCloseTopDrawer-v1", "drawer", 113, "google_robot_close_top_drawer"),
    TaskSpec("close_middle_drawer", "SelfFlowCloseMiddleDrawer-v1", "drawer", 113, "google_robot_close_middle_drawer"),
    TaskSpec("close_bottom_drawer", "SelfFlowCloseBottomDrawer-v1", "drawer", 113, "google_robot_close_bottom_drawer"),
    TaskSpec("place_apple_in_closed_top_drawer", "SelfFlowPlaceAppleInClosedTopDrawer-v1", "apple", 200,
             "google_robot_place_apple_in_closed_top_drawer"),
    *_DRAWER_VARIANT_TASKS,
)}
# SIMPLER suites -> tasks (drawer_visual_matching: 6 x 36 = 216 episodes; apple: 108;
# drawer_variant_agg: 6 x 45 = 270, SimplerEnv's drawer variant aggregation without its 2 background variants).
SUITES: dict[str, tuple[str, ...]] = {
    "drawer_visual_matching": tuple(n for n in TASKS if TASKS[n].family == "drawer"),
    "apple_visual_matching": ("place_apple_in_closed_top_drawer",),
    "drawer_variant_agg": tuple(n for n in TASKS if TASKS[n].family == VARIANT_FAMILY),
}


def suite_protocol(suite: str) -> str:
    """The SIMPLER protocol a suite is scored under (all its tasks share one)."""
    return TASKS[SUITES[suite][0]].protocol


def task_spec(name: str) -> TaskSpec:
    """Look a task up by name; `ConfigError` with the choices (and a close match) otherwise."""
    check_choice("task", name, list(TASKS))
    return TASKS[name]


def _register() -> None:
    # Importing the task modules registers their ids with ManiSkill3.
    import selfflow_robot.envs.close_drawer  # noqa: F401
    import selfflow_robot.envs.open_drawer  # noqa: F401
    import selfflow_robot.envs.place_apple  # noqa: F401


def make_env(task: str, *, asset_root: str | Path | None = None, overlay: bool = True,
             render_backend: str = "cpu", obs_mode: str = "rgb+segmentation", num_envs: int = 1,
             **kwargs: Any):
    """Build the gymnasium env of a task (CPU simulation, SAPIEN rendering on `render_backend`).

    `asset_root`: ManiSkill2_real2sim copy (default: `SELFFLOW_ROBOT_ASSETS` or the fetch cache).
    `overlay`: green-screen the real image behind the sim (visual matching); False = plain sim render.
    `render_backend`: "cpu" (lavapipe) or "gpu" when a GPU renderer exists (physics stays on the CPU).
    `obs_mode`: "rgb+segmentation" (the overhead camera, overlaid) or "none" (no rendering: experts, tests).
    Extra keyword arguments go to `gymnasium.make` (e.g. `max_episode_steps=`).
    """
    spec = task_spec(task)
    if num_envs != 1:
        raise ConfigError(f"num_envs must be 1 (one grid episode per env; batched GPU simulation of these tasks is "
                          f"not implemented), got {num_envs}; run several worker processes instead")
    if "tensorflow" in sys.modules:
        # seen here: SAPIEN 3 segfaults building its scene in a process that has loaded TensorFlow
        # (tensorboard loads it when installed, as does the tf.data reader backend)
        raise UserError("TensorFlow is loaded in this process, and SAPIEN crashes beside it: run the simulator "
                        "(eval / collect) in a separate process, or in an environment without the `tf` extra")
    ensure_vulkan_icd()
    try:
        import gymnasium as gym
        import mani_skill.envs  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(f"the SIMPLER port needs ManiSkill3 ({e}); install it with: pip install "
                                     "'selfflow-robot[sim]' (then run .ci/install_sim_deps.sh for Vulkan)") from e
    _register()
    return gym.make(spec.env_id, asset_root=asset_root, overlay=overlay, render_backend=render_backend,
                    obs_mode=obs_mode, num_envs=1, sim_backend="cpu", **kwargs)


def overhead_rgb(obs: dict, env_index: int = 0) -> np.ndarray:
    """The overhead camera image (512, 640, 3) uint8 of one sub-env from a ManiSkill3 observation."""
    from selfflow_robot.envs.google_robot import CAMERA_NAME

    rgb = obs["sensor_data"][CAMERA_NAME]["rgb"][env_index]
    return rgb.cpu().numpy() if hasattr(rgb, "cpu") else np.asarray(rgb)


def tool_state(tcp_p: np.ndarray, tcp_q: np.ndarray, base_p: np.ndarray, base_q: np.ndarray,
               gripper_closed: float) -> np.ndarray:
    """RT-1's 8-D proprioception (`schema.STATE_KEYS`) from world-frame poses (quaternions w, x, y, z, as SAPIEN
    gives them): the tool pose in the base frame as position + quaternion (x, y, z, w) (sign: see
    `schema.canonical_state`), then `gripper_closed` in [0, 1]."""
    from transforms3d.quaternions import qinverse, qmult, rotate_vector

    inv = qinverse(np.asarray(base_q, np.float64))
    p = rotate_vector(np.asarray(tcp_p, np.float64) - np.asarray(base_p, np.float64), inv)
    q = qmult(inv, np.asarray(tcp_q, np.float64))
    return canonical_state(np.concatenate([p, q[1:], q[:1], [np.clip(gripper_closed, 0.0, 1.0)]]))


def robot_state(env: Any) -> np.ndarray:
    """The Google robot's 8-D proprioception in a ManiSkill3 task (see `tool_state`); gripper_closed is the
    mean finger joint over its closed position (the fingertips meet at `FINGER_CONTACT_Q`)."""
    from selfflow_robot.envs.google_robot import FINGER_CONTACT_Q, GRIPPER_JOINTS

    u = env.unwrapped

    def vec(x: Any) -> np.ndarray:
        return x.detach().cpu().numpy().reshape(-1) if hasattr(x, "detach") else np.asarray(x).reshape(-1)

    tcp, base = u.agent.tcp.pose, u.agent.robot.pose
    fingers = np.mean([vec(u.agent.robot.joints_map[n].qpos)[0] for n in GRIPPER_JOINTS])
    return tool_state(vec(tcp.p), vec(tcp.q), vec(base.p), vec(base.q), float(fingers) / FINGER_CONTACT_Q)


def to_action(action: Any) -> np.ndarray:
    """A SimplerEnv-style action dict (`world_vector`, `rot_axangle`, `gripper`) or 7-vector -> float32 (7,)."""
    if isinstance(action, dict):
        action = np.concatenate([np.asarray(action["world_vector"], np.float32).reshape(3),
                                 np.asarray(action["rot_axangle"], np.float32).reshape(3),
                                 np.asarray(action["gripper"], np.float32).reshape(1)])
    action = np.asarray(action, dtype=np.float32).reshape(-1)
    if action.shape != (7,) or not np.all(np.isfinite(action)):
        raise ValueError(f"action must be 7 finite numbers [world_vector, rot_axangle, gripper], got {action}")
    return action
