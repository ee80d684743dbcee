"""mp4/gif writer: files decode back to the composed frames' size and count, panels carry the frames."""
import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from selfflow_robot.world_model.video import compose_panels, write_comparison, write_video


def _frames(t, h, w, colour):
    f = np.zeros((t, h, w, 3), np.uint8)
    f[..., :] = colour
    return f


def test_compose_places_panels_side_by_side_and_upscales():
    pred, truth = _frames(3, 16, 20, (255, 0, 0)), _frames(3, 16, 20, (0, 255, 0))
    out = compose_panels([pred, truth], ["prediction", "ground truth"], min_height=64)
    assert out.shape[0] == 3 and out.dtype == np.uint8
    scale = 4  # ceil(64 / 16)
    mid_row = 18 + 16 * scale // 2  # below the label strip
    left = out[0, mid_row, 4 + 10 * scale]
    right = out[0, mid_row, 4 + 20 * scale + 4 + 10 * scale]
    assert tuple(left) == (255, 0, 0) and tuple(right) == (0, 255, 0)
    assert out[0, :18].std() > 0  # label text drawn
    with pytest.raises(ValueError, match="labels"):
        compose_panels([pred], ["a", "b"])


def test_write_comparison_writes_readable_mp4_and_gif(tmp_path):
    rng = np.random.default_rng(0)
    pred = rng.random((5, 24, 30, 3))          # float in [0, 1]
    truth = rng.integers(0, 255, (5, 24, 30, 3), dtype=np.uint8)
    ctx = rng.integers(0, 255, (2, 24, 30, 3), dtype=np.uint8)
    paths = write_comparison(tmp_path / "sub" / "rollout", pred, truth, context=ctx, fps=4)
    assert paths["mp4"].name == "rollout.mp4" and paths["gif"].name == "rollout.gif"
    reader = imageio.get_reader(paths["mp4"])
    n = sum(1 for _ in reader)
    assert n == 7  # 2 context + 5 predicted
    gif = Image.open(paths["gif"])
    assert gif.n_frames == 7
    assert not list((tmp_path / "sub").glob(".*"))  # no temp files left behind


def test_write_video_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="mp4 or .gif"):
        write_video(tmp_path / "x.avi", np.zeros((1, 8, 8, 3), np.uint8))
