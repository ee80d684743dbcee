"""Windows: indices, padding, stride aggregation, resize, and frames that match the episode."""
from __future__ import annotations

import numpy as np
import pytest

from selfflow_robot import constants as C
from selfflow_robot.data import schema
from selfflow_robot.data.frames import decode_frame
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.windows import WindowConfig, episode_windows, window_actions
from selfflow_robot.errors import ConfigError, DataError


def test_config_keeps_aspect_and_validates():
    assert WindowConfig().image_size == (256, 320)
    assert WindowConfig(height=64).image_size == (64, 80)
    assert WindowConfig(height=64, width=64).image_size == (64, 64)
    with pytest.raises(ConfigError, match="horizon"):
        WindowConfig(horizon=0)


def test_anchors_and_indices():
    cfg = WindowConfig(context_frames=3, horizon=2, frame_stride=2)
    assert cfg.anchors(7) == [0, 1, 2, 3, 4, 5]
    assert WindowConfig(horizon=2, frame_stride=2, pad_end=False).anchors(7) == [0, 1, 2]
    assert WindowConfig(anchor_stride=2).anchors(7) == [0, 2, 4]
    ctx, fut, pad = cfg.frame_indices(1, 7)
    assert ctx.tolist() == [0, 0, 1] and fut.tolist() == [3, 5] and pad.tolist() == [False, False]
    ctx, fut, pad = cfg.frame_indices(4, 7)
    assert ctx.tolist() == [0, 2, 4] and fut.tolist() == [6, 6] and pad.tolist() == [False, True]


def test_window_actions_padding_and_stride():
    T = 5
    a = np.arange(T * 7, dtype=np.float32).reshape(T, 7)
    a[:, 6] = [0, 1, 0, -1, 0]
    term = np.array([0, 0, 0, 0, 1], np.float32)
    act, tm, pad = window_actions(a, term, 3, WindowConfig(horizon=3))
    np.testing.assert_array_equal(act[:2], a[3:5])
    assert act[2].tolist() == [0.0] * 7 and tm.tolist() == [0, 1, 1] and pad.tolist() == [False, False, True]
    act, tm, pad = window_actions(a, term, 0, WindowConfig(horizon=3, frame_stride=2))
    np.testing.assert_allclose(act[0, :6], a[0:2, :6].sum(0))
    np.testing.assert_allclose(act[1, :6], a[2:4, :6].sum(0))
    np.testing.assert_allclose(act[2, :6], a[4, :6])
    assert act[:, 6].tolist() == [1.0, -1.0, 0.0] and tm.tolist() == [0, 0, 1] and not pad.any()


def test_episode_windows_match_episode(synth_dir):
    ep = RLDSReader(synth_dir).read(4)
    T = len(ep)
    cfg = WindowConfig(context_frames=2, horizon=3, height=64)
    wins = episode_windows(ep, cfg)
    assert len(wins) == T - 1
    full = [decode_frame(b, (64, 80)) for b in ep.images]
    for w in wins:
        c = int(w[C.STEP_INDEX])
        assert w[C.CONTEXT_FRAMES].shape == (2, 64, 80, 3) and w[C.CONTEXT_FRAMES].dtype == np.uint8
        assert w[C.FUTURE_FRAMES].shape == (3, 64, 80, 3)
        np.testing.assert_array_equal(w[C.CONTEXT_FRAMES][-1], full[c])
        np.testing.assert_array_equal(w[C.CONTEXT_FRAMES][0], full[max(c - 1, 0)])
        for j in range(3):
            np.testing.assert_array_equal(w[C.FUTURE_FRAMES][j], full[min(c + 1 + j, T - 1)])
            assert bool(w[C.FRAME_PAD][j]) == (c + 1 + j > T - 1)
            assert bool(w[C.ACTION_PAD][j]) == (c + j > T - 1)
        real = ~w[C.ACTION_PAD]
        np.testing.assert_array_equal(w[C.ACTIONS_RAW][real], ep.actions()[c:c + 3])
        assert w[C.INSTRUCTION] == ep.instruction and int(w[C.EPISODE_ID]) == 4
        assert w[C.LANGUAGE_EMBEDDING].shape == (C.TEXT_DIM,)


def test_synthetic_frames_follow_actions(synth_dir):
    """The object's image motion follows world_vector (what the world model must learn)."""
    ep = RLDSReader(synth_dir).read(0)
    frames = [decode_frame(b) for b in ep.images]
    colour = np.array([220, 30, 30]) if ep.instruction == "pick coke can" else None
    if colour is None:  # find the object colour: the most saturated pixels of the first frame
        f = frames[0].astype(int)
        sat = f.max(-1) - f.min(-1)
        colour = f.reshape(-1, 3)[sat.argmax()]
    centres = []
    for f in frames:
        m = (np.abs(f.astype(int) - colour).sum(-1) < 60)
        ys, xs = np.nonzero(m)
        centres.append((ys.mean(), xs.mean()))
    d = np.diff(np.array(centres), axis=0)          # (T-1, 2) row/col motion
    wv = ep.steps["action/world_vector"][:-1]
    # forward (x) moves up (row decreases), left (y) moves left (col decreases)
    assert np.corrcoef(-wv[:, 0], d[:, 0])[0, 1] > 0.8
    assert np.corrcoef(-wv[:, 1], d[:, 1])[0, 1] > 0.8


def test_windows_carry_the_state_at_the_anchor(synth_dir):
    ep = RLDSReader(synth_dir).read(0)
    state = ep.state()
    raw = np.concatenate([ep.steps[k] for k in schema.STATE_KEYS], axis=1)
    np.testing.assert_array_equal(state, schema.canonical_state(raw))
    assert np.all(state[:, schema.QUAT] @ schema.HOME_TOOL_QUAT >= 0)
    cfg = WindowConfig(context_frames=2, horizon=3, height=32, state=True)
    for w in episode_windows(ep, cfg):
        np.testing.assert_array_equal(w[C.STATE], state[int(w[C.STEP_INDEX])])
    assert C.STATE not in episode_windows(ep, WindowConfig(height=32))[0]
    del ep.steps[schema.GRIPPER_CLOSED]
    with pytest.raises(DataError, match="gripper_closed.*model.state_dim"):
        episode_windows(ep, cfg)
