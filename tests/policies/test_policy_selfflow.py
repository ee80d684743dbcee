"""SelfFlowPolicy on a tiny checkpoint: SimplerEnv schema, chunking cadence, policy-mode tokens,
statistics from the checkpoint, moved checkpoints, sessions, language errors."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import torch

from selfflow_robot.checkpoint import load_statistics
from selfflow_robot.constants import ACTIONS
from selfflow_robot.data.language import HashingTextEncoder
from selfflow_robot.data.statistics import ActionNormalizer
from selfflow_robot.data.transforms import check_simpler_action
from selfflow_robot.errors import ConfigError, UserError
from selfflow_robot.policies.policy import SelfFlowPolicy

TASK = "open top drawer"


def camera_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """SimplerEnv-sized (512 x 640) frames that change over time."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (512, 640, 3), dtype=np.uint8)
    return [np.roll(base, 16 * i, axis=1) for i in range(n)]


def run_episode(policy: SelfFlowPolicy, frames, task=TASK):
    policy.reset(task)
    return [policy.step(f, task) for f in frames]


def test_step_output_passes_the_simpler_schema_and_latency_is_printed(tiny_ckpt):
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=4, execute_horizon=2)
    policy.reset(TASK)
    latencies = []
    for frame in camera_frames(6):
        t0 = time.perf_counter()
        raw, action = policy.step(frame, TASK)
        latencies.append((time.perf_counter() - t0) * 1e3)
        check_simpler_action(action)
        assert set(raw) == {"world_vector", "rotation_delta", "gripper_closedness_action", "terminate_episode"}
        assert all(np.isfinite(v).all() for v in raw.values())
    print(f"\nSelfFlowPolicy.step latency (tiny, 4 denoising steps, CPU): "
          f"inference steps {latencies[0]:.1f}/{latencies[2]:.1f}/{latencies[4]:.1f} ms, "
          f"cached steps {latencies[1]:.1f}/{latencies[3]:.1f}/{latencies[5]:.1f} ms")


def test_new_chunk_every_execute_horizon_steps(tiny_ckpt):
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=2, execute_horizon=3)
    calls = []
    original = policy.predict_tokens

    def counting(*args, **kwargs):
        calls.append(len(calls))
        return original(*args, **kwargs)

    policy.predict_tokens = counting
    run_episode(policy, camera_frames(7))
    assert len(calls) == 3  # steps 0, 3, 6


def test_policy_mode_sends_the_context_once_and_only_action_tokens_per_step(tiny_ckpt):
    """Policy mode drops the future frames; with prefix attention (the presets) the context goes through the
    model once per chunk (`encode_prefix`) and each denoising step runs the action tokens against its cache."""
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=3)
    assert policy.model_cfg.attention == "prefix"
    seen, prefixes = [], []
    forward, encode_prefix = policy.model.forward, policy.model.encode_prefix

    def spy(x, tau, text, **kw):
        seen.append({g: tuple(v.shape) for g, v in x.items()})
        return forward(x, tau, text, **kw)

    def spy_prefix(context, text, **kw):
        prefixes.append(tuple(context.shape))
        return encode_prefix(context, text, **kw)

    policy.model.forward, policy.model.encode_prefix = spy, spy_prefix
    policy.reset(TASK)
    policy.step(camera_frames(1)[0])
    cfg = policy.model_cfg
    assert prefixes == [(1, cfg.context_frames * cfg.tokens_per_frame, cfg.frame_token_dim)]
    assert len(seen) == 3  # one forward per denoising step, over the action tokens only
    assert all(s == {ACTIONS: (1, cfg.horizon, cfg.action_dim)} for s in seen)


def test_history_repeats_the_first_frame_at_reset_and_then_slides(tiny_ckpt):
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=1, execute_horizon=1)
    frames = camera_frames(3)
    policy.reset(TASK)
    policy.step(frames[0])
    hist = list(policy.session.history)
    assert len(hist) == policy.k == 2 and np.array_equal(hist[0], hist[1])
    policy.step(frames[1])
    hist = list(policy.session.history)
    assert not np.array_equal(hist[0], hist[1])
    assert hist[0].shape == (*policy.image_size, 3)


def test_actions_are_unnormalised_with_the_checkpoint_statistics(tiny_ckpt):
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=3)
    policy.reset(TASK)
    out = policy.infer({"image": camera_frames(1)[0]})
    assert out["actions"].shape == (policy.horizon, 7) and out["actions"].dtype == np.float32
    assert out["action_tokens"].shape == (policy.horizon, 8)
    assert out["terminate"].shape == (policy.horizon,)
    assert out["timing"]["infer_ms"] > 0
    expected, term = ActionNormalizer(load_statistics(tiny_ckpt)).unnormalize(out["action_tokens"])
    np.testing.assert_allclose(out["actions"], expected, rtol=1e-6)
    np.testing.assert_array_equal(out["terminate"], term)
    meta = policy.metadata
    assert meta["chunk_length"] == policy.horizon and len(meta["action_q01"]) == 7


def test_moved_checkpoint_gives_the_same_actions(tiny_ckpt, tmp_path):
    frames = camera_frames(5)
    before = run_episode(SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=3, execute_horizon=2), frames)
    moved = tmp_path / "elsewhere" / "my_policy"
    shutil.copytree(tiny_ckpt, moved)
    after = run_episode(SelfFlowPolicy.from_pretrained(moved, steps=3, execute_horizon=2), frames)
    for (_, a1), (_, a2) in zip(before, after):
        for key in a1:
            np.testing.assert_array_equal(a1[key], a2[key])
    # ... and a second episode of the same policy repeats the first (noise reseeded at reset)
    policy = SelfFlowPolicy.from_pretrained(moved, steps=3, execute_horizon=2)
    first, second = run_episode(policy, frames), run_episode(policy, frames)
    assert all(np.array_equal(a[1]["world_vector"], b[1]["world_vector"]) for a, b in zip(first, second))


def test_infer_batch_matches_single_sessions(tiny_ckpt):
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=3)
    frames = camera_frames(2)
    a, b = policy.new_session(), policy.new_session()
    policy.reset_session(a, TASK)
    policy.reset_session(b, "pick coke can")
    batched = policy.infer_batch([(a, {"image": frames[0]}), (b, {"image": frames[1]})])
    a2, b2 = policy.new_session(), policy.new_session()
    policy.reset_session(a2, TASK)
    policy.reset_session(b2, "pick coke can")
    single_a = policy.infer_batch([(a2, {"image": frames[0]})])[0]
    single_b = policy.infer_batch([(b2, {"image": frames[1]})])[0]
    np.testing.assert_allclose(batched[0]["action_tokens"], single_a["action_tokens"], atol=1e-5)
    np.testing.assert_allclose(batched[1]["action_tokens"], single_b["action_tokens"], atol=1e-5)
    assert batched[0]["timing"]["batch_size"] == 2


def test_infer_with_a_frame_stack_replaces_the_history(tiny_ckpt):
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=2)
    frames = np.stack(camera_frames(3))
    out = policy.infer({"image": frames, "instruction": TASK})
    assert out["actions"].shape == (4, 7)
    hist = list(policy.session.history)
    assert len(hist) == 2 and not np.array_equal(hist[0], hist[1])


def test_unknown_instruction_is_a_user_error_unless_an_encoder_is_given(tiny_ckpt):
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=2)
    with pytest.raises(UserError, match="open top drawer"):
        policy.reset("open the top drawer please")
    with_encoder = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=2, text_encoder=HashingTextEncoder())
    with_encoder.reset("open the top drawer please")
    np.testing.assert_array_equal(with_encoder.session.text, with_encoder.language.table.get(TASK))
    _, action = with_encoder.step(camera_frames(1)[0])
    check_simpler_action(action)


def test_ensembling_sde_and_bad_options(tiny_ckpt):
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=2, sampler="sde", execute_horizon=1, ensemble=True,
                                            ensemble_temp=0.1)
    for _, action in run_episode(policy, camera_frames(5)):
        check_simpler_action(action)
    with pytest.raises(ConfigError, match="unknown SelfFlowPolicy option"):
        SelfFlowPolicy.from_pretrained(tiny_ckpt, denoise_steps=3)
    with pytest.raises(ConfigError, match="sampler"):
        SelfFlowPolicy.from_pretrained(tiny_ckpt, sampler="heun")
    with pytest.raises(ConfigError, match="no instruction"):
        SelfFlowPolicy.from_pretrained(tiny_ckpt).step(camera_frames(1)[0])


def test_visualize_epoch_writes_a_plot(tiny_ckpt, tmp_path):
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=1)
    frames = camera_frames(3)
    raws = [raw for raw, _ in run_episode(policy, frames)]
    out = tmp_path / "episode.png"
    policy.visualize_epoch(raws, frames, out)
    assert out.stat().st_size > 1000


def test_with_options_shares_weights_and_has_its_own_episode_state(tiny_ckpt):
    policy = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=2)
    other = policy.with_options(steps=1, execute_horizon=1)
    assert other.model is policy.model and other.config.steps == 1 and policy.config.steps == 2
    policy.reset(TASK)
    other.reset("pick coke can")
    policy._push_frames(camera_frames(1)[0])
    assert len(policy.history) == 2 and len(other.history) == 0
    assert policy.task_description == TASK and other.task_description == "pick coke can"
    assert not np.array_equal(policy.text, other.text)


def test_bf16_precision_runs_and_strided_checkpoints_are_refused(tiny_ckpt, write_tiny_ckpt, tmp_path):
    fp32 = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=2, precision="fp32", device="cpu")
    bf16 = SelfFlowPolicy.from_pretrained(tiny_ckpt, steps=2, precision="bf16", device="cpu")
    frame = camera_frames(1)[0]
    a = fp32.infer({"image": frame, "instruction": TASK})["action_tokens"]
    b = bf16.infer({"image": frame, "instruction": TASK})["action_tokens"]
    assert np.isfinite(b).all() and np.abs(a - b).max() < 0.2  # same model, bf16 rounding only
    assert SelfFlowPolicy.from_pretrained(tiny_ckpt).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    strided = write_tiny_ckpt(tmp_path / "strided", data={"window": {"frame_stride": 2}})
    with pytest.raises(ConfigError, match="frame_stride=2"):
        SelfFlowPolicy.from_pretrained(strided)


def test_state_conditioned_checkpoint_needs_and_uses_the_robot_state(write_tiny_ckpt, tmp_path):
    ckpt = write_tiny_ckpt(tmp_path / "state_run", state_dim=8)
    policy = SelfFlowPolicy.from_pretrained(ckpt, steps=2)
    assert policy.metadata["state_dim"] == 8
    frame = camera_frames(1)[0]
    policy.reset(TASK)
    with pytest.raises(ConfigError, match="send `state`"):
        policy.step(frame)
    with pytest.raises(ConfigError, match="8 finite floats"):
        policy.step(frame, state=np.zeros(7))
    home = np.array([0.45, -0.2, 0.9, -0.604, 0.780, -0.032, 0.160, 0.0], np.float32)
    low = home + np.array([0, 0, -0.3, 0, 0, 0, 0, 1.0], np.float32)
    chunks = []
    for state in (home, low, home):
        policy.reset(TASK)
        chunks.append(policy.infer({"image": frame, "state": state})["actions"])
    assert not np.allclose(chunks[0], chunks[1], atol=1e-5)          # the state changes the actions
    np.testing.assert_array_equal(chunks[0], chunks[2])             # and only the state did
    policy.reset(TASK)
    flipped = home.copy()
    flipped[3:7] *= -1                                               # the same rotation
    np.testing.assert_allclose(policy.infer({"image": frame, "state": flipped})["actions"], chunks[0], atol=1e-5)
    plain = SelfFlowPolicy.from_pretrained(write_tiny_ckpt(tmp_path / "plain_run"), steps=2)
    plain.reset(TASK)
    with pytest.raises(ConfigError, match="takes no robot state"):
        plain.step(frame, state=home)
    image_only = policy.with_options(use_state=False)                # the learned null state, no state needed
    assert image_only.metadata["state_dim"] == 0
    image_only.reset(TASK)
    null_chunk = image_only.infer({"image": frame})["actions"]
    assert np.isfinite(null_chunk).all() and not np.allclose(null_chunk, chunks[0], atol=1e-5)
    with pytest.raises(ConfigError, match=r"takes no robot state \(use_state=false\)"):
        image_only.step(frame, state=home)
    guided = policy.with_options(state_scale=2.0)                   # guidance on the state (two forwards)
    guided.reset(TASK)
    assert not np.allclose(guided.infer({"image": frame, "state": home})["actions"], chunks[0], atol=1e-5)
    with pytest.raises(ConfigError, match="state_scale=2.0 guides on the robot state.*use_state=false"):
        policy.with_options(use_state=False, state_scale=2.0)
