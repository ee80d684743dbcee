"""`data convert` on damaged or unusual sources: decoded when unambiguous, else one message naming the file and
episode, and skipped with `skip_bad_episodes=true` (issue 22, items 10-12). Every source is written here."""
from __future__ import annotations

import io
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from selfflow_robot.cli import main
from selfflow_robot.data.convert import ConvertConfig, convert
from selfflow_robot.data.frames import decode_frame
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.errors import DataError

H, W = 32, 40


def _actions(T: int, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).uniform(-0.05, 0.05, (T, 7))
    a[:, 6] = 0.0
    return a


def _folder_episode(root: Path, name: str, T: int = 3, level: int = 100, **npz) -> Path:
    """root/name/ with T png frames (flat grey `level`) and episode.npz holding `npz` (actions by default)."""
    ep = root / name
    ep.mkdir(parents=True)
    for t in range(T):
        Image.fromarray(np.full((H, W, 3), level, np.uint8)).save(ep / f"{t}.png")
    np.savez(ep / "episode.npz", **{"actions": _actions(T), **npz})
    return ep


def _convert(src: Path, out: Path, fmt: str = "folder", **kw):
    return convert(ConvertConfig(format=fmt, input=str(src), output_dir=str(out), **kw), progress=False)


# ------------------------------------------------------------------ item 10: instructions stored as bytes / arrays


@pytest.mark.parametrize("stored", [b"pick the cube", np.bytes_(b"pick the cube"), np.array("pick the cube"),
                                    np.array(["pick the cube"]), np.array([b"pick the cube"]),
                                    np.array([["pick the cube"]]), "pick the cube"],
                         ids=["bytes", "np.bytes_", "0d-str", "1-str", "1-bytes", "1x1-str", "str"])
def test_npz_instruction_forms_decode_to_the_text(tmp_path, stored):
    _folder_episode(tmp_path / "eps", "ep_0", instruction=stored)
    _convert(tmp_path / "eps", tmp_path / "out")
    assert [e.instruction for e in RLDSReader(tmp_path / "out")] == ["pick the cube"]


def test_json_instruction_list_of_one_decodes(tmp_path):
    ep = tmp_path / "eps" / "ep_0"
    ep.mkdir(parents=True)
    for t in range(3):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(ep / f"{t}.png")
    (ep / "episode.json").write_text(json.dumps({"actions": _actions(3).tolist(), "instruction": ["open it"]}))
    _convert(tmp_path / "eps", tmp_path / "out")
    assert RLDSReader(tmp_path / "out").read(0).instruction == "open it"


@pytest.mark.parametrize("stored,why", [(np.array(["pick", "place"]), r"\(2,\) <U5 array"),
                                        (np.array(3.0), r"\(\) float64 array"),
                                        (b"pick \xff\xfe cube", "not UTF-8")])
def test_ambiguous_instruction_is_refused_naming_file_and_episode(tmp_path, stored, why):
    ep = _folder_episode(tmp_path / "eps", "ep_7", instruction=stored)
    with pytest.raises(DataError, match=why) as ei:
        _convert(tmp_path / "eps", tmp_path / "out")
    assert str(ep / "episode.npz") in str(ei.value) and "instruction" in str(ei.value)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ item 11: skip what the source reader rejects


def test_folder_skip_bad_episodes_skips_every_reader_rejection(tmp_path, capsys):
    src = tmp_path / "eps"
    _folder_episode(src, "ep_0", instruction="good one")
    no_actions = _folder_episode(src, "ep_1")
    (no_actions / "episode.npz").unlink()                                    # missing actions file
    mismatch = _folder_episode(src, "ep_2", T=4)                             # 4 frames, 3 actions
    np.savez(mismatch / "episode.npz", actions=_actions(3))
    bad_json = _folder_episode(src, "ep_3")
    (bad_json / "episode.npz").unlink()
    (bad_json / "episode.json").write_text('{"actions": [[0, 0, 0, 0, 0, 0, 0]')  # truncated JSON
    empty_mp4 = src / "ep_4"
    empty_mp4.mkdir()
    (empty_mp4 / "video.mp4").write_bytes(b"")                               # 0-byte mp4
    np.savez(empty_mp4 / "episode.npz", actions=_actions(3))
    broken_png = _folder_episode(src, "ep_5")                                # item 12: a broken image frame
    (broken_png / "1.png").write_bytes((broken_png / "1.png").read_bytes()[:40])
    good_video = src / "ep_6"
    good_video.mkdir()
    iio.imwrite(good_video / "video.mp4", np.full((3, H, W, 3), 60, np.uint8), fps=5, codec="libx264")
    np.savez(good_video / "episode.npz", actions=_actions(3), instruction="good two")

    expected = {no_actions: "needs exactly one .npz or .json", mismatch: "4 frames but 3 actions",
                bad_json: "not valid JSON", empty_mp4: "cannot decode the video", broken_png: "1.png"}
    for ep, msg in expected.items():  # without skipping: the first bad episode stops it, named
        only = tmp_path / f"only_{ep.name}"
        only.mkdir()
        ep.rename(only / ep.name)
        with pytest.raises(DataError, match=msg) as ei:
            _convert(only, tmp_path / f"out_{ep.name}")
        assert ep.name in str(ei.value) and "\n" not in str(ei.value)
        (only / ep.name).rename(ep)
    assert main(["data", "convert", "format=folder", f"input={src}", f"output_dir={tmp_path / 'out'}",
                 "skip_bad_episodes=true"]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 episodes" in out and "skipped 5 bad source episode(s)" in out
    assert [e.instruction for e in RLDSReader(tmp_path / "out")] == ["good one", "good two"]


def test_skip_reports_the_count_on_the_cli(tmp_path, capsys):
    src = tmp_path / "eps"
    _folder_episode(src, "ep_0", instruction="fine")
    bad = _folder_episode(src, "ep_1", instruction="fine")
    (bad / "episode.npz").unlink()
    assert main(["data", "convert", "format=folder", f"input={src}", f"output_dir={tmp_path / 'a'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err.startswith("error: ") and "ep_1" in err and "Traceback" not in err
    assert main(["data", "convert", "format=folder", f"input={src}", f"output_dir={tmp_path / 'b'}",
                 "skip_bad_episodes=true"]) == 0
    out = capsys.readouterr().out
    assert "wrote 1 episodes" in out and "skipped 1 bad source episode(s)" in out
    assert len(RLDSReader(tmp_path / "b")) == 1
    # all bad: nothing is written, the message says so
    (src / "ep_0" / "episode.npz").unlink()
    with pytest.raises(DataError, match="all 2 episodes are bad"):
        _convert(src, tmp_path / "c", skip_bad_episodes=True)
    assert not (tmp_path / "c").exists()


def test_hdf5_demo_without_actions_and_broken_files_are_named_and_skipped(tmp_path):
    h5py = pytest.importorskip("h5py")
    src = tmp_path / "h5"
    src.mkdir()
    with h5py.File(src / "a.hdf5", "w") as f:
        for i in range(3):
            g = f.create_group(f"data/demo_{i}")
            if i != 1:
                g["actions"] = _actions(3, i)
            g["obs/agentview_image"] = np.full((3, H, W, 3), 50, np.uint8)
            g.attrs["language_instruction"] = "lift"
    good = (src / "a.hdf5").read_bytes()
    (src / "b.hdf5").write_bytes(good[: len(good) // 2])         # truncated
    (src / "c.hdf5").write_bytes(b"")                            # empty
    (src / "d.hdf5").write_bytes(b"\x00garbage" * 100)           # not HDF5
    with pytest.raises(DataError, match=r"a\.hdf5:data/demo_1: no 'actions' dataset"):
        _convert(src / "a.hdf5", tmp_path / "o1", fmt="hdf5")
    for name in ("b", "c", "d"):
        with pytest.raises(DataError) as ei:
            _convert(src / f"{name}.hdf5", tmp_path / f"o_{name}", fmt="hdf5")
        assert f"{name}.hdf5" in str(ei.value) and "\n" not in str(ei.value), str(ei.value)
    _, n, skipped = _convert(src, tmp_path / "out", fmt="hdf5", skip_bad_episodes=True)
    assert n == 2 and skipped == 4  # demo_1, and the files b, c, d
    assert len(RLDSReader(tmp_path / "out")) == 2


def _lerobot_v21(root: Path, episodes: int, key: str, dtype: str) -> None:
    """A LeRobot v2.1 dataset: `episodes` episodes of 3 frames, camera `key` as mp4 videos or embedded PNGs."""
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    (root / "meta").mkdir(parents=True)
    info = {"codebase_version": "v2.1", "fps": 10, "chunks_size": 1000,
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": {"action": {"dtype": "float32", "shape": [7]}, key: {"dtype": dtype, "shape": [H, W, 3]}}}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    (root / "meta" / "tasks.jsonl").write_text('{"task_index": 0, "task": "wave"}\n')
    (root / "data/chunk-000").mkdir(parents=True)
    png = io.BytesIO()
    Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(png, format="PNG")
    for ep in range(episodes):
        rows = {"action": _actions(3, ep).astype(np.float32).tolist(), "timestamp": [0.0, 0.1, 0.2],
                "frame_index": [0, 1, 2], "episode_index": [ep] * 3, "task_index": [0] * 3}
        if dtype == "image":
            rows[key] = [{"bytes": png.getvalue(), "path": None}] * 3
        else:
            vdir = root / "videos/chunk-000" / key
            vdir.mkdir(parents=True, exist_ok=True)
            iio.imwrite(vdir / f"episode_{ep:06d}.mp4", np.full((3, H, W, 3), 90, np.uint8), fps=10, codec="libx264")
        pq.write_table(pa.table(rows), root / f"data/chunk-000/episode_{ep:06d}.parquet")


def test_lerobot_bad_videos_and_images_are_named_and_skipped(tmp_path):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    key = "observation.images.cam"
    root = tmp_path / "lr"
    _lerobot_v21(root, 4, key, "video")
    (root / f"videos/chunk-000/{key}/episode_000001.mp4").write_bytes(b"")  # 0-byte mp4
    (root / f"videos/chunk-000/{key}/episode_000002.mp4").unlink()          # missing
    with pytest.raises(DataError, match=r"lr episode 1: .*episode_000001\.mp4: cannot decode the video"):
        _convert(root, tmp_path / "o1", fmt="lerobot")
    _, n, skipped = _convert(root, tmp_path / "o2", fmt="lerobot", skip_bad_episodes=True)
    assert (n, skipped) == (2, 2)
    assert [e.instruction for e in RLDSReader(tmp_path / "o2")] == ["wave", "wave"]

    root = tmp_path / "lr_img"
    _lerobot_v21(root, 2, key, "image")
    rows = pq.read_table(root / "data/chunk-000/episode_000001.parquet").to_pydict()
    rows[key][2] = {"bytes": rows[key][2]["bytes"][:30], "path": None}       # a broken PNG in a row
    pq.write_table(pa.table(rows), root / "data/chunk-000/episode_000001.parquet")
    with pytest.raises(DataError, match=r"lr_img episode 1: the 'observation.images.cam' image of frame 2 cannot"):
        _convert(root, tmp_path / "o3", fmt="lerobot")
    assert _convert(root, tmp_path / "o4", fmt="lerobot", skip_bad_episodes=True)[1:] == (1, 1)


# ------------------------------------------------------------------ item 12: hdf5 float / grayscale images, 1e30


@pytest.mark.parametrize("kind", ["float01", "float255", "gray", "gray1"])
def test_hdf5_float_and_grayscale_images_convert(tmp_path, kind):
    h5py = pytest.importorskip("h5py")
    level = np.array([40, 120, 200], np.float64)  # one grey level per frame
    imgs = np.ones((3, H, W, 3)) * level[:, None, None, None]
    data = {"float01": (imgs / 255.0).astype(np.float32), "float255": imgs.astype(np.float32),
            "gray": imgs[..., 0].astype(np.uint8), "gray1": imgs[..., :1].astype(np.uint8)}[kind]
    with h5py.File(tmp_path / "d.hdf5", "w") as f:
        f["data/demo_0/actions"] = _actions(3)
        f["data/demo_0/obs/cam"] = data
        f["data/demo_0/obs/joint_pos"] = np.zeros((3, 7), np.float32)
    _convert(tmp_path / "d.hdf5", tmp_path / "out", fmt="hdf5", instruction="look")
    ep = RLDSReader(tmp_path / "out").read(0)
    means = [decode_frame(ep.images[t]).astype(float).mean() for t in range(3)]
    # fit=pad: 32x40 scales exactly into 256x320, so the whole frame is the source grey
    np.testing.assert_allclose(means, level, atol=3)


def test_hdf5_float_images_out_of_range_and_depth_are_explained(tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "a.hdf5", "w") as f:
        f["data/demo_0/actions"] = _actions(3)
        f["data/demo_0/obs/cam"] = np.full((3, H, W, 3), -1.0, np.float32)
    with h5py.File(tmp_path / "b.hdf5", "w") as f:
        f["data/demo_1/actions"] = _actions(3)
        f["data/demo_1/obs/depth"] = np.ones((3, H, W, 1), np.float32)
    with pytest.raises(DataError, match=r"a\.hdf5:data/demo_0/obs/cam: the float images span \[-1, -1\]"):
        _convert(tmp_path / "a.hdf5", tmp_path / "o", fmt="hdf5", instruction="x")
    with pytest.raises(DataError, match=r"b\.hdf5:data/demo_1: no camera datasets.*depth.*image_key="):
        _convert(tmp_path / "b.hdf5", tmp_path / "o", fmt="hdf5", instruction="x")
    _convert(tmp_path / "b.hdf5", tmp_path / "o", fmt="hdf5", instruction="x", image_key="depth")  # named: used
    assert len(RLDSReader(tmp_path / "o")) == 1


def test_implausible_action_is_refused_naming_episode_and_step(tmp_path):
    a = _actions(3)
    a[2, 1] = 1e30
    ep = _folder_episode(tmp_path / "eps", "ep_3", instruction="x")
    np.savez(ep / "episode.npz", actions=a, instruction="x")
    with pytest.raises(DataError) as ei:
        _convert(tmp_path / "eps", tmp_path / "out")
    msg = str(ei.value)
    assert "ep_3" in msg and "world_vector is 1e+30 at step 2" in msg and "actions.translation_scale" in msg
