"""Action statistics, the action normaliser, and the instruction -> embedding table.

`compute_statistics` makes one pass over a dataset's episodes (actions only; no image is
decoded) and returns mean/std/min/max/q01/q99 of the 7-D raw RT-1 action per dim, plus the
instruction table; `load_or_compute_statistics` caches them next to the data as
`dataset_statistics.json` (+ `language_table.safetensors`), or under
`~/.cache/selfflow_robot/` when the data dir is read-only or remote.

With proprioception in every episode, `state` holds the same statistics of the 8-D state
(`schema.STATE_KEYS`) and `StateNormalizer` maps it to the model's state input.

`ActionNormalizer` maps raw actions to the model's 8-D action token and back:
dims 0-5 (world_vector, rotation_delta): clip(2 (x - q01) / (q99 - q01) - 1, -1, 1)
(0 where q99 == q01); dim 6 (relative gripper, already in [-1, 1]) passes through, as in
Octo/OpenVLA's mask; dim 7 = terminate mapped {0, 1} -> {-1, +1}. Training and the policy
both use it, with the statistics shipped inside the checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from selfflow_robot import constants as C
from selfflow_robot.config import structured
from selfflow_robot.data import schema
from selfflow_robot.data.backend import open_reader
from selfflow_robot.data.language import load_language_table, save_language_table
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.errors import DataError
from selfflow_robot.files import atomic_write_bytes

log = logging.getLogger(__name__)

STATS_VERSION = 2  # 2: + state statistics (caches of version 1 are recomputed)
NORMALIZATION_MASK = [True] * 6 + [False]        # gripper (dim 6) is not normalised
STATE_NAMES = ["tool_x", "tool_y", "tool_z", "tool_qx", "tool_qy", "tool_qz", "tool_qw", "gripper_closed"]
ACTION_NAMES = ["world_vector_x", "world_vector_y", "world_vector_z",
                "rotation_delta_roll", "rotation_delta_pitch", "rotation_delta_yaw", "gripper_closedness_action"]
_EPS = 1e-8
STATE_CLIP = 1.5


@dataclass
class DatasetStatistics:
    """Per-dim statistics of the 7-D raw action (`action`), terminate rate and counts."""

    action: dict[str, list[float]]
    num_transitions: int
    num_trajectories: int
    terminate_fraction: float = 0.0
    num_skipped: int = 0
    fingerprint: str = ""
    state: dict[str, list[float]] | None = None   # statistics of the 8-D proprioception, if every episode has it
    version: int = STATS_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON layout (Octo/OpenVLA-like: `action.{mean,std,min,max,q01,q99,mask}`)."""
        return {"version": STATS_VERSION, "dataset": schema.NAME, "dataset_version": schema.VERSION,
                "action": {**self.action, "mask": NORMALIZATION_MASK, "names": ACTION_NAMES},
                "terminate": {"fraction": self.terminate_fraction},
                "num_transitions": self.num_transitions, "num_trajectories": self.num_trajectories,
                "num_skipped": self.num_skipped, "fingerprint": self.fingerprint,
                **({"state": {**self.state, "names": STATE_NAMES}} if self.state else {}), **self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> DatasetStatistics:
        """Inverse of `to_dict` (raises `DataError` when keys are missing)."""
        try:
            action = {k: [float(x) for x in d["action"][k]] for k in ("mean", "std", "min", "max", "q01", "q99")}
            for k, v in action.items():
                if len(v) != C.RAW_ACTION_DIM:
                    raise DataError(f"dataset statistics: action.{k} has {len(v)} dims, expected {C.RAW_ACTION_DIM}")
            state = None
            if d.get("state"):
                state = {k: [float(x) for x in d["state"][k]] for k in ("mean", "std", "min", "max", "q01", "q99")}
                if any(len(v) != C.STATE_DIM for v in state.values()):
                    raise DataError(f"dataset statistics: state has {len(state['mean'])} dims, expected "
                                    f"{C.STATE_DIM}")
            return cls(action=action, num_transitions=int(d["num_transitions"]),
                       num_trajectories=int(d["num_trajectories"]),
                       terminate_fraction=float(d.get("terminate", {}).get("fraction", 0.0)),
                       num_skipped=int(d.get("num_skipped", 0)), fingerprint=str(d.get("fingerprint", "")),
                       state=state, version=int(d.get("version", 1)))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"dataset statistics are malformed ({e!r}); recompute them with "
                            "`selfflow-robot data stats path=DATA force=true`") from e

    def save(self, path: str | Path) -> None:
        """Write JSON atomically."""
        atomic_write_bytes(Path(path), json.dumps(self.to_dict(), indent=2).encode())

    @classmethod
    def load(cls, path: str | Path) -> DatasetStatistics:
        """Read a `dataset_statistics.json`."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"{p}: no dataset statistics file; compute it with `selfflow-robot data stats path=DATA`")
        try:
            return cls.from_dict(json.loads(p.read_text()))
        except ValueError as e:
            raise DataError(f"{p}: not valid JSON ({e}); recompute with `selfflow-robot data stats force=true`") from e


def dataset_fingerprint(reader: RLDSReader) -> str:
    """A hash of dataset_info.json and the shard sizes (changes when the data changes)."""
    h = hashlib.sha256(json.dumps(reader.info, sort_keys=True).encode())
    for f in reader.files:
        size = os.path.getsize(f) if "://" not in f else 0
        h.update(f"{os.path.basename(f)}:{size}".encode())
    return h.hexdigest()[:16]


def action_statistics(actions: np.ndarray, dim: int = C.RAW_ACTION_DIM) -> dict[str, list[float]]:
    """mean/std/min/max/q01/q99 of (N, dim) values (actions, or states with dim=8), per dim."""
    a = np.asarray(actions, np.float64)
    if a.ndim != 2 or a.shape[1] != dim or len(a) == 0:
        raise DataError(f"need a non-empty (N, {dim}) array, got {a.shape}")
    q01, q99 = np.quantile(a, [0.01, 0.99], axis=0)
    return {"mean": a.mean(0).tolist(), "std": a.std(0).tolist(), "min": a.min(0).tolist(),
            "max": a.max(0).tolist(), "q01": q01.tolist(), "q99": q99.tolist()}


def compute_statistics(reader: RLDSReader, progress: bool = False
                       ) -> tuple[DatasetStatistics, dict[str, np.ndarray]]:
    """One pass over all episodes: (statistics, instruction -> 512-d embedding table)."""
    acts, terms, states, table = [], [], [], {}
    has_state = True
    reader.check_images, check = False, reader.check_images  # actions only: skip the frame header checks
    try:
        ids = range(len(reader))
        if progress:
            ids = tqdm(ids, desc="statistics", unit="ep")
        n_eps = 0
        for i in ids:
            ep = reader.read(i)
            if ep is None:
                continue
            n_eps += 1
            acts.append(ep.actions())
            terms.append(ep.terminate())
            has_state = has_state and all(k in ep.steps for k in schema.STATE_KEYS)
            if has_state:
                states.append(ep.state())
            table.setdefault(ep.instruction, ep.language_embedding.astype(np.float32))
    finally:
        reader.check_images = check
    if not acts:
        raise DataError(f"{reader.builder_dir}: no readable episode to compute statistics from")
    a = np.concatenate(acts)
    stats = DatasetStatistics(action=action_statistics(a), num_transitions=len(a), num_trajectories=n_eps,
                              terminate_fraction=float(np.concatenate(terms).mean()),
                              num_skipped=reader.num_skipped, fingerprint=dataset_fingerprint(reader),
                              state=action_statistics(np.concatenate(states), C.STATE_DIM) if has_state else None)
    return stats, table


# ------------------------------------------------------------------ language table


def collect_language_table(source: str | RLDSReader, progress: bool = False) -> dict[str, np.ndarray]:
    """The instruction -> 512-d embedding table of a dataset (the policy's language lookup)."""
    reader = source if isinstance(source, RLDSReader) else RLDSReader(source)
    return load_or_compute_statistics(reader, progress=progress)[1]


# ------------------------------------------------------------------ caching


def cache_paths(reader: RLDSReader) -> tuple[Path, Path]:
    """(stats path, language table path): next to the data if writable, else in ~/.cache/selfflow_robot."""
    d = reader.builder_dir
    if "://" not in d and os.access(d, os.W_OK):
        base = Path(d)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "selfflow_robot"
        base = root / hashlib.sha256(d.encode()).hexdigest()[:16]
    return base / C.STATS_FILE, base / C.LANGUAGE_TABLE_FILE


def load_or_compute_statistics(source: str | RLDSReader, force: bool = False, progress: bool = False
                               ) -> tuple[DatasetStatistics, dict[str, np.ndarray]]:
    """Cached statistics + language table; recomputed when missing, stale (fingerprint) or `force`."""
    reader = source if isinstance(source, RLDSReader) else RLDSReader(source)
    stats_path, table_path = cache_paths(reader)
    fp = dataset_fingerprint(reader)
    if not force and stats_path.is_file() and table_path.is_file():
        try:
            stats = DatasetStatistics.load(stats_path)
            if stats.fingerprint == fp and stats.version == STATS_VERSION:
                return stats, load_language_table(table_path)
            log.info("%s is stale (data or format changed); recomputing", stats_path)
        except DataError as e:
            log.warning("ignoring unreadable cached statistics: %s", e)
    stats, table = compute_statistics(reader, progress=progress)
    stats.save(stats_path)
    save_language_table(table, table_path)
    return stats, table


# ------------------------------------------------------------------ normaliser


class ActionNormalizer:
    """Raw RT-1 action (..., 7) + terminate (...) <-> normalised 8-D action token (..., 8).

    Works on numpy arrays and torch tensors alike (returns the same kind it gets).
    """

    def __init__(self, stats: DatasetStatistics | dict):
        if isinstance(stats, dict):
            stats = DatasetStatistics.from_dict(stats)
        self.stats = stats
        self.q01 = np.asarray(stats.action["q01"], np.float32)
        self.q99 = np.asarray(stats.action["q99"], np.float32)
        self.mask = np.asarray(NORMALIZATION_MASK, bool)
        self.span = self.q99 - self.q01
        self.constant = self.span < _EPS     # dims without spread normalise to 0

    @classmethod
    def from_file(cls, path: str | Path) -> ActionNormalizer:
        """Load from a `dataset_statistics.json` (a checkpoint's or the dataset's)."""
        return cls(DatasetStatistics.load(path))

    def _consts(self, like):
        if isinstance(like, np.ndarray):
            return self.q01, self.span, self.mask, self.constant

        kw = dict(device=like.device)
        return (torch.as_tensor(self.q01, dtype=like.dtype, **kw), torch.as_tensor(self.span, dtype=like.dtype, **kw),
                torch.as_tensor(self.mask, **kw), torch.as_tensor(self.constant, **kw))

    def normalize(self, actions, terminate=None):
        """(..., 7) raw actions [+ (...) terminate in {0, 1}] -> (..., 8) tokens in [-1, 1]."""
        is_np = isinstance(actions, np.ndarray)
        if is_np:
            actions = actions.astype(np.float32, copy=False)
        q01, span, mask, const = self._consts(actions)
        norm = 2.0 * (actions - q01) / (span + _EPS) - 1.0
        if is_np:
            norm = np.clip(norm, -1.0, 1.0)
            norm = np.where(const, 0.0, norm)
            out = np.where(mask, norm, np.clip(actions, -1.0, 1.0)).astype(np.float32)
            term = np.zeros(actions.shape[:-1], np.float32) if terminate is None else np.asarray(terminate, np.float32)
            return np.concatenate([out, (2.0 * (term > 0.5) - 1.0)[..., None].astype(np.float32)], -1)

        norm = norm.clamp(-1.0, 1.0).masked_fill(const, 0.0)
        out = torch.where(mask, norm, actions.clamp(-1.0, 1.0))
        term = torch.zeros(actions.shape[:-1], dtype=actions.dtype, device=actions.device) if terminate is None \
            else terminate.to(actions.dtype)
        return torch.cat([out, (2.0 * (term > 0.5).to(actions.dtype) - 1.0)[..., None]], -1)

    def unnormalize(self, tokens):
        """(..., 8) tokens -> ((..., 7) raw actions, (...) terminate in {0., 1.}); inputs are clipped to [-1, 1]."""
        is_np = isinstance(tokens, np.ndarray)
        q01, span, mask, const = self._consts(tokens)
        if is_np:
            t = np.clip(tokens.astype(np.float32, copy=False), -1.0, 1.0)
            raw = (t[..., :C.RAW_ACTION_DIM] + 1.0) / 2.0 * span + q01
            raw = np.where(const, q01, raw)
            actions = np.where(mask, raw, t[..., :C.RAW_ACTION_DIM]).astype(np.float32)
            return actions, (t[..., C.TERMINATE] > 0).astype(np.float32)
        t = tokens.clamp(-1.0, 1.0)
        raw = (t[..., :C.RAW_ACTION_DIM] + 1.0) / 2.0 * span + q01
        raw = torch_where(const, q01.expand_as(raw), raw)
        actions = torch_where(mask, raw, t[..., :C.RAW_ACTION_DIM])
        return actions, (t[..., C.TERMINATE] > 0).to(tokens.dtype)

    def to_dict(self) -> dict:
        """The statistics as JSON-ready dict (what goes into a checkpoint)."""
        return self.stats.to_dict()


class StateNormalizer:
    """Raw 8-D proprioception (..., 8) -> the model's state input: 2 (x - q01) / (q99 - q01) - 1, clipped to
    [-STATE_CLIP, STATE_CLIP] (a little room past the training range), 0 where q99 == q01. numpy or torch."""

    def __init__(self, stats: DatasetStatistics | dict):
        if isinstance(stats, dict):
            stats = DatasetStatistics.from_dict(stats)
        if stats.state is None:
            raise DataError("the dataset statistics have no proprioception (`state`): the data does not store "
                            f"{' and '.join(schema.STATE_KEYS)} in every episode; train with model.state_dim=0 "
                            "and model.aux_state_dim=0")
        self.q01 = np.asarray(stats.state["q01"], np.float32)
        self.span = np.asarray(stats.state["q99"], np.float32) - self.q01
        self.constant = self.span < _EPS

    def normalize(self, state):
        """(..., 8) raw -> (..., 8) normalised (same kind as the input; quaternion sign made canonical).

        One numpy implementation: a tensor goes through it on the host (normalise before moving a batch to
        the accelerator, so this costs no device round trip), and comes back on its own device and dtype."""
        if not isinstance(state, np.ndarray):
            out = self.normalize(state.detach().cpu().numpy())
            return torch.from_numpy(out).to(device=state.device, dtype=state.dtype)
        state = schema.canonical_state(state)
        out = np.clip(2.0 * (state - self.q01) / (self.span + _EPS) - 1.0, -STATE_CLIP, STATE_CLIP)
        return np.where(self.constant, 0.0, out).astype(np.float32)


def torch_where(cond, a, b):
    """`torch.where` (kept as a function so numpy-only callers never import torch)."""
    return torch.where(cond, a, b)


# ------------------------------------------------------------------ CLI


@dataclass
class StatsConfig:
    """`selfflow-robot data stats` options.

    Args:
        path: dataset (builder dir or its parent).
        force: recompute even when a fresh cache exists.
        skip_bad_episodes: skip malformed episodes (counted in the output) instead of stopping.
        backend: episode reader: auto (tf for gs://, else python) | python | tf.
    """

    path: str = "data/synth"
    force: bool = False
    skip_bad_episodes: bool = False
    backend: str = "auto"


def main(cfg: DictConfig) -> int:
    """CLI entry: compute (or show cached) `dataset_statistics.json` for a dataset."""
    sc = structured(StatsConfig, cfg)

    reader = open_reader(sc.path, sc.backend, skip_bad_episodes=sc.skip_bad_episodes)
    stats, table = load_or_compute_statistics(reader, force=sc.force, progress=True)
    stats_path, table_path = cache_paths(reader)
    a = stats.action
    print(f"{stats.num_trajectories} episodes, {stats.num_transitions} steps, {len(table)} instructions; "
          f"terminate fraction {stats.terminate_fraction:.4f}")
    if stats.num_skipped:
        print(f"skipped {stats.num_skipped} bad episode(s)")
    print(f"{'dim':<28}{'mean':>10}{'std':>10}{'q01':>10}{'q99':>10}{'min':>10}{'max':>10}")
    rows = [(n, a, i) for i, n in enumerate(ACTION_NAMES)]
    rows += [(f"state/{n}", stats.state, i) for i, n in enumerate(STATE_NAMES)] if stats.state else []
    for name, d, i in rows:
        print(f"{name:<28}" + "".join(f"{d[k][i]:>10.4f}" for k in ("mean", "std", "q01", "q99", "min", "max")))
    if not stats.state:
        print("no proprioception statistics: some episode lacks " + " / ".join(schema.STATE_KEYS))
    print(f"wrote {stats_path} and {table_path}")
    return 0
