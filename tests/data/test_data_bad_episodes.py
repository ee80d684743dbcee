"""Bad data inside otherwise well-formed RLDS records: named (file, episode, step) and skipped when asked.

Each test writes a real tiny dataset with one damaged episode and reads it through the real reader,
windows and loader (issue 22, items 9 and 12).
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from selfflow_robot import constants as C
from selfflow_robot.cli import main as cli_main
from selfflow_robot.data import schema
from selfflow_robot.data.dataset import RT1Windows, make_loader
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.windows import WindowConfig
from selfflow_robot.errors import DataError

SMALL = WindowConfig(context_frames=2, horizon=3, height=16)
IMAGE_KEY = f"steps/{schema.IMAGE}"


def corrupt_body(jpeg: bytes) -> bytes:
    """The same JPEG with its header intact (SOI .. SOS) and its entropy-coded body replaced by noise."""
    sos = jpeg.index(b"\xff\xda")
    noise = np.random.default_rng(0).integers(0, 256, len(jpeg) - sos - 20, dtype=np.uint8).tobytes()
    return jpeg[:sos + 20] + noise


def _dataset(make_dataset, good_features, damage, n: int = 4, bad: int = 2):
    rng = np.random.default_rng(5)
    feats = [good_features(rng, length=6) for _ in range(n)]
    damage(feats[bad])
    return make_dataset(feats)


def _windows_episodes(ds) -> set[int]:
    return {int(w[C.EPISODE_ID]) for w in ds}


def test_corrupt_jpeg_body_is_named_and_skipped(make_dataset, good_features):
    def damage(f):
        f[IMAGE_KEY][3] = corrupt_body(f[IMAGE_KEY][3])

    root = _dataset(make_dataset, good_features, damage)
    reader = RLDSReader(root)
    assert len(reader.read(2)) == 6  # the header is fine: the reader's header check passes it
    with pytest.raises(DataError) as ei:
        list(RT1Windows(root, SMALL, split="all", shuffle=False, infinite=False))
    msg = str(ei.value)
    assert "\n" not in msg
    assert re.search(r"fractal20220817_data-train\.tfrecord-\d+-of-\d+, episode 2 \(record 2\)", msg), msg
    assert "key 'steps/observation/image'" in msg and "step 3" in msg and "skip-bad-episodes" in msg
    skipping = RT1Windows(root, SMALL, split="all", shuffle=False, infinite=False, skip_bad_episodes=True)
    assert _windows_episodes(skipping) == {0, 1, 3}
    assert skipping.reader.num_skipped == 1 and "step 3" in skipping.reader.skipped[0]
    # the same through DataLoader workers: one line out of the worker, or skipped there
    with pytest.raises(DataError, match=r"episode 2 .*step 3"):
        list(make_loader(RT1Windows(root, SMALL, split="all", shuffle=False, infinite=False), 2, num_workers=2))
    skip = make_loader(RT1Windows(root, SMALL, split="all", infinite=False, skip_bad_episodes=True), 2, num_workers=2)
    assert {e for b in skip for e in b[C.EPISODE_ID].tolist()} == {0, 1, 3}


def test_training_stream_skips_a_corrupt_frame_and_continues(make_dataset, good_features):
    def damage(f):
        f[IMAGE_KEY][0] = corrupt_body(f[IMAGE_KEY][0])

    root = _dataset(make_dataset, good_features, damage)
    ds = RT1Windows(root, SMALL, split="all", infinite=True, skip_bad_episodes=True, shuffle_episodes=2)
    it = iter(ds)
    seen = {int(next(it)[C.EPISODE_ID]) for _ in range(60)}  # more than two epochs of windows
    assert seen == {0, 1, 3}
    assert ds.reader.skipped and "step 0" in ds.reader.skipped[0]


def test_non_utf8_instruction_is_refused_not_replaced(make_dataset, good_features):
    key = f"steps/{schema.INSTRUCTION}"

    def damage(f):
        f[key] = [s.encode() for s in f[key]]
        f[key][4] = b"pick the \xff\xfe cube"

    root = _dataset(make_dataset, good_features, damage)
    with pytest.raises(DataError) as ei:
        list(RLDSReader(root))
    msg = str(ei.value)
    assert "episode 2" in msg and f"key '{key}'" in msg and "step 4" in msg and "not UTF-8" in msg
    eps = list(RLDSReader(root, skip_bad_episodes=True))
    assert [e.episode_id for e in eps] == [0, 1, 3]
    assert not any("\ufffd" in e.instruction for e in eps)


@pytest.mark.parametrize("value", [1e30, -250.0])
def test_implausible_action_is_refused(make_dataset, good_features, value):
    key = f"steps/{schema.WORLD_VECTOR}"

    def damage(f):
        f[key] = f[key].copy()
        f[key][3, 1] = value

    root = _dataset(make_dataset, good_features, damage)
    with pytest.raises(DataError) as ei:
        list(RLDSReader(root))
    msg = str(ei.value)
    assert "episode 2" in msg and f"key '{key}'" in msg and "step 3" in msg and "100" in msg
    r = RLDSReader(root, skip_bad_episodes=True)
    assert [e.episode_id for e in r] == [0, 1, 3] and r.num_skipped == 1


@pytest.mark.parametrize("splits,why", [
    (None, r"'splits' is null, not a list of split objects"),
    ([{"name": "train", "shardLengths": ["abc"]}], r"shardLengths\[0\] is \"abc\", not an episode count"),
    ([{"name": "train", "shardLengths": ["-1"]}], r"shardLengths\[0\] is \"-1\""),
    ([{"name": "train", "shardLengths": "12"}], r"shardLengths \"12\", not a list"),
    (["train"], r"not a list of split objects"),
])
def test_malformed_dataset_info_splits_give_one_clear_error(make_dataset, good_features, capsys, splits, why):
    root = make_dataset([good_features(np.random.default_rng(0))])
    info_path = root / schema.NAME / schema.VERSION / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["splits"] = splits
    info_path.write_text(json.dumps(info))
    with pytest.raises(DataError, match=why) as ei:
        RLDSReader(root)
    assert str(info_path) in str(ei.value)
    assert cli_main(["data", "stats", f"path={root}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(info_path) in err and "Traceback" not in err
