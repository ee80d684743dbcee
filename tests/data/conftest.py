"""Fixtures for the data tests: tiny real datasets in the fractal20220817_data schema, made here."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from selfflow_robot.data.synth import TASKS, SynthConfig, synth_episode, write_synthetic
from selfflow_robot.data.writer import DatasetWriter, episode_to_features


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """12 synthetic episodes (6-9 steps, 256x320 JPEG) in 3 shards; returns the data_dir root."""
    root = tmp_path_factory.mktemp("synth")
    write_synthetic(SynthConfig(output_dir=str(root), episodes=12, min_steps=6, max_steps=9, shards=3, seed=1))
    return root


def _good_features(rng: np.random.Generator, length: int = 5, size=(256, 320)) -> dict:
    names = list(TASKS)
    ep = synth_episode(rng, names[int(rng.integers(len(names)))], length, size=size)
    return episode_to_features(ep, validate=False)


@pytest.fixture
def good_features() -> Callable[..., dict]:
    """good_features(rng, length=5) -> serialized-layout features of one valid synthetic episode."""
    return _good_features


@pytest.fixture
def make_dataset(tmp_path) -> Callable[..., Path]:
    """make_dataset(features_list, episodes_per_shard=100) -> data_dir root with those raw records."""
    counter = [0]

    def make(features: list[dict], episodes_per_shard: int = 100) -> Path:
        counter[0] += 1
        root = tmp_path / f"ds{counter[0]}"
        w = DatasetWriter(root, episodes_per_shard=episodes_per_shard, validate=False)
        for f in features:
            w.write_features(f)
        w.close()
        return root

    return make
