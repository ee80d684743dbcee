"""Transform chain pieces: mirrored groups, resize, embedding, unnormalise, SimplerEnv action + schema check."""
import subprocess
import sys

import numpy as np
import pytest

from selfflow_robot.data import transforms as T


def test_group_push_mirrors_the_chains():
    log = []

    def mark(name):
        def f(d):
            log.append(name)
            return d
        return f

    g = T.Group(inputs=[mark("in1")], outputs=[mark("out1")]).push(inputs=[mark("in2")], outputs=[mark("out2")])
    T.Compose(g.inputs)({})
    T.Compose(g.outputs)({})
    assert log == ["in1", "in2", "out2", "out1"]


def test_resize_images_only_when_needed_and_checks_dtype():
    calls = []

    def resize(frames, size):
        calls.append(frames.shape)
        return np.zeros((frames.shape[0], *size, 3), np.uint8)

    t = T.ResizeImages(4, 6, resize)
    out = t({T.IMAGE: np.zeros((8, 10, 3), np.uint8), "other": 1})
    assert out[T.IMAGE].shape == (1, 4, 6, 3) and out["other"] == 1 and calls == [(1, 8, 10, 3)]
    t({T.IMAGE: np.zeros((2, 4, 6, 3), np.uint8)})
    assert len(calls) == 1  # already the right size
    with pytest.raises(ValueError, match="uint8"):
        t({T.IMAGE: np.zeros((8, 10, 3), np.float32)})


def test_embed_and_unnormalize():
    emb = T.EmbedInstruction(lambda s: np.full(512, len(s)))
    out = emb({T.INSTRUCTION: "abc"})
    assert out[T.TEXT].dtype == np.float32 and out[T.TEXT][0] == 3
    un = T.UnnormalizeActions(lambda tok: (tok[:, :7] * 2, (tok[:, 7] > 0).astype(np.float32)))
    tok = np.ones((4, 8), np.float32)
    tok[1, 7] = -1
    res = un({T.ACTION_TOKENS: tok})
    assert res[T.ACTIONS].shape == (4, 7) and res[T.ACTIONS][0, 0] == 2
    assert res[T.TERMINATE_KEY].tolist() == [1, 0, 1, 1]


def test_simpler_action_conversion_and_schema():
    a = np.array([0.1, -0.2, 0.3, 0.0, 0.5, -0.1, 0.005])
    raw, action = T.SimplerAction(action_scale=2.0)(a, terminate=0.0)
    T.check_simpler_action(action)
    np.testing.assert_allclose(action["world_vector"], [0.2, -0.4, 0.6])
    np.testing.assert_allclose(action["rot_axangle"], [0.0, 1.0, -0.2])  # axis * angle, scaled
    assert action["gripper"].tolist() == [0.0]  # |g| < 0.01 filtered, as RT-1's wrapper does
    assert set(raw) == {"world_vector", "rotation_delta", "gripper_closedness_action", "terminate_episode"}
    _, action = T.SimplerAction()(np.r_[a[:6], 0.8], terminate=1.0)
    assert action["gripper"].tolist() == [0.8] and action["terminate_episode"].tolist() == [1.0]


@pytest.mark.parametrize("bad", [
    dict(world_vector=np.zeros(2)),
    dict(gripper=np.zeros(1, np.int64)),
    dict(rot_axangle=np.array([np.nan, 0, 0])),
    dict(terminate_episode=np.array([0.5])),
    dict(extra=np.zeros(1)),
])
def test_schema_check_rejects(bad):
    good = {"world_vector": np.zeros(3), "rot_axangle": np.zeros(3), "gripper": np.zeros(1),
            "terminate_episode": np.zeros(1)}
    with pytest.raises(ValueError):
        T.check_simpler_action({**good, **bad})


def test_pad_to_aspect_and_resize_like_training():
    frame = np.full((10, 10, 3), 200, np.uint8)
    padded = T.pad_to_aspect(frame, 1.25)
    assert padded.shape == (10, 12, 3) and padded[:, 0].max() == 0 and padded[:, 1:11].min() == 200
    assert T.pad_to_aspect(np.zeros((8, 20, 3), np.uint8), 1.25).shape == (16, 20, 3)
    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (2, 512, 640, 3), dtype=np.uint8)
    big[:] = np.clip(big.astype(int) // 8 * 8, 0, 255)  # keep JPEG error moderate
    small = T.resize_like_training(big, (64, 80))
    assert small.shape == (2, 64, 80, 3) and small.dtype == np.uint8
    # Same aspect, so no padding: mean brightness is preserved by the resample.
    assert abs(float(small.mean()) - float(big.mean())) < 3.0


def test_package_exports_are_lazy_so_the_client_needs_no_torch():
    code = ("import sys; import selfflow_robot.policies as p; assert 'torch' not in sys.modules; "
            "p.SelfFlowPolicy; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
