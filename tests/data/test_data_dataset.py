"""RT1Windows: episode-level splits, disjoint and complete sharding, exact resume, collate."""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from selfflow_robot import constants as C
from selfflow_robot.data.dataset import RT1Windows, make_loader, split_episodes
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.windows import WindowConfig
from selfflow_robot.errors import ConfigError, DataError

SMALL = WindowConfig(context_frames=2, horizon=3, height=16)


@pytest.fixture(scope="module")
def reader(synth_dir):
    return RLDSReader(synth_dir)


def test_split_is_episode_level_disjoint_and_seeded(reader):
    s = split_episodes(reader.episode_ids, 0.25, seed=3)
    assert len(s["val"]) == 3 and len(s["train"]) == 9
    assert not set(s["val"]) & set(s["train"]) and set(s["val"]) | set(s["train"]) == set(range(12))
    assert s == split_episodes(reader.episode_ids, 0.25, seed=3)
    assert s["val"] != split_episodes(reader.episode_ids, 0.25, seed=4)["val"]
    train = RT1Windows(reader, SMALL, split="train", val_fraction=0.25, seed=3, infinite=False)
    val = RT1Windows(reader, SMALL, split="val", val_fraction=0.25, seed=3)
    assert not val.infinite and not val.shuffle
    tr_eps = {int(w[C.EPISODE_ID]) for w in train}
    va_eps = {int(w[C.EPISODE_ID]) for w in val}
    assert tr_eps == set(s["train"]) and va_eps == set(s["val"])


def _lengths(reader):
    return {e.episode_id: len(e) for e in reader}


@pytest.mark.parametrize("world,workers,even", [(1, 1, False), (2, 1, True), (2, 2, False), (3, 2, True),
                                                (5, 1, False), (5, 1, True)])
def test_shards_disjoint_and_complete(reader, world, workers, even):
    lengths = _lengths(reader)
    seen: dict[int, Counter] = {}
    per_rank_eps = []
    for rank in range(world):
        ds = RT1Windows(reader, SMALL, split="all", shuffle=True, infinite=False, rank=rank, world_size=world,
                        shuffle_episodes=2, even_shards=even)
        loader = make_loader(ds, batch_size=4, num_workers=workers if workers > 1 else 0)
        eps = Counter()
        for batch in loader:
            for e, c in zip(batch[C.EPISODE_ID].tolist(), batch[C.STEP_INDEX].tolist()):
                eps[(e, c)] += 1
        assert all(v == 1 for v in eps.values())  # no window twice
        per_rank_eps.append({e for e, _ in eps})
        seen[rank] = eps
    for a, b in itertools.combinations(per_rank_eps, 2):
        assert not a & b  # no episode on two ranks
    G = world * workers
    covered = set().union(*per_rank_eps)
    # even shards: the epoch is trimmed to a multiple of G (equal work per rank); otherwise complete
    assert len(covered) == (12 - 12 % G if even else 12)
    if even:
        assert len({len(e) for e in per_rank_eps}) == 1
    for e in covered:  # every window of every covered episode, exactly once
        assert sum(1 for r in seen.values() for (ee, _) in r if ee == e) == lengths[e] - 1


def test_infinite_epochs_reshuffle_and_cover(reader):
    ds = RT1Windows(reader, SMALL, split="all", shuffle=True, infinite=True, shuffle_episodes=3)
    n_epoch = sum(len(e) - 1 for e in reader)
    it = iter(ds)
    first = [(int(w[C.EPISODE_ID]), int(w[C.STEP_INDEX])) for w in itertools.islice(it, n_epoch)]
    second = [(int(w[C.EPISODE_ID]), int(w[C.STEP_INDEX])) for w in itertools.islice(it, n_epoch)]
    assert sorted(first) == sorted(second) and len(set(first)) == n_epoch
    assert first != second


def _ids(batch):
    return list(zip(batch[C.EPISODE_ID].tolist(), batch[C.STEP_INDEX].tolist()))


@pytest.mark.parametrize("workers", [0, 2])
def test_exact_resume_through_loader(reader, workers):
    def fresh():
        ds = RT1Windows(reader, SMALL, split="train", val_fraction=0.2, seed=5, shuffle_episodes=2)
        return make_loader(ds, batch_size=3, num_workers=workers)

    loader = fresh()
    it = iter(loader)
    for _ in range(9):
        next(it)
    state = loader.state_dict()
    expected = [next(it) for _ in range(30)]  # crosses an epoch boundary (train has ~60 windows)
    del it
    resumed = fresh()
    resumed.load_state_dict(state)
    it2 = iter(resumed)
    got = [next(it2) for _ in range(30)]
    assert [_ids(b) for b in got] == [_ids(b) for b in expected]
    assert torch.equal(got[-1][C.FUTURE_FRAMES], expected[-1][C.FUTURE_FRAMES])
    del it2
    other = make_loader(RT1Windows(reader, SMALL, split="train", val_fraction=0.2, seed=5), 3,
                        num_workers=1 if workers == 2 else 2)
    with pytest.raises(ConfigError, match="same world size and num_workers"):
        other.load_state_dict(state)


def test_exact_resume_direct_iteration(reader):
    ds = RT1Windows(reader, SMALL, split="all", seed=1, shuffle=True, infinite=True, shuffle_episodes=4)
    it = iter(ds)
    for _ in range(13):
        next(it)
    state = ds.state_dict()
    expected = [(int(w[C.EPISODE_ID]), int(w[C.STEP_INDEX])) for w in itertools.islice(it, 100)]
    ds2 = RT1Windows(reader, SMALL, split="all", seed=1, shuffle=True, infinite=True, shuffle_episodes=4)
    ds2.load_state_dict(state)
    got = [(int(w[C.EPISODE_ID]), int(w[C.STEP_INDEX])) for w in itertools.islice(iter(ds2), 100)]
    assert got == expected


def test_collate_types(reader):
    batch = next(iter(make_loader(RT1Windows(reader, SMALL, split="all"), batch_size=5)))
    assert batch[C.CONTEXT_FRAMES].shape == (5, 2, 16, 20, 3) and batch[C.CONTEXT_FRAMES].dtype == torch.uint8
    assert batch[C.FUTURE_FRAMES].shape == (5, 3, 16, 20, 3)
    assert batch[C.ACTIONS_RAW].shape == (5, 3, 7) and batch[C.ACTIONS_RAW].dtype == torch.float32
    assert batch[C.TERMINATE_FLAG].dtype == torch.float32 and batch[C.ACTION_PAD].dtype == torch.bool
    assert batch[C.LANGUAGE_EMBEDDING].shape == (5, 512)
    assert batch[C.EPISODE_ID].dtype == torch.int64 and len(batch[C.INSTRUCTION]) == 5
    assert "_position" not in batch


def test_too_many_consumers_fails_instead_of_hanging(reader):
    ds = RT1Windows(reader, SMALL, split="val", val_fraction=0.1, infinite=True, rank=1, world_size=2)
    with pytest.raises(DataError, match="too few for 2 consumers"):
        next(iter(ds))


def test_worker_error_is_one_clear_line(make_dataset, good_features):
    rng = np.random.default_rng(0)
    feats = [good_features(rng) for _ in range(4)]
    feats[2]["steps/action/world_vector"][1, 0] = np.nan
    root = make_dataset(feats)
    loader = make_loader(RT1Windows(root, SMALL, split="all", shuffle=False, infinite=False), 2, num_workers=2)
    with pytest.raises(DataError) as ei:
        list(loader)
    assert "\n" not in str(ei.value) and "episode 2" in str(ei.value) and "world_vector" in str(ei.value)
    skip = make_loader(RT1Windows(root, SMALL, split="all", infinite=False, skip_bad_episodes=True), 2, num_workers=2)
    eps = {e for b in skip for e in b[C.EPISODE_ID].tolist()}
    assert eps == {0, 1, 3}
