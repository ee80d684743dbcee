"""Scripted experts solve their tasks (a subset of the grid; the full sweep: `selfflow-robot eval policy=expert`)."""
import numpy as np
import pytest

from selfflow_robot.envs.collect import expert_success

pytest.importorskip("mani_skill", reason="ManiSkill3 not installed; run .ci/install_sim_deps.sh")
from selfflow_robot.envs.experts import make_expert  # noqa: E402  (needs the sim extra)

pytestmark = [pytest.mark.sim, pytest.mark.slow]


@pytest.mark.parametrize("task,episodes", [("close_middle_drawer", [4]), ("open_top_drawer", [0, 8]),
                                           ("open_bottom_drawer", [3])])
def test_expert_succeeds_on_grid_episodes(sim, asset_root, task, episodes):
    env = sim.make_env(task, asset_root=asset_root, obs_mode="none")
    try:
        expert = make_expert(task)
        assert all(expert_success(env, expert, ep) for ep in episodes)
    finally:
        env.close()


@pytest.mark.parametrize("episode", [2, 22])
def test_apple_expert_places_the_apple(sim, asset_root, episode):
    """Opens the top drawer within the 100 steps before the instruction switch, then sweeps the apple off the
    cabinet top into it: the task's own success (apple touched the drawer's interior bottom, drawer open)."""
    env = sim.make_env("place_apple_in_closed_top_drawer", asset_root=asset_root, obs_mode="none")
    try:
        u = env.unwrapped
        expert = make_expert("place_apple_in_closed_top_drawer")
        obs, _ = env.reset(options={"episode": episode})
        expert.reset(env, obs)
        truncated, info, step = False, {}, 0
        while not truncated:
            obs, _, _, truncated, info = env.step(expert.act(env, obs))
            truncated = bool(np.asarray(truncated).reshape(-1)[0])
            step += 1
            if step == 100:
                assert float(u.drawer_qpos[0]) > 0.2                # first subtask done in time
        assert bool(np.asarray(info["success"]).reshape(-1)[0])
        assert float(u.apple.pose.p.reshape(-1)[2]) < 0.8          # down in the drawer, not on the cabinet top
    finally:
        env.close()


def test_robot_colourings_share_physics(sim, asset_root):
    """The 4 URDF colourings differ only in visual meshes: same expert outcome, same final drawer opening.

    (So the expert's success over 9 robot poses is its success over the 36-episode grid.)
    """
    env = sim.make_env("close_top_drawer", asset_root=asset_root, obs_mode="none")
    try:
        expert = make_expert("close_top_drawer")
        out = []
        for ep in (6, 6 + 27):                   # pose c0 with the first and the plain URDF
            ok = expert_success(env, expert, ep)
            out.append((ok, round(float(env.unwrapped.drawer_qpos[0]), 4), env.unwrapped.urdf_version))
        assert out[0][:2] == out[1][:2] and out[0][0]
        assert out[0][2] != out[1][2]
    finally:
        env.close()
