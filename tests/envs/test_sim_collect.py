"""`selfflow-robot collect` writes RT-1 RLDS that reads back through the RT-1 reader."""
import io

import numpy as np
import pytest
from PIL import Image

from selfflow_robot.cli import main as cli
from selfflow_robot.config import structured
from selfflow_robot.data import schema
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.synth import instruction_embedding
from selfflow_robot.envs.collect import ActionNoise, CollectConfig, record_episode
from selfflow_robot.envs.tasks import task_spec
from selfflow_robot.errors import ConfigError

pytest.importorskip("mani_skill", reason="ManiSkill3 not installed; run .ci/install_sim_deps.sh")
from selfflow_robot.envs.experts import make_expert  # noqa: E402  (needs the sim extra)

pytestmark = pytest.mark.sim


def test_collect_round_trip_through_rlds_reader(sim, asset_root, tmp_path):
    out = tmp_path / "demos"
    rc = cli(["collect", "task=close_top_drawer", "episodes=2", "start_episode=35", "max_steps=5",
              f"output_dir={out}", f"assets={asset_root}"])
    assert rc == 0
    reader = RLDSReader(out)
    assert len(reader) == 2
    ep = reader.read(0)
    assert len(ep) == 5 and ep.instruction == "close top drawer"
    assert ep.actions().shape == (5, 7) and np.isfinite(ep.actions()).all()
    assert (ep.actions()[:, 6] == 1.0).all()                       # the close expert keeps its fingers closed
    assert np.abs(ep.actions()[:, :3]).max() > 0.005                 # it moves
    assert ep.terminate().tolist() == [0, 0, 0, 0, 1]
    np.testing.assert_allclose(ep.language_embedding, instruction_embedding("close top drawer"))
    frame = np.asarray(Image.open(io.BytesIO(ep.images[0])))
    assert frame.shape == schema.IMAGE_SHAPE and frame.std() > 10   # a real rendered, overlaid frame
    assert not ep.meta["aspects/success"]                            # 5 steps cannot close it
    assert str(ep.meta["attributes/env_name"]).endswith("episode_35")
    assert str(reader.read(1).meta["attributes/env_name"]).endswith("episode_0")   # the grid wraps 35 -> 0
    # proprioception, in the robot base frame: both episodes start from the same arm pose although the
    # robot stands elsewhere in the two grid episodes; unit quaternions; the tool moves; the fingers close
    s0, s1 = ep.state(), reader.read(1).state()
    assert s0.shape == (5, 8)
    np.testing.assert_allclose(s0[0], s1[0], atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(s0[:, schema.QUAT], axis=1), 1.0, atol=1e-4)
    assert np.linalg.norm(s0[-1, :3] - s0[0, :3]) > 0.02
    assert s0[0, 7] < 0.05 and s0[-1, 7] > 0.9


def test_noisy_collect_records_the_executed_actions(sim, asset_root):
    """With action noise, each recorded action is the expert's plus the (task, episode)-seeded draw."""
    task, episode = "open_middle_drawer", 4
    env = sim.make_env(task, asset_root=asset_root, max_episode_steps=3)
    try:
        clean = record_episode(env, make_expert(task), episode)
        noise = ActionNoise(0.015, 0.03, seed=7)
        noisy = [record_episode(env, make_expert(task), episode, noise, task) for _ in range(2)]
    finally:
        env.close()
    a_clean = np.concatenate([clean[k] for k in ("action/world_vector", "action/rotation_delta")], 1)
    a_noisy = [np.concatenate([n[k] for k in ("action/world_vector", "action/rotation_delta")], 1) for n in noisy]
    np.testing.assert_array_equal(a_noisy[0], a_noisy[1])          # reproducible
    rng = noise.rng(task, episode)                                 # the first action: same state, so exactly
    want = np.concatenate([rng.normal(0, 0.015, 3), rng.normal(0, 0.03, 3)]).astype(np.float32)
    np.testing.assert_allclose(a_noisy[0][0] - a_clean[0], want, atol=1e-6)
    np.testing.assert_array_equal(noisy[0]["action/gripper_closedness_action"],
                                  clean["action/gripper_closedness_action"])
    assert noisy[0]["attributes/data_type_name"] == "scripted_expert_noise_0.015m_0.03rad"
    assert clean["attributes/data_type_name"] == "scripted_expert"
    # it moved elsewhere
    assert not np.array_equal(noisy[0]["observation/image"][-1], clean["observation/image"][-1])


def test_collect_rejects_bad_config(sim):
    with pytest.raises(ConfigError, match="episodes must be >= 1"):
        structured(CollectConfig, {"episodes": 0})
    with pytest.raises(ConfigError, match="action_noise_m / action_noise_rad must be >= 0"):
        structured(CollectConfig, {"action_noise_rad": -0.1})
    with pytest.raises(ConfigError, match="did you mean 'open_top_drawer'"):
        task_spec("open_top_drawr")
