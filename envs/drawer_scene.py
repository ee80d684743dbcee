"""Shared scene of SimplerEnv's Google-robot drawer suites (visual matching), on ManiSkill3 / SAPIEN 3.

Faithful to ManiSkill2_real2sim `open_drawer_in_scene.py` with SimplerEnv's visual-matching kwargs
(`scene_name=dummy_drawer station_name=mk_station_recolor light_mode=simple disable_bad_material=True`):
a white ground box (visual only), the `mk_station_recolor` cabinet at (-0.295, 0, 0.017) with joint
friction 0.05 and drive damping 1, ambient light 1 plus one directional light at 75 degrees, the
Google robot with its overhead camera, and the real image `open_drawer_<id>.png` green-screened
behind robot + cabinet (+ objects) using actor-level segmentation. 3 Hz control, 513 Hz physics.

Differences from SimplerEnv that remain: SAPIEN 3 rasterizer instead of SAPIEN 2 ray tracing,
SAPIEN 3 physics.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import sapien
import torch
from mani_skill.envs.sapien_env import BaseEnv
from mani_skill.sensors.camera import CameraConfig
from mani_skill.utils import sapien_utils
from mani_skill.utils.structs.types import SceneConfig, SimConfig
from PIL import Image

from selfflow_robot.envs.assets import resolve_asset_root
from selfflow_robot.envs.google_robot import (
    CAMERA_HEIGHT,
    CAMERA_NAME,
    CAMERA_WIDTH,
    DRAWER_INIT_QPOS_BY_NAME,
    GoogleRobotStatic,
    agent_class,
)
from selfflow_robot.envs.grid import ROBOT_BASE_HEIGHT, EpisodeConfig, episode_config, num_episodes

SIM_FREQ, CONTROL_FREQ = 513, 3
CABINET_POSE = sapien.Pose([-0.295, 0, 0.017], [1, 0, 0, 0])
CABINET_JOINT_FRICTION = 0.05
DRAWERS = ("top", "middle", "bottom")


def load_overlay(asset_root: Path, overlay_id: str, width: int, height: int) -> torch.Tensor:
    """The real background image `real_inpainting/open_drawer_<id>.png` as uint8 (H, W, 3), resized if needed."""
    img = Image.open(asset_root / "data" / "real_inpainting" / f"open_drawer_{overlay_id}.png").convert("RGB")
    if img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR)  # SimplerEnv: cv2.resize (bilinear)
    return torch.from_numpy(np.asarray(img).copy())


class DrawerSceneEnv(BaseEnv):
    """Base of the drawer tasks: cabinet + Google robot + overhead camera + green-screen overlay.

    Reset with `options={"episode": i}` for episode i of the visual-matching grid (see `grid.py`);
    without it, a random grid episode is drawn from the seeded episode RNG. Subclasses set
    `drawer_id` and `task_family` and implement `evaluate` and `get_language_instruction`.
    """

    SUPPORTED_OBS_MODES = ("rgb+segmentation", "state_dict", "none")
    SUPPORTED_REWARD_MODES = ("sparse", "none")
    drawer_id: str = "top"
    task_family: str = "drawer"   # grid family: "drawer" or "apple"
    init_drawer_qpos: float = 0.0  # target drawer opening at reset (close tasks: 0.2)
    agent: GoogleRobotStatic

    def __init__(self, *args, asset_root: str | Path | None = None, overlay: bool = True,
                 urdf_version: str = "", obs_mode: str = "rgb+segmentation", reward_mode: str = "none",
                 **kwargs: Any):
        self.asset_root = resolve_asset_root(asset_root)
        self.overlay = overlay
        self.urdf_version = urdf_version
        self.episode: EpisodeConfig = episode_config(self.task_family, 0)
        self._overlay_cache: dict[str, torch.Tensor] = {}
        self._overlay_img: torch.Tensor | None = None
        self._keep_ids: torch.Tensor | None = None
        super().__init__(*args, robot_uids=agent_class(str(self.asset_root), urdf_version), obs_mode=obs_mode,
                         reward_mode=reward_mode, **kwargs)

    # ------------------------------------------------------------------ configuration
    @property
    def _default_sim_config(self):
        return SimConfig(sim_freq=SIM_FREQ, control_freq=CONTROL_FREQ, spacing=20,
                         scene_config=SceneConfig(enable_pcm=False, contact_offset=self._contact_offset))

    _contact_offset = 0.02

    @property
    def _default_sensor_configs(self):
        return []  # the overhead camera comes with the robot

    @property
    def _default_human_render_camera_configs(self):
        pose = sapien_utils.look_at([1.2, 0.6, 1.5], [0.0, 0.0, 0.6])
        return CameraConfig("render_camera", pose=pose, width=320, height=256, fov=1.2, near=0.01, far=10)

    def _load_agent(self, options: dict):
        super()._load_agent(options, sapien.Pose([0.65, 0.0, ROBOT_BASE_HEIGHT], [0, 0, 0, 1]))

    def _load_lighting(self, options: dict):
        # light_mode="simple" of ManiSkill2_real2sim OpenDrawerInSceneEnv
        self.scene.set_ambient_light([1.0, 1.0, 1.0])
        angle = np.deg2rad(75)
        self.scene.add_directional_light([-np.cos(angle), 0, -np.sin(angle)], [1.0, 1.0, 1.0], shadow=False)

    def _load_scene(self, options: dict):
        # scene_name="dummy_drawer": a white 20 m box as ground, visual only (drawer tasks add no arena collision)
        builder = self.scene.create_actor_builder()
        white = sapien.render.RenderMaterial(base_color=[1, 1, 1, 1])
        builder.add_box_visual(half_size=[10.0, 10.0, 0.017], material=white)
        builder.initial_pose = sapien.Pose()
        self.arena = builder.build_kinematic(name="arena")

        self._load_cabinet(self.asset_root / "data" / "custom" / "mk_station_recolor.urdf")
        self._load_objects(options)

    def _load_cabinet(self, urdf: Path) -> None:
        """The cabinet articulation at `CABINET_POSE`, passive drawers (SimplerEnv's friction and damping)."""
        loader = self.scene.create_urdf_loader()
        loader.fix_root_link = True
        loader.name = "cabinet"
        builder = loader.parse(str(urdf))["articulation_builders"][0]
        builder.initial_pose = CABINET_POSE
        self.cabinet = builder.build(name="cabinet")
        for joint in self.cabinet.get_active_joints():
            joint.set_friction(CABINET_JOINT_FRICTION)
            joint.set_drive_properties(stiffness=0, damping=1)
        joint_names = [j.name for j in self.cabinet.get_active_joints()]
        self.drawer_joint_index = joint_names.index(f"{self.drawer_id}_drawer_joint")
        self.drawer_link = self.cabinet.links_map[f"{self.drawer_id}_drawer"]

    def _load_objects(self, options: dict) -> None:
        """Hook for task objects (the apple)."""

    def _green_screen_keep(self) -> list:
        """Entities rendered from simulation (not replaced by the real image): robot, cabinet, task objects."""
        return list(self.agent.robot.get_links()) + list(self.cabinet.get_links())

    def _after_reconfigure(self, options: dict):
        super()._after_reconfigure(options)
        ids = [x.per_scene_id for x in self._green_screen_keep()]
        self._keep_ids = torch.unique(torch.cat([torch.as_tensor(i).reshape(-1) for i in ids])).to(self.device)

    # ------------------------------------------------------------------ episodes
    def reset(self, seed=None, options: dict | None = None):
        """Reset to grid episode `options["episode"]` (int), or to a random grid episode if absent."""
        options = dict(options or {})
        if "episode" in options:
            index = int(options["episode"])
        else:
            rng = np.random.default_rng(seed)
            index = int(rng.integers(num_episodes(self.task_family)))
        self.episode = episode_config(self.task_family, index)
        if self.episode.urdf_version != self.urdf_version:
            self.urdf_version = self.episode.urdf_version
            self.robot_uids = agent_class(str(self.asset_root), self.urdf_version)
            options["reconfigure"] = True
        self._overlay_img = self._overlay(self.episode.overlay_id) if self.overlay else None
        return super().reset(seed=seed, options=options)

    def _overlay(self, overlay_id: str) -> torch.Tensor:
        if overlay_id not in self._overlay_cache:
            self._overlay_cache[overlay_id] = load_overlay(self.asset_root, overlay_id, CAMERA_WIDTH,
                                                           CAMERA_HEIGHT).to(self.device)
        return self._overlay_cache[overlay_id]

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict):
        ep = self.episode
        with torch.device(self.device):
            cab_q = torch.zeros(self.cabinet.max_dof)
            cab_q[self.drawer_joint_index] = self.init_drawer_qpos
            self.cabinet.set_qpos(cab_q)
            self.cabinet.set_qvel(torch.zeros(self.cabinet.max_dof))
            # objects settle with the robot out of the way (as ManiSkill2_real2sim does), then the robot is placed
            self.agent.robot.set_pose(sapien.Pose([-10.0, 0.0, 0.0]))
            self._initialize_objects(options)
            qpos = self.agent.qpos_from_names(DRAWER_INIT_QPOS_BY_NAME)
            self.agent.reset(qpos)
            joints = self.agent.robot.get_active_joints()
            self.agent.robot.set_joint_drive_targets(qpos, joints, torch.arange(len(joints)))
            self.agent.robot.set_pose(sapien.Pose([ep.robot_xy[0], ep.robot_xy[1], ROBOT_BASE_HEIGHT],
                                                  list(ep.robot_quat_wxyz)))
            self.agent.hold_head(DRAWER_INIT_QPOS_BY_NAME)
            # controllers must start from the final robot state
            self.agent.controller.reset()

    def _initialize_objects(self, options: dict) -> None:
        """Hook: place task objects (the apple)."""

    def _settle(self, seconds: float) -> None:
        for _ in range(int(SIM_FREQ * seconds)):
            self.scene.step()

    # ------------------------------------------------------------------ observation
    def _get_obs_sensor_data(self, apply_texture_transforms: bool = True):
        obs = super()._get_obs_sensor_data(apply_texture_transforms)
        cam = obs.get(CAMERA_NAME)
        if self._overlay_img is not None and cam is not None and "segmentation" in cam and "rgb" in cam:
            seg = cam["segmentation"][..., 0]
            background = ~torch.isin(seg, self._keep_ids.to(seg.device))
            cam["rgb"] = torch.where(background[..., None], self._overlay_img.to(cam["rgb"].device), cam["rgb"])
        return obs

    # ------------------------------------------------------------------ state
    @property
    def drawer_qpos(self) -> torch.Tensor:
        """Opening of the task's drawer in metres, (num_envs,)."""
        return self.cabinet.get_qpos()[:, self.drawer_joint_index]

    def get_language_instruction(self) -> str:
        raise NotImplementedError

    def is_final_subtask(self) -> bool:
        """True when the current instruction is the task's last (always, except place-apple before the switch)."""
        return True

    def advance_to_next_subtask(self) -> None:
        """Single-subtask tasks have nothing to advance to."""

    def compute_sparse_reward(self, obs, action, info):
        return info["success"].float()
