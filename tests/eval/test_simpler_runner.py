"""The SimplerEnv-side runner's policy half, against the real policy server (SimplerEnv itself is not needed here).

The runner must give SimplerEnv exactly what our in-process `SelfFlowPolicy.step` would, while importing
only numpy and the light client.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from script_module import load_script

from selfflow_robot.data import transforms as T
from selfflow_robot.policies.policy import SelfFlowPolicy
from selfflow_robot.policies.serving.engine import SelfFlowEngine
from selfflow_robot.policies.serving.server import PolicyServer

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "selfflow_robot" / "evaluation" / "simpler" / "runner.py"


runner = load_script(RUNNER, "simpler_runner_under_test")


def test_runner_imports_only_numpy_and_the_client():
    code = (f"import importlib.util, sys; s = importlib.util.spec_from_file_location('r', {str(RUNNER)!r}); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); m.load_client_module(); "
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'hydra', 'omegaconf', 'mani_skill', "
            "'sapien', 'simpler_env') or (k.startswith('selfflow_robot') and k not in "
            "('selfflow_robot', 'selfflow_robot.policies', 'selfflow_robot.policies.client', "
            "'selfflow_robot.policies.wire'))); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_action_conversion_matches_the_in_process_policy():
    rng = np.random.default_rng(0)
    for scale, dead in ((1.0, 1e-2), (0.5, 0.2)):
        conv = T.SimplerAction(scale, dead)
        for _ in range(20):
            a = rng.normal(0, 0.1, 7)
            a[6] = rng.choice([0.005, -0.3, 0.9, -1.0])
            term = float(rng.integers(2))
            raw_a, act_a = runner.to_simpler_action(a, term, scale, dead)
            raw_b, act_b = conv(a, term)
            for d_a, d_b in ((raw_a, raw_b), (act_a, act_b)):
                assert d_a.keys() == d_b.keys()
                for k in d_a:
                    np.testing.assert_allclose(d_a[k], d_b[k], err_msg=k)
            T.check_simpler_action(act_a)


def test_runner_splits_its_options_from_simpler_envs():
    ours, rest = runner.parse_runner_args(["--server", "ws://h:1", "--execute-horizon", "2", "--env-name",
                                           "OpenTopDrawerCustomInScene-v0", "--enable-raytracing",
                                           "--additional-env-build-kwargs", "urdf_version=None"])
    assert ours.server == "ws://h:1" and ours.execute_horizon == 2
    assert rest == ["--env-name", "OpenTopDrawerCustomInScene-v0", "--enable-raytracing",
                    "--additional-env-build-kwargs", "urdf_version=None"]


@pytest.mark.parametrize("execute_horizon", [None, 2])
def test_remote_policy_equals_in_process_policy(eval_ckpt, execute_horizon):
    local = SelfFlowPolicy.from_pretrained(eval_ckpt, execute_horizon=execute_horizon, steps=2)
    engine = SelfFlowEngine.from_checkpoint(str(eval_ckpt), device="cpu", steps=2)
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (128, 160, 3), dtype=np.uint8) for _ in range(7)]
    client_mod = runner.load_client_module()
    with PolicyServer(engine, port=0) as server, client_mod.PolicyClient(server.uri) as client:
        remote = runner.RemotePolicy(client, execute_horizon=execute_horizon)
        assert remote.context_frames == 2 and remote.chunk_length == 4
        for task in ("open top drawer", "close middle drawer"):  # a new instruction resets both sides
            for img in frames:
                raw_l, act_l = local.step(img, task)
                raw_r, act_r = remote.step(img, task)
                for k in act_l:
                    np.testing.assert_allclose(act_r[k], act_l[k], rtol=1e-5, atol=1e-6, err_msg=f"{task} {k}")
                for k in raw_l:
                    np.testing.assert_allclose(raw_r[k], raw_l[k], rtol=1e-5, atol=1e-6, err_msg=f"{task} {k}")
    # 7 steps per task, one chunk every `execute_horizon` (default: the whole chunk of 4) steps
    per_task = -(-7 // (execute_horizon or 4))
    assert len(remote.infer_ms) == 2 * per_task


def test_ignore_terminate_runs_episodes_to_their_step_limit(eval_ckpt):
    """The server's terminate flags go through as SimplerEnv's `terminate_episode`, or never with
    `--ignore-terminate` (an undertrained checkpoint's early terminate would end the episode)."""
    engine = SelfFlowEngine.from_checkpoint(str(eval_ckpt), device="cpu", steps=1)
    client_mod = runner.load_client_module()
    frames = [np.full((128, 160, 3), v, np.uint8) for v in range(0, 240, 30)]
    with PolicyServer(engine, port=0) as server, client_mod.PolicyClient(server.uri) as client:
        replies = []
        infer = client.infer
        client.infer = lambda *a, **k: replies.append(infer(*a, **k)) or replies[-1]
        sent = {}
        for ignore in (False, True):
            policy = runner.RemotePolicy(client, ignore_terminate=ignore)
            policy.reset("open top drawer")
            sent[ignore] = [float(policy.step(img)[1]["terminate_episode"][0]) for img in frames]
    flags = [float(t >= 0.5) for r in replies[:2] for t in np.asarray(r["terminate"]).reshape(-1)]
    assert sent[False] == flags and sent[True] == [0.0] * len(frames)
    assert runner.parse_runner_args(["--ignore-terminate"])[0].ignore_terminate


def test_remote_policy_refuses_a_state_conditioned_server(eval_state_ckpt):
    """SimplerEnv's loop passes only the image, so a checkpoint with proprioception is refused up front."""
    engine = SelfFlowEngine.from_checkpoint(str(eval_state_ckpt), device="cpu", steps=1)
    client_mod = runner.load_client_module()
    with PolicyServer(engine, port=0) as server, client_mod.PolicyClient(server.uri) as client:
        with pytest.raises(ValueError, match="selfflow-robot eval.*use_state=false"):
            runner.RemotePolicy(client)
    # served with use_state=false (image only, through the learned null state), SimplerEnv's loop can run it
    engine = SelfFlowEngine.from_checkpoint(str(eval_state_ckpt), device="cpu", steps=1, use_state=False)
    with PolicyServer(engine, port=0) as server, client_mod.PolicyClient(server.uri) as client:
        policy = runner.RemotePolicy(client)
        policy.reset("open top drawer")
        raw, action = policy.step(np.zeros((256, 320, 3), np.uint8))
        assert np.isfinite(raw["world_vector"]).all() and action["terminate_episode"].shape == (1,)


def test_visualize_epoch_writes_a_plot(tmp_path):
    policy = runner.RemotePolicy.__new__(runner.RemotePolicy)
    raws = [runner.to_simpler_action(np.full(7, 0.01 * i), 0.0)[0] for i in range(5)]
    out = tmp_path / "a.png"
    policy.visualize_epoch(raws, [np.zeros((8, 8, 3), np.uint8)] * 5, str(out))
    assert out.stat().st_size > 1000
