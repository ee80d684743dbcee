"""Statistics (one pass, cached next to the data), ActionNormalizer, language table."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from selfflow_robot import constants as C
from selfflow_robot.data import schema
from selfflow_robot.data.language import load_language_table, save_language_table
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.statistics import (
    ActionNormalizer,
    DatasetStatistics,
    StateNormalizer,
    action_statistics,
    cache_paths,
    collect_language_table,
    compute_statistics,
    load_or_compute_statistics,
)
from selfflow_robot.data.synth import TASKS, instruction_embedding
from selfflow_robot.errors import DataError


@pytest.fixture
def data_copy(synth_dir, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(synth_dir, dst)
    return dst


def test_statistics_match_numpy_and_are_cached(data_copy):
    reader = RLDSReader(data_copy)
    stats, table = load_or_compute_statistics(reader)
    acts = np.concatenate([e.actions() for e in reader]).astype(np.float64)
    a = stats.action
    np.testing.assert_allclose(a["mean"], acts.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(a["std"], acts.std(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(a["q01"], np.quantile(acts, 0.01, axis=0), atol=1e-9)
    np.testing.assert_allclose(a["q99"], np.quantile(acts, 0.99, axis=0), atol=1e-9)
    np.testing.assert_allclose(a["min"], acts.min(0)) and np.testing.assert_allclose(a["max"], acts.max(0))
    assert stats.num_transitions == len(acts) and stats.num_trajectories == 12
    assert stats.terminate_fraction == pytest.approx(12 / len(acts))
    path = reader.builder_dir + "/" + C.STATS_FILE
    saved = json.loads(open(path).read())
    assert saved["action"]["mask"] == [True] * 6 + [False] and len(saved["action"]["q99"]) == 7
    assert set(table) == set(TASKS)
    for name, emb in table.items():
        np.testing.assert_allclose(emb, instruction_embedding(name))
    # cached: a second call reads the file; changed data invalidates it
    mtime = (data_copy / "fractal20220817_data/0.1.0" / C.STATS_FILE).stat().st_mtime_ns
    stats2, _ = load_or_compute_statistics(RLDSReader(data_copy))
    assert stats2.to_dict() == stats.to_dict()
    assert (data_copy / "fractal20220817_data/0.1.0" / C.STATS_FILE).stat().st_mtime_ns == mtime
    info_path = data_copy / "fractal20220817_data/0.1.0/dataset_info.json"
    info = json.loads(info_path.read_text())
    info["description"] = "changed"
    info_path.write_text(json.dumps(info))
    stats3, _ = load_or_compute_statistics(RLDSReader(data_copy))
    assert stats3.fingerprint != stats.fingerprint


def _stats():
    acts = np.random.default_rng(0).normal(0, 0.1, (1000, 7))
    acts[:, 6] = np.random.default_rng(1).choice([-1.0, 0.0, 1.0], 1000)
    acts[:, 5] = 0.25  # a constant dim
    return DatasetStatistics(action=action_statistics(acts), num_transitions=1000, num_trajectories=10)


def test_normalizer_maps_quantiles_and_passes_gripper_and_terminate():
    stats = _stats()
    n = ActionNormalizer(stats)
    q01, q99 = np.array(stats.action["q01"]), np.array(stats.action["q99"])
    x = np.stack([q01, q99, (q01 + q99) / 2, q99 + 5, q01 - 5]).astype(np.float32)
    x[:, 6] = [0.5, -1.0, 0.0, 1.0, -0.3]
    tok = n.normalize(x, np.array([0, 1, 0, 1, 0]))
    assert tok.shape == (5, 8) and tok.dtype == np.float32
    np.testing.assert_allclose(tok[0, :5], -1, atol=1e-5)
    np.testing.assert_allclose(tok[1, :5], 1, atol=1e-5)
    np.testing.assert_allclose(tok[2, :5], 0, atol=1e-5)
    np.testing.assert_array_equal(tok[3, :5], 1) and np.testing.assert_array_equal(tok[4, :5], -1)  # clipped
    np.testing.assert_array_equal(tok[:, 5], 0)  # constant dim -> 0
    np.testing.assert_array_equal(tok[:, 6], x[:, 6])  # gripper unchanged
    np.testing.assert_array_equal(tok[:, 7], [-1, 1, -1, 1, -1])
    raw, term = n.unnormalize(tok)
    np.testing.assert_allclose(raw[:3, :5], x[:3, :5], atol=1e-6)
    np.testing.assert_allclose(raw[:, 5], 0.25)
    np.testing.assert_array_equal(raw[:, 6], x[:, 6]) and np.testing.assert_array_equal(term, [0, 1, 0, 1, 0])


def test_normalizer_torch_matches_numpy_and_roundtrips():
    n = ActionNormalizer(_stats().to_dict())
    x = np.random.default_rng(2).normal(0, 0.1, (4, 3, 7)).astype(np.float32)
    x[..., 6] = np.clip(x[..., 6] * 10, -1, 1)
    term = (np.random.default_rng(3).random((4, 3)) > 0.7).astype(np.float32)
    tok_np = n.normalize(x, term)
    tok_t = n.normalize(torch.from_numpy(x), torch.from_numpy(term))
    assert isinstance(tok_t, torch.Tensor) and tok_t.shape == (4, 3, 8)
    np.testing.assert_allclose(tok_t.numpy(), tok_np, atol=1e-6)
    raw_t, term_t = n.unnormalize(tok_t)
    raw_np, term_np = n.unnormalize(tok_np)
    np.testing.assert_allclose(raw_t.numpy(), raw_np, atol=1e-6)
    np.testing.assert_array_equal(term_t.numpy(), term)
    inside = (tok_np[..., :5] > -1) & (tok_np[..., :5] < 1)
    np.testing.assert_allclose(raw_np[..., :5][inside], x[..., :5][inside], atol=1e-5)


def test_statistics_file_and_table_roundtrip(tmp_path):
    s = _stats()
    s.save(tmp_path / "s.json")
    n = ActionNormalizer.from_file(tmp_path / "s.json")
    assert n.stats.to_dict() == s.to_dict()
    (tmp_path / "bad.json").write_text('{"action": {}}')
    with pytest.raises(DataError, match="malformed"):
        DatasetStatistics.load(tmp_path / "bad.json")
    table = {"pick coke can": instruction_embedding("pick coke can"), "open drawer \u00e9": np.ones(512, np.float32)}
    save_language_table(table, tmp_path / C.LANGUAGE_TABLE_FILE)
    back = load_language_table(tmp_path / C.LANGUAGE_TABLE_FILE)
    assert set(back) == set(table)
    for k in table:
        np.testing.assert_array_equal(back[k], table[k])


def test_collect_language_table(synth_dir):
    table = collect_language_table(str(synth_dir))
    assert len(table) == 5
    embs = np.stack(list(table.values()))
    assert embs.shape == (5, 512) and np.linalg.matrix_rank(embs) == 5


def test_state_statistics_and_normaliser(synth_dir):
    reader = RLDSReader(synth_dir)
    stats, _ = compute_statistics(reader)
    states = np.concatenate([reader.read(i).state() for i in range(len(reader))])
    assert states.shape[1] == C.STATE_DIM
    np.testing.assert_allclose(stats.state["q99"], np.quantile(states.astype(np.float64), 0.99, axis=0), atol=1e-6)
    again = DatasetStatistics.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again.state == stats.state and again.version == stats.version
    norm = StateNormalizer(stats)
    q01, q99 = np.asarray(stats.state["q01"], np.float32), np.asarray(stats.state["q99"], np.float32)
    live = q99 - q01 > 1e-6
    np.testing.assert_allclose(norm.normalize(q01)[live], -1.0, atol=1e-5)
    np.testing.assert_allclose(norm.normalize(q99)[live], 1.0, atol=1e-5)
    assert np.all(norm.normalize(q01)[~live] == 0.0)
    # q and -q are the same rotation: the same input to the model; torch and numpy agree
    flipped = states[:5].copy()
    flipped[:, schema.QUAT] *= -1
    np.testing.assert_allclose(norm.normalize(flipped), norm.normalize(states[:5]), atol=1e-6)
    np.testing.assert_allclose(norm.normalize(torch.from_numpy(flipped)).numpy(), norm.normalize(states[:5]),
                               atol=1e-6)
    # data without proprioception: no state statistics, and a clear error for a state model
    no_state = DatasetStatistics(action=stats.action, num_transitions=1, num_trajectories=1)
    with pytest.raises(DataError, match="model.state_dim=0"):
        StateNormalizer(no_state)
    assert "state" not in no_state.to_dict()


def test_old_statistics_cache_is_recomputed(data_copy):
    reader = RLDSReader(data_copy)
    stats, _ = load_or_compute_statistics(reader)
    path = cache_paths(reader)[0]
    old = json.loads(path.read_text())
    old["version"] = 1
    old.pop("state")
    path.write_text(json.dumps(old))
    again, _ = load_or_compute_statistics(reader)
    assert again.state == stats.state
