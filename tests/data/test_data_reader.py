"""RLDSReader on real tiny datasets: good data, and one clear error per kind of bad input."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from selfflow_robot.data import schema
from selfflow_robot.data.builder_dir import resolve_builder_dir
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.tfrecord import TFRecordWriter
from selfflow_robot.data.writer import encode_jpeg
from selfflow_robot.errors import DataError, MissingDependencyError


def test_reads_builder_dir_or_parent(synth_dir):
    builder = synth_dir / schema.NAME / schema.VERSION
    for p in (synth_dir, synth_dir / schema.NAME, builder):
        assert Path(resolve_builder_dir(p)) == builder
    r = RLDSReader(synth_dir)
    assert len(r) == 12 and len(r.files) == 3
    eps = list(r)
    assert [e.episode_id for e in eps] == list(range(12))
    for e in eps:
        T = len(e)
        assert 6 <= T <= 9
        assert e.actions().shape == (T, 7) and e.actions().dtype == np.float32
        assert e.steps["action/terminate_episode"].dtype == np.int32
        assert e.terminate().tolist() == [0.0] * (T - 1) + [1.0]
        assert e.steps["is_first"].tolist() == [True] + [False] * (T - 1)
        assert e.language_embedding.shape == (512,)
        assert e.steps["observation/workspace_bounds"].shape == (T, 3, 3)
        assert e.meta["aspects/success"] == 1 and e.meta["attributes/env_name"] == "synthetic"
    assert len({e.instruction for e in eps}) == 5


@pytest.fixture
def bad(make_dataset, good_features):
    """bad(mutate) -> dataset of 3 episodes whose episode 1 was passed through `mutate`."""
    return lambda mutate: _bad(make_dataset, good_features, mutate)


def _bad(make_dataset, good_features, mutate, n_good=2):
    rng = np.random.default_rng(0)
    feats = [good_features(rng) for _ in range(n_good + 1)]
    mutate(feats[1])
    return make_dataset(feats)


def _assert_one_clear_error(root, *patterns):
    with pytest.raises(DataError) as ei:
        list(RLDSReader(root))
    msg = str(ei.value)
    assert "\n" not in msg
    for p in patterns:
        assert re.search(p, msg), (p, msg)
    return msg


def test_missing_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist.*data synth"):
        RLDSReader(tmp_path / "nope")


def test_dir_without_dataset(tmp_path):
    with pytest.raises(DataError, match="no dataset_info.json"):
        RLDSReader(tmp_path)


def test_wrong_name_and_version(synth_dir, tmp_path):
    src = synth_dir / schema.NAME / schema.VERSION
    other = tmp_path / schema.NAME / "0.2.0"
    shutil.copytree(src, other)
    info = json.loads((other / "dataset_info.json").read_text())
    info["version"] = "0.2.0"
    (other / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match=r"fractal20220817_data 0\.2\.0 at .*0\.2\.0"):
        RLDSReader(tmp_path)
    with pytest.raises(DataError, match=r"wrong dataset: this is 'fractal20220817_data' version '0.2.0'"):
        RLDSReader(other)
    info["name"], info["version"] = "bridge_dataset", "1.0.0"
    (other / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="this is 'bridge_dataset' version '1.0.0'"):
        RLDSReader(other)


def test_truncated_tfrecord(bad):
    root = bad(lambda f: None)
    shard = next((root / schema.NAME / schema.VERSION).glob("*.tfrecord-*"))
    data = shard.read_bytes()
    shard.write_bytes(data[:-1000])
    with pytest.raises(DataError, match=rf"{re.escape(str(shard))}: truncated TFRecord: record 2 .*skip-bad-episodes"):
        RLDSReader(root)
    r = RLDSReader(root, skip_bad_episodes=True)
    eps = list(r)
    assert [e.episode_id for e in eps] == [0, 1] and r.num_skipped == 1


def test_crc_corrupt_tfrecord(bad):
    root = bad(lambda f: None)
    shard = next((root / schema.NAME / schema.VERSION).glob("*.tfrecord-*"))
    data = bytearray(shard.read_bytes())
    # flip one byte inside the payload of record 1 (records are: 12-byte header, payload, 4-byte crc)
    first_len = int.from_bytes(data[:8], "little")
    data[12 + first_len + 4 + 12 + 100] ^= 0xFF
    shard.write_bytes(bytes(data))
    msg = _assert_one_clear_error(root, re.escape(str(shard)), r"episode 1|record 1", "data CRC")
    assert "skip-bad-episodes" in msg
    r = RLDSReader(root, skip_bad_episodes=True)
    assert [e.episode_id for e in r] == [0, 2] and r.num_skipped == 1
    # a corrupt length header is caught when the shard is indexed
    data = bytearray(shard.read_bytes())
    data[3] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match="length CRC"):
        RLDSReader(root)


def test_missing_key(bad):
    root = bad(lambda f: f.pop("steps/action/world_vector"))
    _assert_one_clear_error(root, r"episode 1 \(record 1\)", "key 'steps/action/world_vector'", "missing")


def test_wrong_value_count(bad):
    def cut(f):
        f["steps/observation/natural_language_embedding"] = f["steps/observation/natural_language_embedding"][:-3]
    root = bad(cut)
    _assert_one_clear_error(root, "episode 1", "key 'steps/observation/natural_language_embedding'",
                            r"5 steps x \(512,\)")


def test_wrong_image_shape(bad):
    def small(f):
        f["steps/observation/image"][3] = encode_jpeg(np.zeros((128, 160, 3), np.uint8))
    root = bad(small)
    _assert_one_clear_error(root, "episode 1", "key 'steps/observation/image'", r"frame 3 has shape \(128, 160, 3\)")


def test_undecodable_image(bad):
    def junk(f):
        f["steps/observation/image"][0] = b"not a jpeg"
    root = bad(junk)
    _assert_one_clear_error(root, "episode 1", "key 'steps/observation/image'", "frame 0 is not a decodable image")


@pytest.mark.parametrize("key,value", [("steps/action/world_vector", np.nan),
                                       ("steps/action/rotation_delta", np.inf),
                                       ("steps/action/gripper_closedness_action", -np.inf)])
def test_non_finite_actions(bad, key, value):
    def poison(f):
        f[key] = f[key].copy()
        f[key][2, -1] = value
    root = bad(poison)
    _assert_one_clear_error(root, "episode 1", f"key '{key}'", r"NaN/inf", r"first at step 2")


def test_empty_episode(bad):
    def empty(f):
        for k in list(f):
            if k.startswith("steps/"):
                f[k] = [] if isinstance(f[k], list) else f[k][:0]
    root = bad(empty)
    _assert_one_clear_error(root, "episode 1", "empty episode")


def test_skip_bad_episodes_counts(make_dataset, good_features):
    rng = np.random.default_rng(3)
    feats = [good_features(rng) for _ in range(5)]
    feats[1].pop("steps/action/rotation_delta")
    feats[3]["steps/action/world_vector"][0] = np.nan
    root = make_dataset(feats)
    with pytest.raises(DataError):
        list(RLDSReader(root))
    r = RLDSReader(root, skip_bad_episodes=True)
    assert [e.episode_id for e in r] == [0, 2, 4]
    assert r.num_skipped == 2 and len(r.skipped) == 2
    assert "rotation_delta" in r.skipped[0] and "NaN" in r.skipped[1]


def test_shard_length_mismatch_and_missing_shard(synth_dir, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(synth_dir, dst)
    bdir = dst / schema.NAME / schema.VERSION
    info = json.loads((bdir / "dataset_info.json").read_text())
    info["splits"][0]["shardLengths"][0] = str(int(info["splits"][0]["shardLengths"][0]) + 2)
    (bdir / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="holds 4 records but dataset_info.json says 6"):
        RLDSReader(dst)
    assert RLDSReader(dst, skip_bad_episodes=True).read(4) is None
    next(bdir.glob("*-00002-of-00003")).unlink()
    with pytest.raises(DataError, match="1 of 3 shard files .* missing"):
        RLDSReader(dst)


def test_truncated_shard_without_shard_lengths(make_dataset, good_features):
    rng = np.random.default_rng(5)
    root = make_dataset([good_features(rng) for _ in range(4)], episodes_per_shard=2)
    bdir = root / schema.NAME / schema.VERSION
    info = json.loads((bdir / "dataset_info.json").read_text())
    del info["splits"][0]["shardLengths"]
    (bdir / "dataset_info.json").write_text(json.dumps(info))
    first = sorted(bdir.glob("*.tfrecord-*"))[0]
    first.write_bytes(first.read_bytes()[:-50])
    with pytest.raises(DataError, match="truncated TFRecord: record 1"):
        RLDSReader(root)
    r = RLDSReader(root, skip_bad_episodes=True)
    assert len(r) == 4 and [e.episode_id for e in r] == [0, 2, 3] and r.num_skipped == 1


def test_remote_path_needs_tensorflow():
    pytest.importorskip("tensorflow_datasets")
    if importlib.util.find_spec("tensorflow") is None:
        with pytest.raises(MissingDependencyError, match="pip install 'selfflow-robot\\[tf\\]'"):
            RLDSReader(schema.GCS_BUILDER_DIR)
    else:  # pragma: no cover - TF installed: reaching GCS is not allowed in tests
        pytest.skip("TensorFlow is installed; the gs:// path is exercised only online")


def test_record_that_is_not_an_example(tmp_path, make_dataset, good_features):
    root = make_dataset([good_features(np.random.default_rng(0)) for _ in range(2)])
    shard = next((root / schema.NAME / schema.VERSION).glob("*.tfrecord-*"))
    good = shard.read_bytes()
    with TFRecordWriter(shard) as w:  # valid framing and CRCs around a payload that is not a protobuf
        w.write(bytes(range(7, 250)) * 3)
    shard.write_bytes(good + shard.read_bytes())
    info_path = root / schema.NAME / schema.VERSION / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["splits"][0]["shardLengths"] = ["3"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(DataError, match=r"episode 2 \(record 2\): the record is not a valid tf.train.Example"):
        list(RLDSReader(root))
