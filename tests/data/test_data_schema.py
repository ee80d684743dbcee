"""The schema, the wire codec and the writer agree with tensorflow-datasets itself (no TF needed)."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from tensorflow_datasets.proto import tf_example_pb2

from selfflow_robot.data import schema
from selfflow_robot.data.example_proto import ProtoError, decode_example, encode_example
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.tfrecord import iter_records

tfds = pytest.importorskip("tensorflow_datasets")


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[prefix + k] = v
    return out


def test_schema_matches_the_catalog_structure():
    assert len(schema.STEP_FIELDS) == 24 and len(schema.EPISODE_FIELDS) == 17
    info = _flat(schema.features_dict().get_serialized_info())
    # every step feature is serialized over the episode with a leading time axis
    for f in schema.STEP_FIELDS:
        ti = info[f"steps/{f.path}"]
        want_shape = (None,) if f.kind == "image" or f.dtype == "string" else (None, *f.shape)
        assert tuple(ti.shape) == want_shape, f.path
    for f in schema.EPISODE_FIELDS:
        assert tuple(info[f.path].shape) == ()
    spec = schema.STEP_FIELD
    assert spec["observation/image"].shape == (256, 320, 3)
    assert spec["action/terminate_episode"].dtype == "int32" and spec["action/terminate_episode"].shape == (3,)
    assert spec["observation/natural_language_embedding"].shape == (512,)
    assert spec["observation/orientation_box"].shape == (2, 3)
    assert "discount" not in str(info) and "observation/orientation" not in spec


def test_written_dataset_opens_with_tfds_and_decodes_identically(synth_dir):
    reader = RLDSReader(synth_dir)
    builder = tfds.builder_from_directory(reader.builder_dir)
    assert builder.info.name == schema.NAME and str(builder.info.version) == schema.VERSION
    assert builder.info.splits["train"].num_examples == 12
    assert builder.info.splits["train"].num_shards == 3
    assert builder.info.features.to_json() == schema.features_dict().to_json()
    feats = builder.info.features
    eid = 0
    for path in reader.files:
        for payload in iter_records(path):
            ours = reader.read(eid)
            theirs = feats.deserialize_example_np(payload)
            steps = theirs["steps"]
            assert len(steps) == len(ours)
            for t in (0, len(ours) - 1):
                st = steps[t]
                np.testing.assert_array_equal(st["action"]["world_vector"], ours.steps["action/world_vector"][t])
                np.testing.assert_array_equal(st["action"]["terminate_episode"],
                                              ours.steps["action/terminate_episode"][t])
                assert st["observation"]["natural_language_instruction"].decode() == ours.instruction
                assert st["observation"]["image"].shape == (256, 320, 3)
                assert bool(st["is_first"]) == (t == 0) and bool(st["is_last"]) == (t == len(ours) - 1)
            assert bool(theirs["aspects"]["success"]) is True
            eid += 1
    assert eid == 12


def test_wire_codec_matches_protobuf():
    feats = {"a/f": np.array([1.5, -2.0, 3.25], np.float32), "a/i": np.array([0, 1, -7, 2**40], np.int64),
             "b": [b"xyz", b"", b"\xff\x00"], "s": ["caf\u00e9"], "empty": np.zeros(0, np.float32)}
    data = encode_example(feats)
    ex = tf_example_pb2.Example.FromString(data)
    assert list(ex.features.feature["a/i"].int64_list.value) == [0, 1, -7, 2**40]
    assert list(ex.features.feature["b"].bytes_list.value) == [b"xyz", b"", b"\xff\x00"]
    np.testing.assert_array_equal(ex.features.feature["a/f"].float_list.value, [1.5, -2.0, 3.25])
    # and back, from bytes the official protobuf library produced
    back = decode_example(ex.SerializeToString())
    np.testing.assert_array_equal(back["a/i"][1], [0, 1, -7, 2**40])
    assert back["b"] == ("bytes_list", [b"xyz", b"", b"\xff\x00"])
    assert back["s"][1] == ["caf\u00e9".encode()]


def test_wire_codec_accepts_unpacked_lists():
    ex = tf_example_pb2.Example()
    ex.features.feature["x"].float_list.value.extend([1.0, 2.0])
    ex.features.feature["y"].int64_list.value.extend([3, -4])
    # Re-encode the lists unpacked by hand: tag (1 << 3 | 5) per float, (1 << 3 | 0) per int.

    def field(num, wt, payload):
        return bytes([(num << 3) | wt]) + payload

    def ld(num, payload):
        return field(num, 2, bytes([len(payload)]) + payload)

    floats = b"".join(field(1, 5, struct.pack("<f", v)) for v in (1.0, 2.0))
    ints = field(1, 0, bytes([3])) + field(1, 0, bytes([0xFC] + [0xFF] * 8 + [0x01]))
    entry_x = ld(1, ld(1, b"x") + ld(2, ld(2, floats)))
    entry_y = ld(1, ld(1, b"y") + ld(2, ld(3, ints)))
    data = ld(1, entry_x + entry_y)
    assert tf_example_pb2.Example.FromString(data) == ex
    got = decode_example(data)
    np.testing.assert_array_equal(got["x"][1], [1.0, 2.0])
    np.testing.assert_array_equal(got["y"][1], [3, -4])


def test_tensorflow_reads_the_synthetic_dataset(synth_dir):
    """With TensorFlow installed (optional extra `tf`), TFDS's own as_dataset() reads our files."""
    pytest.importorskip("tensorflow")
    builder = tfds.builder_from_directory(str(synth_dir / schema.NAME / schema.VERSION))
    ds = builder.as_dataset(split="train[:2]")
    reader = RLDSReader(synth_dir)
    for i, ep in enumerate(tfds.as_numpy(ds)):
        steps = list(ep["steps"])
        assert len(steps) == len(reader.read(i))
        assert steps[0]["observation"]["image"].shape == (256, 320, 3)


def test_wire_decoder_fails_cleanly_on_damaged_bytes():
    """Any corruption of a record gives ProtoError/UnicodeDecodeError (-> DataError), never another crash."""
    data = bytearray(encode_example({"steps/a": np.arange(12, dtype=np.float32), "steps/b": [b"x" * 40, b"yz"],
                                     "steps/c": np.array([1, 0, 300, -2], np.int64)}))
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(300):
        d = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            d[int(rng.integers(len(d)))] = int(rng.integers(256))
        cut = int(rng.integers(len(d) // 2, len(d) + 1))
        try:
            decode_example(bytes(d[:cut]))
            outcomes.add("ok")
        except (ProtoError, UnicodeDecodeError):
            outcomes.add("error")
    assert "error" in outcomes  # and nothing else was raised
