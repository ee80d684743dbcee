"""The tf.data backend (TFRLDSReader) against the Python backend on the same tiny synthetic datasets."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import tensorflow  # noqa: F401
    import tensorflow_datasets  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip("the tf backend needs tensorflow-cpu and tensorflow-datasets (pip install "
                "'selfflow-robot[tf]'); the Python backend is tested without them", allow_module_level=True)

import torch

from selfflow_robot import constants as C
from selfflow_robot.data import schema
from selfflow_robot.data.backend import open_reader
from selfflow_robot.data.dataset import DataConfig, RT1Windows, make_loader
from selfflow_robot.data.frames import decode_frames
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.statistics import compute_statistics
from selfflow_robot.data.tf_backend import TFRLDSReader, decode_frames_tf
from selfflow_robot.data.windows import WindowConfig, episode_windows
from selfflow_robot.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]


def _same_episode(a, b):
    assert (a.episode_id, a.file, a.record) == (b.episode_id, b.file, b.record)
    assert a.meta == b.meta and [type(v) for v in a.meta.values()] == [type(v) for v in b.meta.values()]
    assert list(a.steps) == list(b.steps)
    for k, x in a.steps.items():
        y = b.steps[k]
        if isinstance(x, list):
            assert y == x and [type(v) for v in y] == [type(v) for v in x], k
        else:
            assert (y.dtype, y.shape) == (x.dtype, x.shape) and y.tobytes() == x.tobytes(), k


def test_backend_selection(synth_dir):
    assert type(open_reader(synth_dir)) is RLDSReader                 # auto, local path -> python
    assert type(open_reader(synth_dir, "python")) is RLDSReader
    assert type(open_reader(synth_dir, "tf")) is TFRLDSReader
    with pytest.raises(ConfigError, match="backend must be one of"):
        open_reader(synth_dir, "jax")
    with pytest.raises(ConfigError, match="data.backend"):
        DataConfig(backend="torch")


def test_tf_episodes_byte_identical(synth_dir):
    py, tf = RLDSReader(synth_dir), TFRLDSReader(synth_dir)
    assert len(tf) == len(py) == 12 and tf.files == py.files and tf.builder_dir == py.builder_dir
    eps = list(tf)                                                    # one streaming pipeline, id order
    assert [e.episode_id for e in eps] == list(range(12))
    for a, b in zip(py, eps):
        _same_episode(a, b)
    for i in (7, 2, 3, 11):                                           # random access (slices) and continuation
        _same_episode(py.read(i), tf.read(i))
    assert tf.num_skipped == 0


def test_tf_windows_and_statistics_identical(synth_dir, tmp_path):
    cfg = WindowConfig(context_frames=2, horizon=3, frame_stride=2, height=64)
    py, tf = RLDSReader(synth_dir), TFRLDSReader(synth_dir)
    for i in (0, 5):
        for wa, wb in zip(episode_windows(py.read(i), cfg), episode_windows(tf.read(i), cfg), strict=True):
            for k in wa:
                np.testing.assert_array_equal(np.asarray(wa[k]), np.asarray(wb[k]), err_msg=k)
    kw = {"split": "train", "val_fraction": 0.25, "seed": 3, "infinite": False, "shuffle_episodes": 3}
    a = list(RT1Windows(str(synth_dir), cfg, backend="python", **kw))
    ds_tf = RT1Windows(str(synth_dir), cfg, backend="tf", **kw)
    assert isinstance(ds_tf.reader, TFRLDSReader)
    b = list(ds_tf)
    assert len(a) == len(b) > 0
    for wa, wb in zip(a, b):
        assert (wa[C.EPISODE_ID], wa[C.STEP_INDEX]) == (wb[C.EPISODE_ID], wb[C.STEP_INDEX])
        for k in wa:
            if k != C.INSTRUCTION:
                np.testing.assert_array_equal(np.asarray(wa[k]), np.asarray(wb[k]), err_msg=k)
        assert wa[C.INSTRUCTION] == wb[C.INSTRUCTION]
    sa, _ = compute_statistics(py)
    sb, _ = compute_statistics(tf)
    assert sa == sb


def test_tf_decoded_frames(synth_dir):
    tf = TFRLDSReader(synth_dir)
    got = list(tf.iter_decoded(start=2, stop=5))
    assert [e.episode_id for e, _ in got] == [2, 3, 4]
    for ep, frames in got:
        assert frames.shape == (len(ep), 256, 320, 3) and frames.dtype == np.uint8
        # TF's and PIL's JPEG decoders may round differently, never by much
        assert np.abs(frames.astype(int) - decode_frames(ep.images, threads=1)).max() <= 16
    small = decode_frames_tf(got[0][0].images[:3], size=(64, 80))
    assert small.shape == (3, 64, 80, 3)
    ref = decode_frames(got[0][0].images[:3], size=(64, 80), threads=1).astype(float)
    assert np.abs(small - ref).mean() < 4


def test_tf_same_error_class(tmp_path, synth_dir):
    with pytest.raises(DataError, match="does not exist.*data synth"):
        TFRLDSReader(tmp_path / "nope")
    with pytest.raises(DataError, match="no dataset_info.json"):
        TFRLDSReader(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        RT1Windows(str(tmp_path / "nope"), backend="tf")


def test_tf_bad_episodes(make_dataset, good_features):
    rng = np.random.default_rng(3)
    feats = [good_features(rng) for _ in range(5)]
    feats[1].pop("steps/action/rotation_delta")
    feats[3]["steps/action/world_vector"][0] = np.nan
    root = make_dataset(feats)
    with pytest.raises(DataError) as ei:
        list(TFRLDSReader(root))
    msg = str(ei.value)
    assert "\n" not in msg and re.search(r"episode 1 \(record 1\), key .steps/action/rotation_delta.: missing", msg)
    for i in (1, 3):  # the same one-line message as the Python backend
        with pytest.raises(DataError) as e_py:
            RLDSReader(root).read(i)
        with pytest.raises(DataError) as e_tf:
            TFRLDSReader(root).read(i)
        assert str(e_tf.value) == str(e_py.value)
    r = TFRLDSReader(root, skip_bad_episodes=True)
    assert [e.episode_id for e in r] == [0, 2, 4] and r.num_skipped == 2 and len(r.skipped) == 2
    assert [e.episode_id for e, _ in TFRLDSReader(root, skip_bad_episodes=True).iter_decoded()] == [0, 2, 4]


def test_tf_truncated_shard(make_dataset, good_features):
    rng = np.random.default_rng(4)
    root = make_dataset([good_features(rng) for _ in range(3)])
    shard = next((root / schema.NAME / schema.VERSION).glob("*.tfrecord-*"))
    shard.write_bytes(shard.read_bytes()[:-1000])
    with pytest.raises(DataError, match=rf"{re.escape(str(shard))}, episode 2 \(record 2\): TensorFlow cannot read"):
        list(TFRLDSReader(root))
    r = TFRLDSReader(root, skip_bad_episodes=True)
    assert [e.episode_id for e in r] == [0, 1] and r.num_skipped == 1


@pytest.mark.slow
def test_tf_backend_in_dataloader_worker(synth_dir):
    """A worker process reads with TensorFlow (spawned: TF hangs in forked children) and its batches equal
    the in-process Python backend's (one consumer either way)."""
    cfg = WindowConfig(context_frames=2, horizon=2, height=32)
    kw = {"split": "val", "val_fraction": 0.25, "seed": 0, "shuffle_episodes": 2}
    a = list(make_loader(RT1Windows(str(synth_dir), cfg, backend="python", **kw), batch_size=4))
    b = list(make_loader(RT1Windows(str(synth_dir), cfg, backend="tf", **kw), batch_size=4, num_workers=1))
    assert len(a) == len(b) > 0
    for ba, bb in zip(a, b):
        for k, v in ba.items():
            assert torch.equal(v, bb[k]) if isinstance(v, torch.Tensor) else v == bb[k], k


@pytest.mark.slow
def test_bench_script_prints_both_backends():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_data.py"), "--episodes", "4", "--min-steps",
                          "6", "--max-steps", "8", "--heights", "64", "--workers", "0", "--repeats", "1",
                          "--backend", "python", "tf"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"raw TF JPEG decode \(tf\.data\): \d+ frames/s", out.stdout), out.stdout
    rows = [ln.split() for ln in out.stdout.splitlines() if re.match(r"\s*64x80\s", ln)]
    assert [r[1] for r in rows] == ["python", "tf"], out.stdout
    for r in rows:
        assert float(r[3]) > 0 and float(r[5]) > 0                   # windows/s, delivered frames/s
