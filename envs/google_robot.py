"""Google robot (static base) for ManiSkill3, controlled exactly as SimplerEnv controls it for RT-1.

Numbers from ManiSkill2_real2sim `agents/configs/google_robot/defaults.py` (simpler-env, ef7a4d4): control
mode `arm_pd_ee_delta_pose_align_interpolate_by_planner_gripper_pd_joint_target_delta_pos_interpolate_by_
planner` (SimplerEnv's `get_robot_control_mode` for the Google robot), arm PD gains / force limits of that
mode (force drives, joint friction 0), gripper PD 200/8/60, finger friction 2.0, overhead camera 640x512
with fx=fy=425, cx=320, cy=256 on `link_camera`; 513 Hz physics, 3 Hz control (171 steps per action).

Action (7,), never normalised, as SimplerEnv's evaluator sends it:
`[world_vector (3), rot_axangle (3), gripper (1)]`
- arm (`PlannedEEPoseController`): target pose = the measured TCP pose in the base frame, translated by
  world_vector and left-multiplied by the axis-angle rotation (`ee_align`); joint target = Pinocchio IK
  seeded with the measured joints (unchanged joints if IK fails). A Ruckig plan (jerk-limited, time-
  synchronised; v 1.5 rad/s, a 2.0 rad/s^2, jerk 50 rad/s^3) runs to it from where the previous plan was
  at the end of the last control period (position and velocity; after a reset from the measured joints),
  sampled at 513 Hz; each simulation step drives toward the next sample (`joint_planner.py`).
- gripper (`PlannedGripperController`, both fingers): g clipped to [-1, 1], +1 closes; target = last drive
  target + 1.31 g, clipped to the finger limits +- 0.01; |1.31 g| < 1e-3 keeps the previous target. A Ruckig
  plan (v 1.0, a 7.0, jerk 50) runs from the measured fingers and velocity; planned position and velocity
  are both sent to the drives.

Physics details matched to SAPIEN 2.2.2 (measured there, see docs/simpler_fidelity.md): drive targets are
clamped to the joint limits (a joint driven past its limit slows down exponentially, at stiffness/damping);
the closed fingertips stop on each other at 1.075 rad (SimplerEnv: self-collision; here: the fingers' upper
joint limit, robot self-collision stays off because PhysX 5 made that contact jitter); Coriolis and
centrifugal forces are balanced as ManiSkill2's `balance_passive_force` does (gravity: links without gravity).
With these the port's joints follow SimplerEnv's to ~0.1 mm for a free-space action sequence.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import sapien
import torch
from gymnasium import spaces
from mani_skill.agents.base_agent import BaseAgent
from mani_skill.agents.controllers.pd_ee_pose import PDEEPoseController, PDEEPoseControllerConfig
from mani_skill.agents.controllers.pd_joint_pos import PDJointPosController, PDJointPosControllerConfig
from mani_skill.sensors.camera import CameraConfig
from mani_skill.utils.geometry.rotation_conversions import axis_angle_to_quaternion, quaternion_multiply
from mani_skill.utils.structs import Pose

from selfflow_robot.envs.joint_planner import JointLimits, plan_batch

DESCRIPTION_DIR = "mani_skill2_real2sim/assets/descriptions/googlerobot_description"
BASE_URDF = "google_robot_meta_sim_fix_wheel_fix_fingertip"

ARM_JOINTS = ("joint_torso", "joint_shoulder", "joint_bicep", "joint_elbow", "joint_forearm", "joint_wrist",
              "joint_gripper")
# The head (carrying the camera) is not in the EE chain, so the IK controller cannot own it; it is held
# at its initial position by a fixed PD drive with the arm's head gains (see `GoogleRobotStatic.hold_head`).
HEAD_JOINTS = ("joint_head_pan", "joint_head_tilt")
HEAD_STIFFNESS, HEAD_DAMPING, HEAD_FORCE_LIMIT = 2000.0, 900.0, 100.0
GRIPPER_JOINTS = ("joint_finger_right", "joint_finger_left")
ARM_STIFFNESS = (1700.0, 1737.0471680861954, 979.975871856535, 930.0, 1212.154500274304, 432.96500923932535,
                 468.0013365498738)
ARM_DAMPING = (1059.9791902443303, 1010.4720585373592, 767.2803161582076, 680.0, 674.9946964336588,
               274.613381336198, 340.532560578637)
ARM_FORCE_LIMIT = (300, 300, 100, 100, 100, 100, 100)
# Ruckig limits of SimplerEnv's planner-interpolated controllers (velocity rad/s, acceleration rad/s^2, jerk rad/s^3)
ARM_PLANNER_LIMITS = JointLimits(velocity=1.5, acceleration=2.0, jerk=50.0)
GRIPPER_STIFFNESS, GRIPPER_DAMPING, GRIPPER_FORCE_LIMIT = 200.0, 8.0, 60.0
GRIPPER_PLANNER_LIMITS = JointLimits(velocity=1.0, acceleration=7.0, jerk=50.0)
FINGER_URDF_LIMITS = (-0.0001, 1.3)
# Where SimplerEnv's closed fingers stop on each other (fingertip contact, self-collision; measured 1.071-1.080
# rad). The port has robot self-collision off (PhysX 5 made that contact jitter and slide the tips past each
# other), so the finger joints get this as their upper limit instead; targets still run to 1.3 (+0.01).
FINGER_CONTACT_Q = 1.075
GRIPPER_SCALE = 1.3 + 0.01  # normalised gripper action 1 -> 1.31 rad finger target change
FINGER_FRICTION = 2.0
EE_LINK = "link_gripper_tcp"
CAMERA_NAME = "overhead_camera"
CAMERA_WIDTH, CAMERA_HEIGHT = 640, 512
CAMERA_INTRINSIC = ((425.0, 0.0, 320.0), (0.0, 425.0, 256.0), (0.0, 0.0, 1.0))
# Initial joint positions of the drawer tasks (ManiSkill2_real2sim open_drawer_in_scene.py), in SAPIEN 2's
# active-joint order (7 arm, 2 fingers, head pan/tilt); SAPIEN 3 orders joints differently, so always go
# through `init_qpos_by_name` / `GoogleRobotStatic.qpos_from_names`.
DRAWER_INIT_QPOS = (-0.2639457174606611, 0.0831913360274175, 0.5017611504652179, 1.156859026208673,
                    0.028583671314766423, 1.592598203487462, -1.080652960128774, 0.0, 0.0, -0.00285961,
                    0.7851361)
INIT_QPOS_NAMES = ARM_JOINTS + GRIPPER_JOINTS + HEAD_JOINTS
DRAWER_INIT_QPOS_BY_NAME = dict(zip(INIT_QPOS_NAMES, DRAWER_INIT_QPOS))
CONTROL_MODE = ("arm_pd_ee_delta_pose_align_interpolate_by_planner_gripper_pd_joint_target_delta_pos_"
                "interpolate_by_planner")  # SimplerEnv's name for the Google robot's RT-1 control mode


def urdf_path(asset_root: Path, urdf_version: str = "") -> Path:
    """The robot URDF for a colour variant ("" = plain, else e.g. "recolor_tabletop_visual_matching_1")."""
    suffix = f"_{urdf_version}" if urdf_version else ""
    return Path(asset_root) / DESCRIPTION_DIR / f"{BASE_URDF}{suffix}.urdf"


def _sim_freq(controller) -> float:
    """The simulation rate (Hz) a controller's plan is sampled at (ManiSkill3 controllers keep only steps/control)."""
    return round(1.0 / controller.articulation.px.timestep)


def _drive_to(controller, targets: torch.Tensor, limits: torch.Tensor | None = None) -> None:
    """Send position targets (B, n) to the controller's joints, clamped to the joint limits (n, 2).

    SAPIEN 2.2.2 (PhysX 4) behaves as if it clamps drive targets to the joint limits: a joint driven past its
    limit approaches the limit exponentially at rate stiffness / damping (measured on the wrist, torso,
    elbow, gripper and finger joints). PhysX 5 drives toward the unclamped target and stops hard at the
    limit, which made the port's wrist reach its limit ~0.5 s earlier than SimplerEnv's. `limits` defaults
    to the articulation's.
    """
    if limits is None:
        limits = controller.articulation.get_qlimits()[0, controller.active_joint_indices]
    limits = limits.to(targets)
    controller.set_drive_targets(torch.clamp(targets, limits[:, 0], limits[:, 1]).float())


class PlannedEEPoseController(PDEEPoseController):
    """SimplerEnv's `arm_pd_ee_delta_pose_align_interpolate_by_planner` (ManiSkill2_real2sim `PDEEPoseController`).

    Per action: target pose = the *measured* TCP pose in the base frame, rotated (left-multiplied) by the
    axis-angle delta and shifted by the translation delta (`ee_align`); joint target = Pinocchio IK seeded
    with the measured joints (the measured joints if IK fails); then a Ruckig plan to that target, sampled
    at the simulation rate, that starts where the previous plan was at the end of the last control period
    (its position and velocity; after a reset: the measured joints and velocity, clipped to the velocity
    limit). Simulation step k drives toward sample k. Actions are used as given (no normalisation, no
    clipping).
    """

    config: PlannedEEPoseControllerConfig

    def compute_target_pose(self, prev_ee_pose_at_base: Pose, action: torch.Tensor) -> Pose:
        delta_pos, delta_rot = action[:, 0:3], action[:, 3:6]
        q = quaternion_multiply(axis_angle_to_quaternion(delta_rot), prev_ee_pose_at_base.q)
        return Pose.create_from_pq(prev_ee_pose_at_base.p + delta_pos, q)

    def reset(self):
        self._target_qpos = None   # ManiSkill3's reset writes float32 into it in place; ours is float64
        super().reset()
        self._path = self._path_vel = None

    def set_action(self, action: torch.Tensor):
        action = self._preprocess_action(action)
        self._step = 0
        self._start_qpos = self.qpos.clone()
        current = self.ee_pose_at_base
        self._target_pose = self.compute_target_pose(current, action)
        target = self.kinematics.compute_ik(pose=self._target_pose, q0=self.articulation.get_qpos(),
                                            is_delta_pose=False, current_pose=current,
                                            solver_config=self.config.delta_solver_config)
        self._target_qpos = (self._start_qpos if target is None else target).double()
        if self._path is None:   # first action after reset: from the measured joints and velocity
            vlim = self.config.limits.velocity
            init_q, init_v = self._start_qpos, self.qvel.clamp(-vlim, vlim)
        else:                    # later ones continue the previous plan where this control period ended it
            i = min(self._sim_steps, self._path.shape[1] - 1)
            init_q, init_v = self._path[:, i], self._path_vel[:, i]
        self._path, self._path_vel = plan_batch(init_q, self._target_qpos, init_v, self.config.limits,
                                                self._sim_steps, _sim_freq(self))

    def before_simulation_step(self):
        self._step += 1
        if self._path is not None:
            _drive_to(self, self._path[:, min(self._step, self._path.shape[1] - 1)])


@dataclass
class PlannedEEPoseControllerConfig(PDEEPoseControllerConfig):
    limits: JointLimits = ARM_PLANNER_LIMITS
    controller_cls = PlannedEEPoseController


class PlannedGripperController(PDJointPosController):
    """SimplerEnv's `gripper_pd_joint_target_delta_pos_interpolate_by_planner` for the two fingers (one action).

    Per action g (clipped to [-1, 1]): delta = 1.31 g; target = last drive target + delta, clipped to the
    finger limits +- 0.01 (`delta_target_from_last_drive_target`, `clip_target`); |delta| < 1e-3 keeps the
    previous target instead (`small_action_repeat_last_target`). A Ruckig plan (v 1.0, a 7.0, jerk 50) runs
    from the measured finger joints and velocity to the target; both the planned position and the planned
    velocity are sent to the drives every simulation step (`interpolate_planner_exec_set_target_vel`).
    """

    config: PlannedGripperControllerConfig

    def _initialize_action_space(self):
        self.single_action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    @property
    def _urdf_limits(self) -> torch.Tensor:
        """(n, 2) finger limits of the URDF (the articulation's upper limit is the fingertip stop, see agent)."""
        return torch.tensor([self.config.urdf_limits] * len(self.joints), dtype=torch.float64)

    def reset(self):
        self._target_qpos = None   # ManiSkill3's reset writes float32 into it in place; ours is float64
        super().reset()
        self._target_qpos = self.qpos.double()
        self._last_drive = self.qpos.double()
        self._path = self._path_vel = None

    def set_action(self, action: torch.Tensor):
        action = self._preprocess_action(action)  # (B, 1), not normalised by ManiSkill3: scaled here
        self._step = 0
        delta = action[:, :1].double().clamp(-1.0, 1.0) * GRIPPER_SCALE
        last_target = self._target_qpos
        qlimits = self._urdf_limits.to(delta)
        thres = self.config.clip_target_thres
        target = torch.clamp(self._last_drive + delta, qlimits[:, 0] - thres, qlimits[:, 1] + thres)
        self._target_qpos = torch.where(delta.abs() < 1e-3, last_target, target)
        vlim = self.config.limits.velocity
        self._start_qpos = self.qpos.clone()
        self._path, self._path_vel = plan_batch(self._start_qpos, self._target_qpos, self.qvel.clamp(-vlim, vlim),
                                                self.config.limits, self._sim_steps, _sim_freq(self))

    def before_simulation_step(self):
        self._step += 1
        if self._path is None:
            return
        i = min(self._step, self._path.shape[1] - 1)
        self._last_drive = self._path[:, i]
        _drive_to(self, self._last_drive, self._urdf_limits)
        self.articulation.set_joint_drive_velocity_targets(self._path_vel[:, i].float(), self.joints,
                                                           self.active_joint_indices)


@dataclass
class PlannedGripperControllerConfig(PDJointPosControllerConfig):
    limits: JointLimits = GRIPPER_PLANNER_LIMITS
    urdf_limits: tuple[float, float] = FINGER_URDF_LIMITS
    clip_target_thres: float = 0.01
    controller_cls = PlannedGripperController


class GoogleRobotStatic(BaseAgent):
    """Google robot with fixed wheels (ManiSkill2_real2sim `google_robot_static`)."""

    uid = "google_robot_static"
    urdf_path = ""  # set per asset root / colour variant by `agent_class`
    fix_root_link = True
    load_multiple_collisions = True
    # SimplerEnv (SAPIEN 2) has self-collision on; its only effect there is the closed fingertips resting on
    # each other at ~1.075 rad. In PhysX 5 that contact jitters, slides the tips past each other and twists
    # the wrist (joints off by 5 cm at the TCP within 5 actions), so it is off and the fingers get the
    # contact angle as their upper limit instead (`FINGER_CONTACT_Q`, `_after_loading_articulation`).
    disable_self_collisions = True
    urdf_config = dict(
        _materials=dict(
            finger_mat=dict(static_friction=FINGER_FRICTION, dynamic_friction=FINGER_FRICTION, restitution=0.0),
            finger_nail_mat=dict(static_friction=0.1, dynamic_friction=0.1, restitution=0.0),
        ),
        link=dict(
            link_finger_left=dict(material="finger_mat", patch_radius=0.1, min_patch_radius=0.1),
            link_finger_right=dict(material="finger_mat", patch_radius=0.1, min_patch_radius=0.1),
            link_finger_tip_left=dict(material="finger_mat", patch_radius=0.1, min_patch_radius=0.1),
            link_finger_tip_right=dict(material="finger_mat", patch_radius=0.1, min_patch_radius=0.1),
            link_finger_nail_left=dict(material="finger_nail_mat", patch_radius=0.01, min_patch_radius=0.01),
            link_finger_nail_right=dict(material="finger_nail_mat", patch_radius=0.01, min_patch_radius=0.01),
        ),
    )

    @property
    def _sensor_configs(self):
        return [CameraConfig(
            uid=CAMERA_NAME,
            # SAPIEN cameras look along +x; link_camera's frame is OpenCV-style, hence this fixed rotation.
            pose=sapien.Pose([0, 0, 0], [0.5, 0.5, -0.5, 0.5]),
            width=CAMERA_WIDTH, height=CAMERA_HEIGHT, mount=self.robot.links_map["link_camera"],
            intrinsic=np.array(CAMERA_INTRINSIC), near=0.01, far=10.0,
        )]

    @property
    def _controller_configs(self):
        arm = PlannedEEPoseControllerConfig(
            joint_names=list(ARM_JOINTS), pos_lower=-1.0, pos_upper=1.0, rot_lower=-np.pi / 2, rot_upper=np.pi / 2,
            stiffness=list(ARM_STIFFNESS), damping=list(ARM_DAMPING), force_limit=list(ARM_FORCE_LIMIT),
            friction=0.0, ee_link=EE_LINK, urdf_path=ik_urdf(self.urdf_path), normalize_action=False,
            frame="root_translation:root_aligned_body_rotation", use_delta=True, interpolate=True,
        )
        gripper = PlannedGripperControllerConfig(
            joint_names=list(GRIPPER_JOINTS), lower=None, upper=None, stiffness=GRIPPER_STIFFNESS,
            damping=GRIPPER_DAMPING, force_limit=GRIPPER_FORCE_LIMIT, normalize_action=False,
            drive_mode="force",
        )
        return {CONTROL_MODE: dict(arm=arm, gripper=gripper)}

    def _after_loading_articulation(self):
        super()._after_loading_articulation()
        for name in GRIPPER_JOINTS:   # the fingertip stop (see FINGER_CONTACT_Q)
            self.robot.joints_map[name].limits = [[FINGER_URDF_LIMITS[0], FINGER_CONTACT_Q]]

    def before_simulation_step(self):
        """Drive targets of this simulation step, plus the Coriolis/centrifugal balance SimplerEnv applies.

        ManiSkill2_real2sim sets qf = passive force (gravity + Coriolis/centrifugal) before every simulation
        step (`balance_passive_force`); ManiSkill3 disables gravity on the robot's links instead (the same for
        gravity) and leaves Coriolis out, so that part is added here (CPU simulation only: PhysX's GPU
        pipeline cannot compute passive forces).
        """
        super().before_simulation_step()
        if not self.scene.gpu_sim_enabled:
            qf = self.robot.compute_passive_force(gravity=False, coriolis_and_centrifugal=True)
            self.robot.set_qf(torch.as_tensor(qf, dtype=torch.float32).reshape(1, -1))

    def qpos_from_names(self, values: dict[str, float]) -> torch.Tensor:
        """(1, dof) qpos in this articulation's active-joint order from a joint-name -> value dict."""
        names = [j.name for j in self.robot.get_active_joints()]
        return torch.tensor([[values[n] for n in names]], dtype=torch.float32)

    def hold_head(self, values: dict[str, float]) -> None:
        """Hold the head joints at `values[name]` with a stiff PD drive."""
        joints = [self.robot.joints_map[n] for n in HEAD_JOINTS]
        for j in joints:
            j.set_drive_properties(HEAD_STIFFNESS, HEAD_DAMPING, force_limit=HEAD_FORCE_LIMIT, mode="force")
        idx = torch.tensor([j.active_index[0] for j in joints])
        target = torch.tensor([[values[n] for n in HEAD_JOINTS]], dtype=torch.float32)
        self.robot.set_joint_drive_targets(target, joints, idx)

    @property
    def tcp(self):
        """The tool-centre-point link (between the fingertips)."""
        return self.robot.links_map[EE_LINK]


@cache
def ik_urdf(path: str) -> str:
    """A copy of the URDF that Pinocchio (the CPU IK) can parse: infinite limits on fixed joints removed.

    SAPIEN's loader accepts `lower="-inf"`; urdfdom in Pinocchio does not. Written once per content to
    the temp folder (atomic rename); meshes are not needed for kinematics.
    """
    text = Path(path).read_text()
    text = re.sub(r'lower="-inf"', 'lower="0"', text)
    text = re.sub(r'upper="inf"', 'upper="0"', text)
    out = Path(tempfile.gettempdir()) / f"selfflow_robot_ik_{hashlib.sha1(text.encode()).hexdigest()[:16]}.urdf"
    if not out.exists():
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".urdf")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)
    return str(out)


@cache
def agent_class(asset_root: str, urdf_version: str = "") -> type[GoogleRobotStatic]:
    """A `GoogleRobotStatic` subclass bound to one URDF file (ManiSkill3 agents take the URDF as a class field)."""
    path = urdf_path(Path(asset_root), urdf_version)
    name = f"GoogleRobotStatic_{urdf_version or 'default'}"
    uid = f"google_robot_static_{urdf_version or 'default'}"
    return type(name, (GoogleRobotStatic,), {"urdf_path": str(path), "uid": uid})
