"""The ManiSkill3 drawer envs on CPU with real rendering: shapes, overlay, success thresholds, subtasks."""
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def open_env(sim, asset_root):
    env = sim.make_env("open_middle_drawer", asset_root=asset_root)
    yield env
    env.close()


def test_reset_step_shapes_and_instruction(sim, open_env):
    obs, info = open_env.reset(options={"episode": 4})
    img = sim.overhead_rgb(obs)
    assert img.shape == (512, 640, 3) and img.dtype == np.uint8
    u = open_env.unwrapped
    assert u.get_language_instruction() == "open middle drawer"
    assert u.episode.overlay_id == "b1" and u.is_final_subtask()
    assert np.allclose(u.agent.robot.pose.p[0, :2].numpy(), (0.752, 0.009), atol=1e-5)
    obs, reward, terminated, truncated, info = open_env.step(sim.to_action(
        {"world_vector": [0, 0, 0.02], "rot_axangle": [0, 0, 0], "gripper": [0]}))
    assert sim.overhead_rgb(obs).shape == (512, 640, 3)
    assert info["success"].shape == (1,) and not bool(info["success"][0]) and not bool(truncated)
    assert int(info["elapsed_steps"][0]) == 1
    with pytest.raises(ValueError, match="7 finite numbers"):
        sim.to_action([0, 0, np.nan, 0, 0, 0, 0])


def test_action_moves_the_end_effector_in_the_base_frame(open_env):
    open_env.reset(options={"episode": 3})       # b0: base yaw 180 deg, so base +z is world +z, +x is world -x
    u = open_env.unwrapped
    p0 = u.agent.tcp.pose.p[0].numpy().copy()
    for _ in range(6):
        open_env.step(np.array([0.03, 0, 0.03, 0, 0, 0, 0], np.float32))
    d = u.agent.tcp.pose.p[0].numpy() - p0
    # SimplerEnv's controller: the arm lags the target pose (overdamped PD), then speeds up as plans chain
    assert d[0] < -0.02 and d[2] > 0.02 and abs(d[1]) < 0.015


def test_overlay_replaces_the_background(sim, asset_root, open_env):
    obs, _ = open_env.reset(options={"episode": 0})
    with_overlay = sim.overhead_rgb(obs).astype(np.float32)
    plain = sim.make_env("open_middle_drawer", asset_root=asset_root, overlay=False)
    try:
        obs2, _ = plain.reset(options={"episode": 0})
        no_overlay = sim.overhead_rgb(obs2).astype(np.float32)
    finally:
        plain.close()
    seg = obs["sensor_data"]["overhead_camera"]["segmentation"][0, ..., 0]
    background = ~torch.isin(seg, open_env.unwrapped._keep_ids).numpy()
    assert 0.2 < background.mean() < 0.95                      # cabinet + robot in front of the real image
    overlay = open_env.unwrapped._overlay("a0").numpy().astype(np.float32)
    assert np.abs(with_overlay[background] - overlay[background]).max() == 0
    assert np.abs(with_overlay - no_overlay)[background].mean() > 20     # white sim ground vs the real floor
    assert np.abs(with_overlay - no_overlay)[~background].mean() < 1     # sim foreground untouched


@pytest.mark.parametrize("task,qpos,expected", [
    ("open_middle_drawer", 0.16, True), ("open_middle_drawer", 0.14, False),
    ("close_top_drawer", 0.04, True), ("close_top_drawer", 0.06, False)])
def test_success_flips_at_the_drawer_threshold(sim, asset_root, open_env, task, qpos, expected):
    env = open_env if task == "open_middle_drawer" else _close_env(sim, asset_root)
    env.reset(options={"episode": 1})
    u = env.unwrapped
    if task.startswith("close"):
        assert u.drawer_qpos.item() == pytest.approx(0.2)            # close tasks start 0.2 m open
    q = u.cabinet.get_qpos().clone()
    q[0, u.drawer_joint_index] = qpos
    u.cabinet.set_qpos(q)
    assert bool(u.evaluate()["success"][0]) is expected


_CLOSE = {}


def _close_env(sim, asset_root):
    if "env" not in _CLOSE:
        _CLOSE["env"] = sim.make_env("close_top_drawer", asset_root=asset_root)
    return _CLOSE["env"]


def test_place_apple_switches_instruction_at_step_100(sim, asset_root):
    env = sim.make_env("place_apple_in_closed_top_drawer", asset_root=asset_root)
    try:
        env.reset(options={"episode": 4})                 # a0 pose, apple at (-0.05, 0.03)
        u = env.unwrapped
        apple = u.apple.pose.p[0].numpy()
        assert apple[:2] == pytest.approx((-0.05, 0.03), abs=0.01)
        assert 0.86 < apple[2] < 0.95                           # settled on the cabinet top
        assert u.get_language_instruction() == "open top drawer" and not u.is_final_subtask()
        u._elapsed_steps[:] = 99
        env.step(np.zeros(7, np.float32))
        assert u.get_language_instruction() == "open top drawer"
        _, _, _, _, info = env.step(np.zeros(7, np.float32))     # the 101st step runs on subtask 2
        assert u.get_language_instruction() == "place apple into top drawer" and u.is_final_subtask()
        assert not bool(info["success"][0])                      # drawer closed, apple outside
        env.reset(options={"episode": 4})
        u.advance_to_next_subtask()                              # what a policy's terminate does
        assert u.get_language_instruction() == "place apple into top drawer"
    finally:
        env.close()
