"""The Ruckig joint planner the Google-robot controllers use: limits, timing, sampling (no simulator needed)."""
import numpy as np
import pytest

pytest.importorskip("ruckig", reason="ruckig not installed (pip install 'selfflow-robot[sim]')")

from selfflow_robot.envs.joint_planner import JointLimits, plan_batch, plan_joint_path  # noqa: E402

ARM = JointLimits(velocity=1.5, acceleration=2.0, jerk=50.0)
SIM_FREQ, STEPS = 513, 171          # SimplerEnv's 513 Hz physics, 3 Hz control


def _derivatives(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dt = 1.0 / SIM_FREQ
    vel = np.diff(pos, axis=0) / dt
    return vel, np.diff(vel, axis=0) / dt


def test_rest_to_rest_reaches_the_target_within_the_limits():
    start, target = np.zeros(3), np.array([0.05, -0.2, 0.1])
    pos, vel = plan_joint_path(start, target, 0.0, ARM, 3 * STEPS, SIM_FREQ)     # 1 s: enough for 0.2 rad
    assert pos.shape == vel.shape == (3 * STEPS + 1, 3)
    assert np.allclose(pos[0], start) and np.allclose(vel[0], 0)
    assert np.allclose(pos[-1], target, atol=1e-9) and np.allclose(vel[-1], 0, atol=1e-9)
    assert np.abs(vel).max() <= ARM.velocity + 1e-9
    fd_vel, fd_acc = _derivatives(pos)
    assert np.abs(fd_acc).max() <= ARM.acceleration * 1.01       # finite differences of a jerk-limited path
    # time-synchronised: every joint arrives at the same sample (Ruckig's default), none earlier
    arrive = [int(np.argmax(np.all(np.abs(pos[:, j:j + 1] - target[j]) < 1e-9, axis=1))) for j in range(3)]
    assert len(set(arrive)) == 1 and arrive[0] > 10


def test_long_move_follows_the_trapezoid_time_of_the_limits():
    """Rest to rest over d = 2 rad: cruise at v_max; duration d/v + v/a + a/j (jerk-limited trapezoid)."""
    d = 2.0
    steps = 3 * SIM_FREQ
    pos, vel = plan_joint_path(np.zeros(1), np.array([d]), 0.0, ARM, steps, SIM_FREQ)
    expected = d / ARM.velocity + ARM.velocity / ARM.acceleration + ARM.acceleration / ARM.jerk
    arrived = int(np.argmax(np.abs(pos[:, 0] - d) < 1e-9)) / SIM_FREQ
    assert arrived == pytest.approx(expected, abs=2.0 / SIM_FREQ)
    assert vel[:, 0].max() == pytest.approx(ARM.velocity, abs=1e-6)


def test_initial_velocity_is_continued_and_long_moves_span_control_periods():
    """A plan starts at the given velocity; one control period (171 samples) covers only part of a long move,
    and planning again from where it ended (as the arm controller does) continues smoothly to the target."""
    target = np.array([0.8])
    pos, vel = plan_joint_path(np.zeros(1), target, 0.5, ARM, STEPS, SIM_FREQ)
    assert vel[0, 0] == pytest.approx(0.5)
    assert 0.0 < pos[-1, 0] < target[0] and vel[-1, 0] > 0
    pos2, vel2 = plan_joint_path(pos[-1], target, vel[-1], ARM, STEPS, SIM_FREQ)
    assert np.allclose(pos2[0], pos[-1]) and np.allclose(vel2[0], vel[-1])
    joined = np.concatenate([pos[:, 0], pos2[1:, 0]])
    _, acc = _derivatives(joined[:, None])
    assert np.abs(acc).max() <= ARM.acceleration * 1.01          # no velocity jump at the seam


def test_reversing_velocity_overshoots_then_returns():
    """Moving away from the target at the start, the plan must first brake (position keeps increasing)."""
    pos, vel = plan_joint_path(np.zeros(1), np.array([-0.01]), 1.0, ARM, 6 * STEPS, SIM_FREQ)
    assert pos[:, 0].max() > 0.1 and pos[-1, 0] == pytest.approx(-0.01)


def test_batch_of_robots_as_tensors():
    torch = pytest.importorskip("torch")
    start = torch.zeros(2, 7)
    target = torch.full((2, 7), 0.1)
    target[1] = -0.2
    pos, vel = plan_batch(start, target, torch.zeros(2, 7), ARM, STEPS, SIM_FREQ)
    assert pos.shape == vel.shape == (2, STEPS + 1, 7) and pos.dtype == torch.float64
    one, _ = plan_joint_path(np.zeros(7), np.full(7, -0.2), 0.0, ARM, STEPS, SIM_FREQ)
    assert np.allclose(pos[1].numpy(), one)
    assert not torch.allclose(pos[0], pos[1])
