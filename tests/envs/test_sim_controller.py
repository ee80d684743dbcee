"""The port's Google-robot controllers reproduce SimplerEnv's, step by step.

Reference numbers were measured in real SimplerEnv (4ab7178, ManiSkill2_real2sim ef7a4d4, SAPIEN 2.2.2,
control mode `arm_pd_ee_delta_pose_align_interpolate_by_planner_gripper_pd_joint_target_delta_pos_
interpolate_by_planner`) on the open-top-drawer scene of grid episode 0 (robot at (0.644, -0.179), yaw -0.03),
with the script in docs/simpler_fidelity.md ("Controller check").
"""
import numpy as np
import pytest

pytest.importorskip("mani_skill", reason="ManiSkill3 not installed; run .ci/install_sim_deps.sh")
from selfflow_robot.envs.google_robot import FINGER_CONTACT_Q, _drive_to  # noqa: E402  (needs the sim extra)

pytestmark = pytest.mark.sim

# TCP displacement (world, metres) after each of 6 actions [0.03, 0, 0.03, 0, 0, 0, 0] in SimplerEnv
SIMPLER_TCP = np.array([[-0.0029, 0.0001, 0.0009], [-0.0133, -0.0007, 0.0096], [-0.0236, -0.0012, 0.0169],
                        [-0.0344, -0.0021, 0.0248], [-0.0472, -0.0034, 0.0328], [-0.0644, -0.0061, 0.0423]])
# then gripper actions 1, 1, 0, -1: mean finger joint (rad) after each
SIMPLER_FINGERS = np.array([0.1919, 0.5252, 0.8586, 0.9442])


@pytest.fixture(scope="module")
def env(sim, asset_root):
    e = sim.make_env("open_top_drawer", asset_root=asset_root, obs_mode="none")
    yield e
    e.close()


def _fingers(u) -> float:
    return float(np.mean([u.agent.robot.joints_map[n].qpos[0].item() for n in ("joint_finger_right",
                                                                                 "joint_finger_left")]))


def test_constant_delta_command_tracks_simplerenv(env):
    """Ruckig plans chained across control periods: the TCP speeds up over the first steps exactly as in
    SimplerEnv (a linear, rate-limited path lags behind by 2 cm after 6 steps)."""
    env.reset(options={"episode": 0})
    u = env.unwrapped
    p0 = u.agent.tcp.pose.p[0].numpy().copy()
    path = []
    for _ in range(6):
        env.step(np.array([0.03, 0, 0.03, 0, 0, 0, 0], np.float32))
        path.append(u.agent.tcp.pose.p[0].numpy() - p0)
    assert np.abs(np.array(path) - SIMPLER_TCP).max() < 0.001          # within 1 mm at every step
    # the gripper: relative targets from the last drive target, planned at 1 rad/s, 7 rad/s^2
    fingers = []
    for g in (1.0, 1.0, 0.0, -1.0):
        env.step(np.array([0, 0, 0, 0, 0, 0, g], np.float32))
        fingers.append(_fingers(u))
    assert np.abs(np.array(fingers) - SIMPLER_FINGERS).max() < 0.01


def test_closed_fingers_stop_on_each_other(env):
    """SimplerEnv's fingertips meet at ~1.075 rad while their drive keeps pulling (each action replans from
    the measured 1.075 toward 1.3, so the drive target stays well past the stop): the port stops there too."""
    env.reset(options={"episode": 0})
    u = env.unwrapped
    for _ in range(6):
        env.step(np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32))
    assert _fingers(u) == pytest.approx(FINGER_CONTACT_Q, abs=0.005)
    targets = u.agent.robot.get_drive_targets()[0].numpy()
    names = [j.name for j in u.agent.robot.get_active_joints()]
    assert 1.2 < targets[names.index("joint_finger_right")] <= 1.3


def test_zero_action_holds_and_small_gripper_action_keeps_target(env):
    env.reset(options={"episode": 2})
    u = env.unwrapped
    env.step(np.array([0, 0, 0, 0, 0, 0, 0.5], np.float32))
    target = u.agent.controller.controllers["gripper"]._target_qpos.clone()
    p = u.agent.tcp.pose.p[0].numpy().copy()
    for _ in range(3):
        env.step(np.array([0, 0, 0, 0, 0, 0, 1e-4], np.float32))     # |1.31 * g| < 1e-3: previous target
    assert (u.agent.controller.controllers["gripper"]._target_qpos == target).all()
    assert np.linalg.norm(u.agent.tcp.pose.p[0].numpy() - p) < 0.002


def test_joint_driven_past_its_limit_slows_down_like_simplerenv(env):
    """Drive targets are clamped to the joint limits (SAPIEN 2 behaviour): the wrist approaches its limit
    exponentially at stiffness/damping (1.58/s) instead of hitting it at full speed."""
    env.reset(options={"episode": 0})
    u = env.unwrapped
    arm = u.agent.controller.controllers["arm"]
    wrist = [j.name for j in arm.joints].index("joint_wrist")
    idx = arm.active_joint_indices[wrist]
    target = arm.qpos.clone()
    target[0, wrist] = 3.0                                              # far past the 1.79 limit
    for _ in range(300):
        _drive_to(arm, target)
        u.scene.step()
    q, v = float(u.agent.robot.get_qpos()[0, idx]), float(u.agent.robot.get_qvel()[0, idx])
    assert q < 1.78 and v == pytest.approx(1.577 * (1.79 - q), rel=0.05)
