"""WorldModel.rollout: chunking, autoregressive context, padding of the last chunk, determinism."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_checkpoint import write_tiny_checkpoint

from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE
from selfflow_robot.model.autoencoder import AutoencoderConfig, FrameAutoencoder
from selfflow_robot.world_model.rollout import RESIDUAL_GATE, WorldModel


@pytest.fixture(scope="module")
def wm(wm_ckpt) -> WorldModel:
    return WorldModel.from_pretrained(wm_ckpt, steps=2)


def _inputs(t: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ctx = rng.integers(0, 255, (2, 64, 80, 3), dtype=np.uint8)
    acts = rng.normal(0, 0.05, (t, 7)).astype(np.float32)
    return ctx, acts


def test_rollout_runs_chunk_by_chunk_feeding_predictions_back(wm):
    calls, contexts = [], []
    forward, encode_prefix = wm.model.forward, wm.model.encode_prefix

    def spy(x, tau, text, **kw):
        calls.append({g: v.clone() for g, v in x.items()} | {"tau": {g: v.clone() for g, v in tau.items()}})
        return forward(x, tau, text, **kw)

    def spy_prefix(context, text, **kw):   # prefix attention: the context goes in once per chunk
        contexts.append(context.clone())
        return encode_prefix(context, text, **kw)

    wm.model.forward, wm.model.encode_prefix = spy, spy_prefix
    try:
        ctx, acts = _inputs(6)  # H=4: two chunks, the second padded from 2 to 4 actions
        pred = wm.rollout(ctx, acts, instruction="open top drawer")
    finally:
        wm.model.forward, wm.model.encode_prefix = forward, encode_prefix
    assert pred.shape == (6, 64, 80, 3) and pred.dtype == np.float32
    assert 0.0 <= pred.min() and pred.max() <= 1.0
    assert len(calls) == 2 * wm.steps and len(contexts) == 2
    first, second = calls[0] | {CONTEXT: contexts[0]}, calls[wm.steps] | {CONTEXT: contexts[1]}
    assert set(calls[0]) - {"tau"} == {FUTURE, ACTIONS}
    assert float(first["tau"][ACTIONS].max()) == 0.0 and float(first["tau"][FUTURE].min()) == 1.0
    # chunk 1's context is the given frames; chunk 2's context is chunk 1's last k predicted frames
    np.testing.assert_allclose(first[CONTEXT], wm.codec.encode(torch.as_tensor(ctx[None]).float() / 255), atol=1e-5)
    full = wm.rollout(ctx, np.concatenate([acts, np.zeros((2, 7), np.float32)]), instruction="open top drawer")
    np.testing.assert_allclose(pred[:4], full[:4], atol=1e-5)  # same noise, same first chunk
    np.testing.assert_allclose(second[CONTEXT], wm.codec.encode(torch.as_tensor(pred[None, 2:4])), atol=1e-5)
    # the padded actions of the last chunk are "episode over": terminate token +1 from step 7 on
    assert second[ACTIONS][0, 2:, 7].tolist() == [1.0, 1.0] and second[ACTIONS][0, :2, 7].tolist() == [-1.0, -1.0]


def test_rollout_is_deterministic_batched_and_pads_short_context(wm):
    ctx, acts = _inputs(3)
    a = wm.rollout(ctx, acts, instruction="open top drawer")
    b = wm.rollout(ctx, acts, instruction="open top drawer")
    np.testing.assert_array_equal(a, b)
    batch = wm.rollout(np.stack([ctx, ctx]), np.stack([acts, acts]), instruction="open top drawer")
    assert batch.shape == (2, 3, 64, 80, 3)
    one = wm.rollout(ctx[-1:], acts, instruction="open top drawer")          # 1 frame -> repeated to k=2
    two = wm.rollout(np.stack([ctx[-1], ctx[-1]]), acts, instruction="open top drawer")
    np.testing.assert_array_equal(one, two)
    big = np.repeat(np.repeat(ctx, 4, axis=1), 4, axis=2)                    # 256x320 frames are resized
    assert wm.rollout(big, acts, instruction="open top drawer").shape == (3, 64, 80, 3)


def test_rollout_checks_shapes(wm):
    ctx, acts = _inputs(3)
    with pytest.raises(ValueError, match="actions"):
        wm.rollout(ctx, acts[:, :6])
    with pytest.raises(ValueError, match="context"):
        wm.rollout(ctx[0], acts)


@pytest.mark.parametrize("delta_scale", [0.0, 4.0])
def test_a_delta_world_model_that_predicts_no_change_imagines_the_last_frame(tmp_path, delta_scale):
    """model.future_delta_scale > 0: the model generates the change from the last context frame, so a frame head
    that predicts nothing (x-prediction, zeroed) imagines copy-last-frame in every chunk; without it, the same
    head imagines the codec's zero (mid-grey pixels)."""
    step = write_tiny_checkpoint(tmp_path / "run", prediction="x", future_delta_scale=delta_scale)
    wm = WorldModel.from_pretrained(step, steps=3)
    with torch.no_grad():
        wm.model.final_layer.linear.weight.zero_()
        wm.model.final_layer.linear.bias.zero_()
    ctx, acts = _inputs(6)
    pred = wm.rollout(ctx, acts, instruction="open top drawer")
    expected = ctx[-1] / 255.0 if delta_scale else np.full_like(pred[0], 0.5)
    for frame in pred:
        np.testing.assert_allclose(frame, expected, atol=1e-5)


@pytest.fixture(scope="module")
def lossy_ckpt(tmp_path_factory) -> Path:
    """A tiny checkpoint whose codec is a (randomly initialised, so lossy) frame autoencoder."""
    root = tmp_path_factory.mktemp("lossy")
    torch.manual_seed(0)
    FrameAutoencoder(AutoencoderConfig(image_size=(64, 80), latent_channels=4, downsample=8, width=8)).save(root / "ae")
    return write_tiny_checkpoint(root / "run", prediction="x", future_delta_scale=4.0, codec="ae",
                                 vae=str(root / "ae"), latent_channels=4, vae_downsample=8, patch_size=1)


def test_residual_decoding_adds_the_imagined_change_to_the_real_last_frame(lossy_ckpt):
    """decode="direct" shows D(z); "residual" adds the codec's error on the last context frame, last - D(E(last)),
    in full where D(z) equals D(E(last)), not at all where it changed by RESIDUAL_GATE or more. A model that imagines
    no change (a delta model with a zeroed head) then shows the camera's last frame, not the codec's copy of it."""
    ctx, acts = _inputs(3)
    direct = WorldModel.from_pretrained(lossy_ckpt, steps=2, decode="direct")
    residual = WorldModel.from_pretrained(lossy_ckpt, steps=2, decode="residual")
    codec = direct.codec
    last = torch.as_tensor(ctx[None, -1:]).float() / 255
    recon = codec.decode(codec.encode(last), 1)[0, 0].numpy()
    assert np.abs(recon - last[0, 0].numpy()).mean() > 0.05  # the codec is lossy: the test can tell them apart
    d = direct.rollout(ctx, acts, instruction="open top drawer")
    r = residual.rollout(ctx, acts, instruction="open top drawer")
    unclamped = (r > 0) & (r < 1) & (d > 0) & (d < 1)
    change = np.abs(d - recon).max(-1, keepdims=True)
    weight = np.clip(1 - change / RESIDUAL_GATE, 0, 1)
    assert (weight == 0).any() and ((weight > 0) & (weight < 1)).mean() > 0.5   # gated and partly kept
    expected = d + weight * (last[0, 0].numpy() - recon)
    np.testing.assert_allclose(r[unclamped], expected[unclamped], atol=1e-4)
    for wm in (direct, residual):
        with torch.no_grad():
            wm.model.final_layer.linear.weight.zero_()
            wm.model.final_layer.linear.bias.zero_()
    for frame in residual.rollout(ctx, _inputs(6)[1], instruction="open top drawer"):  # both chunks
        np.testing.assert_allclose(frame, ctx[-1] / 255.0, atol=1e-4)
    for frame in direct.rollout(ctx, acts, instruction="open top drawer"):
        np.testing.assert_allclose(frame, np.clip(recon, 0, 1), atol=1e-4)
    with pytest.raises(ValueError, match="decode"):
        WorldModel.from_pretrained(lossy_ckpt, decode="sharp")


@pytest.fixture(scope="module")
def state_wm(tmp_path_factory) -> WorldModel:
    """A world model trained with the robot's state (`train.world_model_state=true`)."""
    run = tmp_path_factory.mktemp("wm_state") / "run"
    return WorldModel.from_pretrained(write_tiny_checkpoint(run, state_dim=8, train={"world_model_state": True}),
                                      steps=1)


def test_a_world_model_trained_with_the_state_is_given_it_at_each_chunks_start(state_wm, wm, tmp_path):
    assert state_wm.takes_state and not wm.takes_state
    policy_only = write_tiny_checkpoint(tmp_path / "policy_state", state_dim=8)   # the state went to the policy only
    assert not WorldModel.from_pretrained(policy_only).takes_state
    ctx, acts = _inputs(6)                                   # H=4: two chunks, given the states at frames 0 and 4
    states = np.random.default_rng(3).normal(0, 0.2, (7, 8)).astype(np.float32)
    a = state_wm.rollout(ctx, acts, states=states)
    between = states.copy()
    between[[1, 2, 3, 5, 6]] += 1.0                          # states between the chunks' starts are not read
    np.testing.assert_array_equal(a, state_wm.rollout(ctx, acts, states=between))
    moved = states.copy()
    moved[4] += 1.0                                          # the second chunk's state changes only its frames
    b = state_wm.rollout(ctx, acts, states=moved)
    np.testing.assert_array_equal(a[:4], b[:4])
    assert not np.allclose(a[4:], b[4:], atol=1e-4)
    assert not np.allclose(a[:4], state_wm.rollout(ctx, acts)[:4], atol=1e-4)   # the learned null state differs
    seen = []

    def reader(frames):                                      # reads "the state" off each chunk's newest frame
        seen.append(frames.copy())
        return np.repeat(states[[0 if len(seen) == 1 else 4]], len(frames), axis=0)

    np.testing.assert_allclose(state_wm.rollout(ctx, acts, state_reader=reader), a, atol=1e-6)
    assert len(seen) == 2 and seen[0].dtype == np.uint8
    np.testing.assert_array_equal(seen[0][0], ctx[-1])                              # the real last frame
    np.testing.assert_array_equal(seen[1][0], (np.clip(a[3], 0, 1) * 255 + 0.5).astype(np.uint8))  # imagined
    with pytest.raises(ValueError, match="trained without the robot state"):
        wm.rollout(ctx, acts, states=states)
    with pytest.raises(ValueError, match=r"T' >= 5"):
        state_wm.rollout(ctx, acts, states=states[:4])
    with pytest.raises(ValueError, match="not both"):
        state_wm.rollout(ctx, acts, states=states, state_reader=reader)
