"""Converters: robomimic HDF5, episode folders (NPZ/JSON + images/video), LeRobot v2.1/v3.0 -> RT-1 RLDS."""
from __future__ import annotations

import io
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from selfflow_robot.cli import main
from selfflow_robot.data import schema
from selfflow_robot.data.convert import ConvertConfig, convert
from selfflow_robot.data.convert.mapping import ActionMapping, StateMapping, fit_frame
from selfflow_robot.data.frames import decode_frame
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.synth import instruction_embedding
from selfflow_robot.errors import ConfigError, DataError

H, W = 64, 80  # source frames; 4x smaller than 256x320, same aspect: fit=pad scales exactly


def _grey_frames(T: int, offset: int = 0) -> np.ndarray:
    """Frame t is a flat grey of level 20 t + 10 + offset (survives video and JPEG coding)."""
    return np.stack([np.full((H, W, 3), 20 * t + 10 + offset, np.uint8) for t in range(T)])


def _actions(T: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).uniform(-0.05, 0.05, (T, 7))
    a[:, 6] = np.where(np.arange(T) == 1, 1.0, 0.0)
    return a


def _check(root: Path, expected: list[tuple[np.ndarray, np.ndarray, str]], tol: float = 6.0):
    r = RLDSReader(root)
    assert len(r) == len(expected)
    for ep, (frames, actions, instr) in zip(r, expected):
        assert len(ep) == len(actions) and ep.instruction == instr
        np.testing.assert_allclose(ep.actions(), actions, atol=1e-6)
        np.testing.assert_allclose(ep.language_embedding, instruction_embedding(instr))
        assert ep.terminate().tolist() == [0.0] * (len(actions) - 1) + [1.0]
        for t in range(len(frames)):
            got = decode_frame(ep.images[t]).astype(float)
            assert got.shape == (256, 320, 3)
            assert abs(got.mean() - frames[t].astype(float).mean()) < tol, t


def test_hdf5_roundtrip(tmp_path):
    h5py = pytest.importorskip("h5py")
    src = tmp_path / "demos.hdf5"
    exp = []
    with h5py.File(src, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps({"language_instruction": "put the bowl on the plate"})
        for i, T in enumerate([4, 6, 5]):  # demo_10 must come after demo_2 (natural order)
            name = f"demo_{[0, 2, 10][i]}"
            g = data.create_group(name)
            a = _actions(T, i)
            g["actions"] = a
            g["obs/agentview_image"] = _grey_frames(T, i)
            g["obs/joint_pos"] = np.zeros((T, 7))
            if i == 1:
                g.attrs["language_instruction"] = "open the drawer"
            exp.append((_grey_frames(T, i), a, "open the drawer" if i == 1 else "put the bowl on the plate"))
    path, n, skipped = convert(ConvertConfig(format="hdf5", input=str(src), output_dir=str(tmp_path / "out")),
                               progress=False)
    assert n == 3 and skipped == 0
    _check(tmp_path / "out", exp)


def test_folder_roundtrip_npz_images_and_json_video(tmp_path):
    src = tmp_path / "eps"
    exp = []
    e0 = src / "ep_0"
    (e0 / "frames").mkdir(parents=True)
    f0, a0 = _grey_frames(5), _actions(5, 0)
    for t, fr in enumerate(f0):
        Image.fromarray(fr).save(e0 / "frames" / f"{t}.png")  # 10.png sorts after 9.png (natural order)
    np.savez(e0 / "episode.npz", actions=a0, instruction="stack the cups")
    exp.append((f0, a0, "stack the cups"))
    e1 = src / "ep_1"
    e1.mkdir()
    f1, a1 = _grey_frames(6, 3), _actions(6, 1)
    iio.imwrite(e1 / "video.mp4", f1, fps=5, codec="libx264")
    (e1 / "episode.json").write_text(json.dumps({"actions": a1.tolist()}))
    exp.append((f1, a1, "default task"))
    assert main(["data", "convert", "format=folder", f"input={src}", f"output_dir={tmp_path / 'out'}",
                 "instruction=default task"]) == 0
    _check(tmp_path / "out", exp)
    # T+1 frames need an explicit choice
    Image.fromarray(f0[-1]).save(e0 / "frames" / "99.png")
    with pytest.raises(DataError, match="6 frames but 5 actions.*drop_last_frame"):
        convert(ConvertConfig(format="folder", input=str(src), output_dir=str(tmp_path / "o2"), instruction="x"),
                progress=False)
    assert not (tmp_path / "o2").exists()
    convert(ConvertConfig(format="folder", input=str(src), output_dir=str(tmp_path / "o3"), instruction="x",
                          drop_last_frame=True), progress=False)
    assert len(RLDSReader(tmp_path / "o3")) == 2


def _lerobot_common(root: Path, version: str, fps: int, feats_extra: dict) -> None:
    (root / "meta").mkdir(parents=True)
    info = {"codebase_version": version, "fps": fps, "chunks_size": 1000,
            "features": {"action": {"dtype": "float32", "shape": [7]}, "timestamp": {"dtype": "float32", "shape": [1]},
                         "frame_index": {"dtype": "int64", "shape": [1]},
                         "episode_index": {"dtype": "int64", "shape": [1]},
                         "task_index": {"dtype": "int64", "shape": [1]}, **feats_extra}}
    if version.startswith("v2"):
        info["data_path"] = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
        info["video_path"] = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    else:
        info["data_path"] = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
        info["video_path"] = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    (root / "meta" / "info.json").write_text(json.dumps(info))


def _rows(ep: int, actions: np.ndarray, fps: int, task: int, extra=None) -> dict:
    T = len(actions)
    d = {"action": actions.astype(np.float32).tolist(), "timestamp": (np.arange(T) / fps).tolist(),
         "frame_index": list(range(T)), "episode_index": [ep] * T, "task_index": [task] * T}
    if extra:
        d.update(extra)
    return d


def test_lerobot_v21_video_and_images(tmp_path):
    fps, key = 10, "observation.images.cam"
    root = tmp_path / "lr"
    _lerobot_common(root, "v2.1", fps, {key: {"dtype": "video", "shape": [H, W, 3]}})
    (root / "meta" / "tasks.jsonl").write_text('{"task_index": 0, "task": "pick the cube"}\n'
                                               '{"task_index": 1, "task": "push the button"}\n')
    exp = []
    for ep, T in enumerate([5, 7]):
        a, fr = _actions(T, ep), _grey_frames(T, 2 * ep)
        (root / "data/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(_rows(ep, a, fps, ep)), root / f"data/chunk-000/episode_{ep:06d}.parquet")
        vdir = root / "videos/chunk-000" / key
        vdir.mkdir(parents=True, exist_ok=True)
        iio.imwrite(vdir / f"episode_{ep:06d}.mp4", fr, fps=fps, codec="libx264")
        exp.append((fr, a, ["pick the cube", "push the button"][ep]))
    convert(ConvertConfig(format="lerobot", input=str(root), output_dir=str(tmp_path / "out")), progress=False)
    _check(tmp_path / "out", exp)

    # images embedded in the parquet rows (dtype: image)
    root2 = tmp_path / "lr_img"
    _lerobot_common(root2, "v2.1", fps, {"observation.images.top": {"dtype": "image", "shape": [H, W, 3]},
                                         "observation.images.wrist": {"dtype": "image", "shape": [H, W, 3]}})
    (root2 / "meta" / "tasks.jsonl").write_text('{"task_index": 0, "task": "wipe"}\n')
    a, fr = _actions(4, 9), _grey_frames(4, 5)
    pngs = []
    for f in fr:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="PNG")
        pngs.append({"bytes": buf.getvalue(), "path": None})
    (root2 / "data/chunk-000").mkdir(parents=True)
    rows = _rows(0, a, fps, 0, {"observation.images.top": pngs, "observation.images.wrist": pngs})
    pq.write_table(pa.table(rows), root2 / "data/chunk-000/episode_000000.parquet")
    with pytest.raises(DataError, match="several camera features"):
        convert(ConvertConfig(format="lerobot", input=str(root2), output_dir=str(tmp_path / "o2")), progress=False)
    convert(ConvertConfig(format="lerobot", input=str(root2), output_dir=str(tmp_path / "o2"), image_key="top"),
            progress=False)
    _check(tmp_path / "o2", [(fr, a, "wipe")], tol=2.0)


def test_lerobot_v30_shared_files(tmp_path):
    fps, key = 10, "observation.images.front"
    root = tmp_path / "lr3"
    _lerobot_common(root, "v3.0", fps, {key: {"dtype": "video", "shape": [H, W, 3]}})
    pq.write_table(pa.table({"task_index": [0, 1], "task": ["fold towel", "open box"]}), root / "meta/tasks.parquet")
    lens = [4, 6]
    acts = [_actions(T, 20 + i) for i, T in enumerate(lens)]
    frames = [_grey_frames(lens[0]), _grey_frames(lens[1], 1)]
    (root / "data/chunk-000").mkdir(parents=True)
    rows0, rows1 = _rows(0, acts[0], fps, 0), _rows(1, acts[1], fps, 1)
    pq.write_table(pa.table({k: rows0[k] + rows1[k] for k in rows0}), root / "data/chunk-000/file-000.parquet")
    (root / f"videos/{key}/chunk-000").mkdir(parents=True)
    iio.imwrite(root / f"videos/{key}/chunk-000/file-000.mp4", np.concatenate(frames), fps=fps, codec="libx264")
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.table({"episode_index": [0, 1], f"videos/{key}/chunk_index": [0, 0],
                             f"videos/{key}/file_index": [0, 0],
                             f"videos/{key}/from_timestamp": [0.0, lens[0] / fps],
                             f"videos/{key}/to_timestamp": [lens[0] / fps, sum(lens) / fps]}),
                   root / "meta/episodes/chunk-000/file-000.parquet")
    convert(ConvertConfig(format="lerobot", input=str(root), output_dir=str(tmp_path / "out")), progress=False)
    _check(tmp_path / "out", [(frames[0], acts[0], "fold towel"), (frames[1], acts[1], "open box")])


def test_action_mapping_conventions():
    T = 6
    a = np.zeros((T, 8))
    a[:, 0:3] = np.arange(T * 3).reshape(T, 3)                      # centimetres
    rpy = np.random.default_rng(0).uniform(-0.3, 0.3, (T, 3))
    a[:, 3:6] = Rotation.from_euler("xyz", rpy).as_rotvec()         # axis-angle
    a[:, 7] = [0, 0, 1, 1, 1, 0]                                     # absolute: 1 = closed
    m = ActionMapping(gripper=7, translation_scale=0.01, rotation_format="axis_angle", gripper_format="absolute_close1")
    out = m.apply(a)
    np.testing.assert_allclose(out["action/world_vector"], a[:, :3] * 0.01, rtol=1e-6)
    np.testing.assert_allclose(out["action/rotation_delta"], rpy, atol=1e-6)
    assert out["action/gripper_closedness_action"][:, 0].tolist() == [0, 0, 1, 0, 0, -1]
    g_open1 = ActionMapping(gripper=7, gripper_format="absolute_open1").apply(a)
    assert g_open1["action/gripper_closedness_action"][:, 0].tolist() == [0, 0, -1, 0, 0, 1]
    q = Rotation.from_euler("xyz", rpy).as_quat()                    # xyzw
    b = np.concatenate([a[:, :3], q, np.zeros((T, 1))], 1)
    out = ActionMapping(rotation=[3, 4, 5, 6], rotation_format="quat_xyzw", gripper=7).apply(b)
    np.testing.assert_allclose(out["action/rotation_delta"], rpy, atol=1e-6)
    with pytest.raises(DataError, match="outside RT-1's relative.*absolute_close1"):
        ActionMapping(gripper=0).apply(a)  # values up to 15 are not a relative gripper
    with pytest.raises(ConfigError, match="rotation_format"):
        ActionMapping(rotation_format="euler")
    with pytest.raises(ConfigError, match="4 indices"):
        ActionMapping(rotation_format="quat_wxyz")
    none = ActionMapping(rotation=[], rotation_format="none", gripper=-1, gripper_format="none").apply(a[:, :3])
    assert not none["action/rotation_delta"].any() and not none["action/gripper_closedness_action"].any()


def test_fit_frame_modes():
    f = np.zeros((100, 100, 3), np.uint8)
    f[:] = 200
    pad = fit_frame(f, "pad")
    assert pad.shape == (256, 320, 3) and pad[:, :32].max() == 0 and pad[:, 40:280].min() == 200
    assert fit_frame(f, "stretch").min() == 200 and fit_frame(f, "crop").min() == 200
    assert fit_frame(np.zeros((10, 12), np.float32), "pad").shape == (256, 320, 3)


def test_convert_errors(tmp_path):
    src = tmp_path / "eps" / "e0"
    src.mkdir(parents=True)
    np.savez(src / "a.npz", actions=np.zeros((3, 7)))

    for t in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / f"{t}.png")
    with pytest.raises(DataError, match="no instruction in the source; set instruction="):
        convert(ConvertConfig(format="folder", input=str(tmp_path / "eps"), output_dir=str(tmp_path / "o")),
                progress=False)
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="input= is required"):
        ConvertConfig(format="folder")
    assert main(["data", "convert", "format=hdf5", f"input={tmp_path / 'missing.hdf5'}"]) == 2


def _pose(T: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """T tool positions (m) and rpy orientations."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, (T, 3)), rng.uniform(-0.8, 0.8, (T, 3))


def _state(pos: np.ndarray, rpy: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """What `Episode.state()` must return: position, scipy's xyzw quaternion, closedness (sign made canonical)."""
    return schema.canonical_state(np.concatenate([pos, Rotation.from_euler("xyz", rpy).as_quat(), closed[:, None]], 1))


def test_state_mapping_conventions():
    T = 5
    pos, rpy = _pose(T, 0)
    rot = Rotation.from_euler("xyz", rpy)
    g = np.array([0.0, 0.25, 0.5, 1.0, 1.0])
    s = np.concatenate([pos * 1000, rot.as_quat(), g[:, None]], 1)         # defaults: [x y z qx qy qz qw closed]
    out = StateMapping(position_scale=0.001).apply(s)
    np.testing.assert_allclose(out[schema.TOOL_POSE][:, :3], pos, atol=1e-6)
    np.testing.assert_allclose(out[schema.TOOL_POSE][:, 3:], rot.as_quat(), atol=1e-6)
    np.testing.assert_allclose(out[schema.GRIPPER_CLOSED][:, 0], g)
    assert out[schema.TOOL_POSE].dtype == np.float32 and out[schema.GRIPPER_CLOSED].shape == (T, 1)
    for fmt, r in [("rpy", rpy), ("axis_angle", rot.as_rotvec()), ("euler_zyx", rot.as_euler("zyx")),
                   ("quat_wxyz", rot.as_quat()[:, [3, 0, 1, 2]])]:
        b = np.concatenate([r, pos, g[:, None]], 1)                         # other orders are just indices
        n = r.shape[1]
        m = StateMapping(rotation=list(range(n)), rotation_format=fmt, position=[n, n + 1, n + 2], gripper=n + 3)
        q = m.apply(b)[schema.TOOL_POSE][:, 3:]
        np.testing.assert_allclose(np.abs((q * rot.as_quat()).sum(1)), 1.0, atol=1e-6, err_msg=fmt)  # same rotation

    def grip(fmt: str, v: list[float], scale: float = 1.0) -> list[float]:
        m = StateMapping(gripper=7, gripper_format=fmt, gripper_scale=scale)
        out = m.apply(np.concatenate([s[:, :7], np.asarray(v, float)[:, None]], 1))
        return out[schema.GRIPPER_CLOSED][:, 0].tolist()

    assert grip("absolute_open1", [1, 0.75, 0.5, 0, 0]) == [0, 0.25, 0.5, 1, 1]
    assert grip("absolute_pm1", [-1, -0.5, 0, 1, 1]) == [0, 0.25, 0.5, 1, 1]
    assert grip("absolute_open1", [0.04, 0.03, 0.02, 0, 0], scale=25) == pytest.approx([0, 0.25, 0.5, 1, 1])
    none = StateMapping(rotation=[], rotation_format="none", gripper=-1, gripper_format="none").apply(s[:, :3])
    assert not none[schema.TOOL_POSE][:, 3:].any() and not none[schema.GRIPPER_CLOSED].any()
    # config errors name the option
    with pytest.raises(ConfigError, match="state.position needs 3"):
        StateMapping(position=[0, 1])
    with pytest.raises(ConfigError, match="state.rotation needs 3 indices for rotation_format=rpy"):
        StateMapping(rotation_format="rpy")
    with pytest.raises(ConfigError, match="state.gripper_format must be one of"):
        StateMapping(gripper_format="relative")
    with pytest.raises(ConfigError, match="state.gripper_format=none"):
        StateMapping(gripper=-1)
    # data errors name the episode and the option
    with pytest.raises(DataError, match="ep7: state values .* have 7 dims but the mapping uses index 7; set state"):
        StateMapping().apply(s[:, :7], "ep7")
    with pytest.raises(DataError, match=r"ep7: state values .* must be \(T, D\)"):
        StateMapping().apply(s[:, 0], "ep7")
    bad = s.copy()
    bad[2, 4] = np.nan
    with pytest.raises(DataError, match="ep7: state values .* NaN"):
        StateMapping().apply(bad, "ep7")
    with pytest.raises(DataError, match="outside the range of state.gripper_format=absolute_close1"):
        grip("absolute_close1", [0, 0, 2, 0, 0])
    bad = s.copy()
    bad[1, 3:7] = 0
    with pytest.raises(DataError, match="ep7: state.rotation values are not rotations"):
        StateMapping().apply(bad, "ep7")


def test_state_hdf5_robomimic_keys(tmp_path):
    h5py = pytest.importorskip("h5py")

    src = tmp_path / "demos.hdf5"
    exp = []
    with h5py.File(src, "w") as f:
        for i, T in enumerate([4, 5]):
            g = f.create_group(f"data/demo_{i}")
            g.attrs["language_instruction"] = "lift"
            g["actions"] = _actions(T, i)
            g["obs/agentview_image"] = _grey_frames(T, i)
            pos, rpy = _pose(T, i)
            fingers = np.linspace(0.04, 0.0, T)                              # Panda finger: 0.04 m open .. 0 closed
            g["obs/robot0_eef_pos"] = pos
            g["obs/robot0_eef_quat"] = Rotation.from_euler("xyz", rpy).as_quat()
            g["obs/robot0_gripper_qpos"] = np.stack([fingers, -fingers], 1)
            g["ee_pose"] = np.concatenate([g["obs/robot0_eef_pos"][()], g["obs/robot0_eef_quat"][()]], 1)  # demo level
            exp.append(_state(pos, rpy, 1 - fingers * 25))
    keys = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
    cfg = {"format": "hdf5", "input": str(src), "state_key": keys,
           "state": StateMapping(gripper_scale=25, gripper_format="absolute_open1")}
    convert(ConvertConfig(**cfg, output_dir=str(tmp_path / "out")), progress=False)
    r = RLDSReader(tmp_path / "out")
    for ep, want in zip(r, exp):
        assert ep.steps[schema.TOOL_POSE].shape == (len(want), 7)
        np.testing.assert_allclose(ep.state(), want, atol=1e-5)
    convert(ConvertConfig(**{**cfg, "state_key": ["ee_pose", "robot0_gripper_qpos"]}, output_dir=str(tmp_path / "o1")),
            progress=False)
    for ep, want in zip(RLDSReader(tmp_path / "o1"), exp):
        np.testing.assert_allclose(ep.state(), want, atol=1e-5)
    with pytest.raises(DataError, match="demo_0: no obs/robot0_eef_rot .* for state_key"):
        convert(ConvertConfig(**{**cfg, "state_key": ["robot0_eef_pos", "robot0_eef_rot"]},
                              output_dir=str(tmp_path / "o2")), progress=False)
    with pytest.raises(DataError, match="demo_0: state values .* have 6 dims but the mapping uses index 7"):
        convert(ConvertConfig(**{**cfg, "state_key": ["robot0_eef_pos", "robot0_eef_pos"]},
                              output_dir=str(tmp_path / "o3")), progress=False)
    # without state_key nothing changes: the proprioception is written as zeros
    convert(ConvertConfig(format="hdf5", input=str(src), output_dir=str(tmp_path / "o4")), progress=False)
    assert all(not ep.state().any() for ep in RLDSReader(tmp_path / "o4"))


def test_state_folder_cli_drop_last_frame(tmp_path):
    src = tmp_path / "eps"
    T = 4
    pos, rpy = _pose(T + 2, 3)
    grip = np.array([-1, -1, 1, 1, 1, 1.0])
    for name, n in (("ep_0", T + 1), ("ep_1", T + 2)):                       # ep_0: one final observation more
        (src / name).mkdir(parents=True)
        for t, fr in enumerate(_grey_frames(T + 1)):
            Image.fromarray(fr).save(src / name / f"{t}.png")
        (src / name / "episode.json").write_text(json.dumps(
            {"actions": _actions(T, 0).tolist(), "pos_cm": (pos[:n] * 100).tolist(), "rpy": rpy[:n].tolist(),
             "gripper": grip[:n].tolist()}))
    args = ["data", "convert", "format=folder", f"input={src}", "instruction=reach", "drop_last_frame=true",
            "state_key=[pos_cm,rpy,gripper]", "state.position_scale=0.01", "state.rotation=[3,4,5]",
            "state.rotation_format=rpy", "state.gripper=6", "state.gripper_format=absolute_pm1"]
    assert main([*args, f"output_dir={tmp_path / 'out'}", "skip_bad_episodes=true"]) == 0
    (ep,) = list(RLDSReader(tmp_path / "out"))                              # ep_1 has 6 states for 4 steps: skipped
    np.testing.assert_allclose(ep.state(), _state(pos[:T], rpy[:T], (grip[:T] + 1) / 2), atol=1e-5)
    kw = {"format": "folder", "input": str(src), "instruction": "x", "drop_last_frame": True,
          "state": StateMapping(rotation=[3, 4, 5], rotation_format="rpy", gripper=6, gripper_format="absolute_pm1")}
    with pytest.raises(DataError, match=r"ep_1: 6 state rows \(state_key=\['pos_cm', 'rpy', 'gripper'\]\) but 4 act"):
        convert(ConvertConfig(**kw, output_dir=str(tmp_path / "o2"), state_key=["pos_cm", "rpy", "gripper"]),
                progress=False)
    with pytest.raises(DataError, match=r"ep_0.*episode.json: no \['state'\] for state_key"):
        convert(ConvertConfig(**kw, output_dir=str(tmp_path / "o3"), state_key=["state"]), progress=False)
    (src / "ep_0" / "episode.json").write_text(json.dumps({"actions": _actions(T, 0).tolist(), "s": [1.0, 2.0]}))
    with pytest.raises(DataError, match="ep_0.*state_key entries have different lengths"):
        convert(ConvertConfig(**kw, output_dir=str(tmp_path / "o4"), state_key=["actions", "s"]), progress=False)


def test_state_lerobot_observation_state(tmp_path):
    fps, T = 10, 4
    root = tmp_path / "lr"
    _lerobot_common(root, "v2.1", fps, {"observation.images.top": {"dtype": "image", "shape": [H, W, 3]},
                                        "observation.state": {"dtype": "float32", "shape": [8]}})
    (root / "meta" / "tasks.jsonl").write_text('{"task_index": 0, "task": "wipe"}\n')
    pngs = []
    for f in _grey_frames(T):
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="PNG")
        pngs.append({"bytes": buf.getvalue(), "path": None})
    pos, rpy = _pose(T, 5)
    closed = np.array([0, 0, 1, 1.0])
    quat_wxyz = Rotation.from_euler("xyz", rpy).as_quat()[:, [3, 0, 1, 2]]
    st = np.concatenate([pos, quat_wxyz, closed[:, None]], 1).astype(np.float32)
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(pa.table(_rows(0, _actions(T, 0), fps, 0, {"observation.images.top": pngs,
                                                               "observation.state": st.tolist()})),
                   root / "data/chunk-000/episode_000000.parquet")
    convert(ConvertConfig(format="lerobot", input=str(root), output_dir=str(tmp_path / "out"),
                          state_key="observation.state", state=StateMapping(rotation_format="quat_wxyz")),
            progress=False)
    (ep,) = list(RLDSReader(tmp_path / "out"))
    np.testing.assert_allclose(ep.state(), _state(pos, rpy, closed), atol=1e-5)
    with pytest.raises(DataError, match=r"no \['observation.joints'\] feature for state_key"):
        convert(ConvertConfig(format="lerobot", input=str(root), output_dir=str(tmp_path / "o2"),
                              state_key=["observation.joints"]), progress=False)
