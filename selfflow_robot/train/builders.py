"""Assemble the trainer's parts from the composed config: the model (fresh, or initialised from weights)
and the data bundle (train stream, held-out batches, normaliser, statistics, language table)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from selfflow_robot import checkpoint as ck
from selfflow_robot.config import structured
from selfflow_robot.data.backend import open_reader
from selfflow_robot.data.dataset import POSITION, DataConfig, RT1Windows, make_loader
from selfflow_robot.data.latent_cache import LatentCache
from selfflow_robot.data.statistics import ActionNormalizer, StateNormalizer, load_or_compute_statistics
from selfflow_robot.data.windows import WindowConfig
from selfflow_robot.errors import ConfigError
from selfflow_robot.model.codecs import FrameCodec
from selfflow_robot.model.config import DiTConfig
from selfflow_robot.model.import_selfflow import import_selfflow
from selfflow_robot.train import parallel
from selfflow_robot.train.latents import latents_folder, prepare_latents


def init_weights_from(model: torch.nn.Module, path: str, model_cfg: DiTConfig, key: str = "model") -> str:
    """Fine-tuning start: load weights into `model` (a new run; optimizer and step start fresh).

    `path` is a checkpoint step/run dir (its EMA weights, strictly checked), or a released Self-Flow
    `.pt` file (xl: blocks load, input/output projections re-initialise; the importer reports), whose entry
    `key` (`model` or `ema`) is imported when it holds several.
    Returns a one-paragraph report.
    """
    p = Path(path).expanduser()
    if p.is_file() and p.suffix in (".pt", ".pth", ".bin", ".safetensors"):
        report = import_selfflow(model, p, key=key, verbose=False)
        return f"init_from {p}:\n{report.format()}"
    ckpt = ck.find_checkpoint(p)
    state = ck.load_weights(ckpt, use_ema=True)
    ck.check_state_dict(model, state, str(ckpt))
    model.load_state_dict(state)
    return f"init_from {ckpt}: loaded its EMA weights ({len(state)} tensors); optimizer and step start fresh"


# ----------------------------------------------------------------------------- data


def window_for_model(data_cfg: DataConfig, model_cfg: DiTConfig) -> WindowConfig:
    """The data window with k, H and the frame size taken from the model config (the model declares its window)."""
    h, w = model_cfg.image_size
    return dataclasses.replace(data_cfg.window, context_frames=model_cfg.context_frames, horizon=model_cfg.horizon,
                               height=h, width=w, state=model_cfg.state_dim > 0 or model_cfg.aux_state_dim > 0)


@dataclass
class DataBundle:
    """What the trainer needs from the data side.

    Attributes:
        loaders: one `WindowLoader` per accumulation micro-batch of this process. Loader m reads
            consumer shard `m * world_size + rank` of `grad_accum * world_size`, so the global batch
            of a step is the same for any split over processes and accumulation.
        val: held-out batches (fixed, the first `validation.batches` of the val split), or None.
        normalizer: the `ActionNormalizer` (raw 7-D + terminate <-> 8-D token).
        state_normalizer: the `StateNormalizer` (raw 8-D proprioception -> normalised state), or None (the
            model neither takes nor predicts the state).
        state_as_input: the model takes the normalised state as an input (`model.state_dim > 0`).
        state_as_target: the model predicts it from its frames (`model.aux_state_dim > 0`).
        statistics: `dataset_statistics.json` content (shipped in every checkpoint).
        language_table: instruction -> 512-d embedding of the training data.
        latents: the latent cache the train batches come from (their frame keys hold tokens), or None.
    """

    loaders: list[Any]
    val: list[dict[str, Any]] | None
    normalizer: ActionNormalizer
    statistics: dict[str, Any]
    language_table: dict[str, np.ndarray]
    state_normalizer: StateNormalizer | None = None
    state_as_input: bool = False
    state_as_target: bool = False
    latents: LatentCache | None = None
    _iters: list[Iterator[dict[str, Any]] | None] = field(default_factory=list)

    def next_batch(self, micro: int) -> dict[str, Any]:
        """The next training batch of micro-batch slot `micro` (endless: the train split repeats)."""
        if not self._iters:
            self._iters = [None] * len(self.loaders)
        if self._iters[micro] is None:
            self._iters[micro] = iter(self.loaders[micro])
        return next(self._iters[micro])

    def action_tokens(self, actions: torch.Tensor, terminate: torch.Tensor) -> torch.Tensor:
        """Raw (B, H, 7) + terminate (B, H) -> normalised tokens (B, H, 8)."""
        return self.normalizer.normalize(actions, terminate)

    @property
    def state_input(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Raw (B, 8) proprioception -> normalised model input, or None when the model has no state input."""
        return self.state_normalizer.normalize if self.state_normalizer and self.state_as_input else None

    @property
    def state_target(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Raw (B, 8) proprioception -> the normalised target of the state head, or None (no head)."""
        return self.state_normalizer.normalize if self.state_normalizer and self.state_as_target else None

    def unnormalize(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, H, 8) -> raw actions (B, H, 7)."""
        return self.normalizer.unnormalize(tokens)[0]

    @property
    def mean_action(self) -> np.ndarray:
        """The training mean raw action (7,): the validation baseline."""
        return np.asarray(self.statistics["action"]["mean"], np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Exact position of every loader (batches actually handed to the trainer)."""
        return {"loaders": [ld.state_dict() for ld in self.loaders]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["loaders"]
        if len(saved) != len(self.loaders):
            raise ConfigError(f"cannot resume the data position: saved with {len(saved)} accumulation loaders, "
                              f"this run has {len(self.loaders)}; resume with the same train.grad_accum")
        for ld, st in zip(self.loaders, saved):
            ld.load_state_dict(st)
        self._iters = []


def build_data(cfg: DictConfig, model_cfg: DiTConfig, info: Any, tcfg: Any, codec: FrameCodec | None = None
               ) -> DataBundle:
    """Train loaders (sharded per rank and accumulation slot), held-out batches, statistics, language table.

    With `codec` and a latent cache configured (`data.latents`), the train split reads frame tokens from the
    cache (built here first when missing or stale); `DataBundle.latents` is then that cache."""
    dcfg = structured(DataConfig, cfg.data)
    window = window_for_model(dcfg, model_cfg)
    reader = open_reader(dcfg.path, dcfg.backend, skip_bad_episodes=dcfg.skip_bad_episodes)
    # Rank 0 computes (and caches) the statistics first, so ranks never race on the cache files.
    if info.is_main:
        stats, table = load_or_compute_statistics(reader)
    parallel.barrier()
    if not info.is_main:
        stats, table = load_or_compute_statistics(reader)
    latents = None
    folder = latents_folder(dcfg, model_cfg, str(cfg.output_dir)) if codec is not None else None
    if folder is not None:  # rank 0 encodes (or finds the cache up to date), then every rank opens it
        if info.is_main:
            prepare_latents(reader, folder, codec, window.image_size, dcfg.latents_dtype, dcfg.decode_threads)
        parallel.barrier()
        latents = LatentCache(folder)
    accum, world = tcfg.grad_accum, info.world_size
    loaders = []
    for m in range(accum):
        ds = RT1Windows(reader, window, split="train", val_fraction=dcfg.val_fraction, seed=dcfg.seed,
                        shuffle_episodes=dcfg.shuffle_episodes, rank=m * world + info.rank,
                        world_size=accum * world, decode_threads=dcfg.decode_threads, latents=latents)
        loaders.append(make_loader(ds, tcfg.batch_size, dcfg.num_workers))
    val = None
    if dcfg.val_fraction > 0 and tcfg.val_every > 0 and tcfg.validation.batches > 0:
        val_ds = RT1Windows(reader, window, split="val", val_fraction=dcfg.val_fraction, seed=dcfg.seed,
                            rank=0, world_size=1, decode_threads=dcfg.decode_threads)
        val = []
        for batch in make_loader(val_ds, tcfg.batch_size, 0):
            batch.pop(POSITION, None)
            val.append(batch)
            if len(val) >= tcfg.validation.batches:
                break
    return DataBundle(loaders=loaders, val=val, normalizer=ActionNormalizer(stats), statistics=stats.to_dict(),
                      language_table=dict(table),
                      state_normalizer=StateNormalizer(stats) if window.state else None,
                      state_as_input=model_cfg.state_dim > 0, state_as_target=model_cfg.aux_state_dim > 0,
                      latents=latents)
