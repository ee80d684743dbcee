"""RT1Windows: a sharded, resumable torch IterableDataset of training windows, plus collate.

Episodes are split into train/val at the episode level by `seed` (`val_fraction` of them
go to val). Each epoch the split's episodes are permuted (seed, epoch) and dealt out to
"consumers" = torch.distributed ranks x DataLoader workers: consumer g of G gets
`order[g::G]` (after trimming the order to a multiple of G when `even_shards`), so no
episode is read twice per epoch across ranks and workers, and together they cover it.
Each consumer reads its episodes in blocks of `shuffle_episodes`, cuts every window of the
block and yields them in a seeded random order.

Position: consumer g is at (epoch, block, offset). `make_loader` wraps a DataLoader and
records, per consumer, the position after the last batch the trainer actually received
(prefetched batches do not count); its `state_dict()` resumes exactly. Used directly
(no DataLoader workers), `RT1Windows.state_dict()` does the same.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from selfflow_robot import constants as C
from selfflow_robot.data.backend import BACKENDS, open_reader
from selfflow_robot.data.latent_cache import DTYPES, LatentCache
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.windows import EpisodeWindows, WindowConfig
from selfflow_robot.errors import ConfigError, DataError

log = logging.getLogger(__name__)

POSITION = "_position"          # per-sample / per-batch position key (removed by WindowLoader)
SPLITS = ("train", "val", "all")


@dataclass
class DataConfig:
    """Which data to read and how to cut it (the `data` config group).

    Args:
        path: a fractal20220817_data/0.1.0 builder dir, its parent data_dir, or a gs:// builder dir.
        val_fraction: share of episodes held out for validation (episode-level split).
        seed: seed of the split and the shuffles.
        shuffle_episodes: episodes whose windows are mixed together (bigger = better mixing, more memory).
        skip_bad_episodes: skip (and count) malformed episodes instead of stopping with an error.
        decode_threads: JPEG decode threads per process (0 = all cores in-process, 1 per DataLoader worker).
        num_workers: DataLoader worker processes.
        backend: episode reader: `python` (TF-free), `tf` (tensorflow-datasets + tf.data, the `tf` extra) or
            `auto` (`tf` for gs:// paths, else `python`); both give identical episodes and windows.
        latents: the latent cache of the training windows (`data/latent_cache.py`): `auto` = for the latent
            codecs (`ae`, `vae`), every frame is encoded once into `<output_dir>/latent_cache` at the start of
            training and the train split reads tokens from it (no JPEG decode, no codec pass per step); `off` =
            decode and encode every step; a folder = the cache there (shared between runs; rebuilt when the
            data or the codec changed), for any codec. Validation always reads frames.
        latents_dtype: `float32` (the tokens exactly as the codec gives them) or `float16` (half the disk).
        window: how windows are cut (k, H and image size usually come from the model config).
    """

    path: str = "data/synth"
    val_fraction: float = 0.05
    seed: int = 0
    shuffle_episodes: int = 8
    skip_bad_episodes: bool = False
    decode_threads: int = 0
    num_workers: int = 0
    backend: str = "auto"
    latents: str = "auto"
    latents_dtype: str = "float32"
    window: WindowConfig = field(default_factory=WindowConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.shuffle_episodes < 1:
            raise ConfigError(f"data.shuffle_episodes must be >= 1, got {self.shuffle_episodes}")
        if self.num_workers < 0 or self.decode_threads < 0:
            raise ConfigError("data.num_workers and data.decode_threads must be >= 0")
        if self.latents_dtype not in DTYPES:
            raise ConfigError(f"data.latents_dtype must be one of {list(DTYPES)}, got {self.latents_dtype!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"data.backend must be one of {list(BACKENDS)}, got {self.backend!r}")


def split_episodes(episode_ids: list[int], val_fraction: float, seed: int) -> dict[str, list[int]]:
    """Deterministic episode-level split: {"train": [...], "val": [...], "all": [...]} (sorted ids)."""
    ids = np.asarray(episode_ids, np.int64)
    n = len(ids)
    n_val = 0 if val_fraction <= 0 or n < 2 else min(n - 1, max(1, int(round(n * val_fraction))))
    perm = np.random.default_rng([seed, 0x5EED]).permutation(n)
    val = np.sort(ids[perm[:n_val]])
    train = np.sort(ids[perm[n_val:]])
    return {"train": train.tolist(), "val": val.tolist(), "all": np.sort(ids).tolist()}


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class RT1Windows(IterableDataset):
    """Windows of one split of an RT-1 RLDS dataset (see the module docstring).

    Args:
        source: dataset path (see `RLDSReader`) or an `RLDSReader`.
        window: `WindowConfig`.
        split: "train", "val" or "all".
        val_fraction, seed: the episode-level split and the shuffles.
        shuffle: permute episodes and windows (default: True for "train").
        infinite: repeat epochs forever (default: True for "train").
        shuffle_episodes: episodes per shuffle block.
        rank, world_size: distributed position (default: from torch.distributed, else 0 / 1).
        even_shards: trim each epoch to a multiple of the consumer count so all get equally many episodes
            (default: True when infinite, i.e. training; a finite pass covers every episode).
        skip_bad_episodes: skip and count malformed episodes instead of raising `DataError`.
        decode_threads: JPEG decode threads (0 = automatic).
        backend: reader backend when `source` is a path (see `reader.open_reader`).
        latents: a `LatentCache` of the dataset: windows carry frame tokens from it instead of decoded frames.
    """

    def __init__(self, source: str | RLDSReader, window: WindowConfig | None = None, *, split: str = "train",
                 val_fraction: float = 0.05, seed: int = 0, shuffle: bool | None = None,
                 infinite: bool | None = None, shuffle_episodes: int = 8, rank: int | None = None,
                 world_size: int | None = None, even_shards: bool | None = None, skip_bad_episodes: bool = False,
                 decode_threads: int = 0, backend: str = "auto", latents: LatentCache | None = None):
        super().__init__()
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {list(SPLITS)}, got {split!r}")
        self.reader = source if isinstance(source, RLDSReader) else open_reader(
            source, backend, skip_bad_episodes=skip_bad_episodes)
        self.window = window or WindowConfig()
        self.split = split
        self.seed = seed
        self.shuffle = (split == "train") if shuffle is None else shuffle
        self.infinite = (split == "train") if infinite is None else infinite
        self.shuffle_episodes = max(1, shuffle_episodes)
        dr, dw = _dist_rank_world()
        self.rank = dr if rank is None else rank
        self.world_size = dw if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank must be in [0, world_size), got rank={self.rank} world_size={self.world_size}")
        self.even_shards = self.infinite if even_shards is None else even_shards
        self.decode_threads = decode_threads
        self.latents = latents
        self.episode_ids = split_episodes(self.reader.episode_ids, val_fraction, seed)[split]
        if not self.episode_ids:
            raise DataError(f"{self.reader.builder_dir}: split '{split}' has no episodes "
                            f"({len(self.reader)} in the dataset, val_fraction={val_fraction})")
        self.epoch = 0                       # the epoch a finite dataset iterates
        self._positions: dict[int, tuple[int, int, int]] = {}
        self._resume: dict[int, tuple[int, int, int]] = {}
        self._worker_shift = 0  # DataLoader worker w plays consumer (w + shift) % workers (resume phase)

    @classmethod
    def from_config(cls, cfg: DataConfig, split: str = "train", **kwargs) -> RT1Windows:
        """Build from a `DataConfig` (kwargs override, e.g. `window=...`)."""
        args: dict[str, Any] = dict(window=cfg.window, split=split, val_fraction=cfg.val_fraction, seed=cfg.seed,
                                    shuffle_episodes=cfg.shuffle_episodes, skip_bad_episodes=cfg.skip_bad_episodes,
                                    decode_threads=cfg.decode_threads, backend=cfg.backend)
        args.update(kwargs)
        return cls(cfg.path, **args)

    # -------------------------------------------------------------- sharding

    def consumer(self) -> tuple[int, int]:
        """(g, G): this process's consumer index and the consumer count (ranks x workers)."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        worker = (worker + self._worker_shift) % workers
        return self.rank * workers + worker, self.world_size * workers

    def epoch_order(self, epoch: int) -> list[int]:
        """The split's episode ids in epoch `epoch`'s order (before sharding)."""
        ids = np.asarray(self.episode_ids, np.int64)
        if self.shuffle:
            ids = ids[np.random.default_rng([self.seed, 1, epoch]).permutation(len(ids))]
        return ids.tolist()

    def shard(self, epoch: int, g: int, G: int) -> list[int]:
        """Episode ids consumer g of G reads in `epoch`."""
        order = self.epoch_order(epoch)
        if self.even_shards and len(order) >= G:
            order = order[:len(order) - len(order) % G]
        return order[g::G]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch a finite (non-infinite) dataset iterates next."""
        self.epoch = epoch

    # -------------------------------------------------------------- iteration

    def _block_windows(self, ids: list[int], rng: np.random.Generator) -> tuple[list[EpisodeWindows], np.ndarray]:
        blocks = []
        for ep in self.reader.read_many(ids):
            if ep is None:
                continue
            try:  # decoding the frames finds corrupt JPEG bodies the header check cannot see
                blocks.append(EpisodeWindows(ep, self.window, threads=self.decode_threads, latents=self.latents))
            except DataError as e:
                self.reader.skip_or_raise(e, ep.episode_id)
        flat = np.array([(b, i) for b, ew in enumerate(blocks) for i in range(len(ew))], np.int64).reshape(-1, 2)
        if self.shuffle:
            flat = flat[rng.permutation(len(flat))]
        return blocks, flat

    def _iter_consumer(self, g: int, G: int) -> Iterator[dict]:
        epoch, block, offset = self._resume.get(g, (self.epoch, 0, 0))
        while True:
            mine = self.shard(epoch, g, G)
            if not mine:
                if self.infinite:
                    raise DataError(f"{self.reader.builder_dir}: split '{self.split}' has {len(self.episode_ids)} "
                                    f"episodes, too few for {G} consumers (ranks x DataLoader workers); use fewer "
                                    "workers or more data")
                return
            yielded, skipped_before = 0, self.reader.num_skipped
            n_blocks = -(-len(mine) // self.shuffle_episodes)
            for b in range(block, n_blocks):
                ids = mine[b * self.shuffle_episodes:(b + 1) * self.shuffle_episodes]
                rng = np.random.default_rng([self.seed, 2, epoch, g, b])
                eps, flat = self._block_windows(ids, rng)
                for i in range(offset, len(flat)):
                    e, w = flat[i]
                    sample = eps[e][w]
                    nxt = (epoch, b, i + 1) if i + 1 < len(flat) else (epoch, b + 1, 0)
                    sample[POSITION] = (g, *nxt)
                    self._positions[g] = nxt
                    yielded += 1
                    yield sample
                offset = 0
            skipped = self.reader.num_skipped - skipped_before
            if skipped:
                log.warning("epoch %d, consumer %d/%d: skipped %d bad episode(s)", epoch, g, G, skipped)
            if not self.infinite:
                return
            if yielded == 0 and block == 0:
                raise DataError(f"{self.reader.builder_dir}: consumer {g}/{G} got no usable window in epoch {epoch} "
                                f"({len(mine)} episodes, all bad or shorter than 2 steps)")
            epoch, block, offset = epoch + 1, 0, 0

    def __iter__(self) -> Iterator[dict]:
        g, G = self.consumer()
        if self._resume and self._resume.get("_G", G) != G:
            raise ConfigError(f"cannot resume: the saved data position has {self._resume['_G']} consumers "
                              f"(ranks x workers), this run has {G}; resume with the same world size and num_workers")
        return self._iter_consumer(g, G)

    # -------------------------------------------------------------- resumable position

    def state_dict(self) -> dict:
        """Position of every consumer seen in this process (exact when iterated without workers)."""
        g, G = self.consumer()
        return {"num_consumers": G, "positions": {int(k): list(v) for k, v in self._positions.items()},
                "epoch": self.epoch, "seed": self.seed, "split": self.split}

    def load_state_dict(self, state: dict) -> None:
        """Resume from `state_dict()` (same seed, split, world size and workers)."""
        if state.get("seed", self.seed) != self.seed or state.get("split", self.split) != self.split:
            raise ConfigError(f"cannot resume: saved data position is for seed={state.get('seed')} "
                              f"split={state.get('split')}, this dataset has seed={self.seed} split={self.split}")
        self.epoch = int(state.get("epoch", 0))
        self._resume = {int(k): tuple(v) for k, v in state["positions"].items()}
        self._resume["_G"] = int(state["num_consumers"])  # type: ignore[assignment]
        self._positions = {k: v for k, v in self._resume.items() if k != "_G"}


def collate(samples: list[dict]) -> dict:
    """Stack windows into a batch: arrays -> torch tensors, `instruction` -> list[str]."""
    out: dict[str, Any] = {}
    for key in samples[0]:
        vals = [s[key] for s in samples]
        if key == C.INSTRUCTION:
            out[key] = list(vals)
        elif key == POSITION:
            out[key] = vals[-1]
        else:
            out[key] = _stack(vals)
    return out


def _stack(vals: list) -> torch.Tensor:
    """Stack arrays into one tensor with a single copy, in shared memory inside a DataLoader worker
    (as torch's default_collate does), so handing the batch to the main process copies nothing."""
    arr = np.asarray(vals[0])
    first = torch.from_numpy(np.empty(0, arr.dtype))  # only for the dtype (vals may be read-only memory maps)
    shape = (len(vals), *arr.shape)
    if get_worker_info() is not None:
        numel = int(np.prod(shape))
        out = first.new(first._typed_storage()._new_shared(numel, device="cpu")).resize_(shape)
    else:
        out = torch.empty(shape, dtype=first.dtype)
    np.stack([np.asarray(v) for v in vals], out=out.numpy())
    return out


class WindowLoader:
    """A DataLoader over `RT1Windows` that knows its exact position (`state_dict`).

    Each batch comes from one consumer (rank x worker); the loader records that consumer's
    position after every batch it hands out and strips the position key from the batch.
    """

    def __init__(self, dataset: RT1Windows, batch_size: int, num_workers: int = 0, **loader_kwargs):
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.loader_kwargs = loader_kwargs
        self._positions: dict[int, tuple] = {}
        self._batches = 0  # batches handed out: fixes which worker's batch comes next (round robin)
        self._G = dataset.world_size * max(1, num_workers)

    def __iter__(self) -> Iterator[dict]:
        if self._positions:
            self.dataset.load_state_dict(self.state_dict())
        # DataLoader asks workers for batches in a fixed round robin starting at worker 0; shift the
        # consumer roles so the first batch of this iterator comes from the consumer that is due next.
        self.dataset._worker_shift = self._batches % max(1, self.num_workers)
        kw = dict(self.loader_kwargs)
        if self.num_workers > 0:
            kw.setdefault("persistent_workers", False)
            if getattr(self.dataset.reader, "backend", "python") == "tf":
                kw.setdefault("multiprocessing_context", "spawn")  # TensorFlow hangs in forked children
        loader = DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                            collate_fn=collate, **kw)
        it = iter(loader)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except DataError as e:  # re-raise a worker's error with its own one-line message
                m = re.search(r"DataError: (.*)", str(e), re.S)
                raise DataError(m.group(1).strip().splitlines()[0] if m else str(e)) from None
            g, *pos = batch.pop(POSITION)
            self._positions[int(g)] = tuple(pos)
            self._batches += 1
            yield batch

    def state_dict(self) -> dict:
        """The exact position: resume with `load_state_dict` (same batch size, workers, world size)."""
        return {"num_consumers": self._G, "positions": {int(k): list(v) for k, v in self._positions.items()},
                "batches": self._batches, "epoch": self.dataset.epoch, "seed": self.dataset.seed,
                "split": self.dataset.split}

    def load_state_dict(self, state: dict) -> None:
        """Restore a position saved by `state_dict()`."""
        if int(state["num_consumers"]) != self._G:
            raise ConfigError(f"cannot resume: the saved data position has {state['num_consumers']} consumers "
                              f"(ranks x workers), this loader has {self._G}; resume with the same world size "
                              "and num_workers")
        self._positions = {int(k): tuple(v) for k, v in state["positions"].items()}
        self._batches = int(state.get("batches", 0))
        self.dataset.load_state_dict(state)


def make_loader(dataset: RT1Windows, batch_size: int, num_workers: int = 0, **loader_kwargs) -> WindowLoader:
    """The training/eval loader: batches of `collate`d windows with an exact `state_dict()`."""
    return WindowLoader(dataset, batch_size, num_workers, **loader_kwargs)
