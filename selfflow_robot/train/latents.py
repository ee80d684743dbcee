"""The latent cache of a training run, wired to its model's codec, and `selfflow-robot data encode`.

    selfflow-robot data encode model=tiny model.codec=ae model.vae=runs/codec data=rt1 data.path=...
    selfflow-robot train ... data.latents=runs/latents      # share one cache between runs

`data encode` takes the same overrides as `train` and builds (or finds up to date) the cache that run would
read; `train` does the same at its start on its own (`data.latents=auto`, the latent codecs).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from selfflow_robot.config import structured
from selfflow_robot.data.backend import open_reader
from selfflow_robot.data.dataset import DataConfig
from selfflow_robot.data.latent_cache import LatentCache, build_latent_cache, cache_key, open_latent_cache
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.model.build import model_config
from selfflow_robot.model.codecs import FrameCodec, build_codec
from selfflow_robot.model.config import LATENT_CODECS, DiTConfig
from selfflow_robot.model.device import resolve_device

CACHE_DIR = "latent_cache"  # under the run's output_dir, for data.latents=auto


def latents_folder(data_cfg: DataConfig, model_cfg: DiTConfig, output_dir: str | Path) -> Path | None:
    """Where the run's latent cache lives, or None when the run reads frames (`off`; `auto` with pixels)."""
    if data_cfg.latents == "off" or (data_cfg.latents == "auto" and model_cfg.codec not in LATENT_CODECS):
        return None
    return Path(output_dir) / CACHE_DIR if data_cfg.latents == "auto" else Path(data_cfg.latents).expanduser()


def prepare_latents(reader: RLDSReader, folder: Path, codec: FrameCodec, image_size: tuple[int, int],
                    dtype: str = "float32", threads: int = 0, progress: bool = True) -> LatentCache:
    """The cache in `folder` when it was made from this data and codec, else a new one built there."""
    key = cache_key(reader, codec.fingerprint(), image_size, dtype)
    cache, why = open_latent_cache(folder, key)
    if cache is not None:
        print(f"latent cache: {folder} ({cache.num_frames} frames, {cache.nbytes / 2**20:.1f} MiB) is up to date",
              flush=True)
        return cache
    print(f"latent cache: {why}; encoding every frame once", flush=True)
    device = next(iter(codec.parameters()), torch.empty(0)).device
    return build_latent_cache(reader, folder, key, _numpy_encode(codec, device), image_size, threads=threads,
                              progress=progress)


def frame_tokens(encode: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """`encode` for batches of uint8 frames (B, T, H, W, 3); cached tokens (B, T, n, d) pass through as
    (B, T*n, d) float32, the codec's own layout."""
    def tokens(frames: torch.Tensor) -> torch.Tensor:
        if frames.dtype == torch.uint8:
            return encode(frames)
        return frames.flatten(1, 2).float()
    return tokens


def _numpy_encode(codec: FrameCodec, device: torch.device) -> Callable[[np.ndarray], np.ndarray]:
    @torch.no_grad()
    def encode(frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)[:, None]       # (N, 1, H, W, 3)
        return codec.encode(x).float().cpu().numpy()                                 # (N, n, d)
    return encode


def main(cfg: DictConfig) -> int:
    """`selfflow-robot data encode`: build (or confirm) the latent cache a `train` run with these overrides reads."""
    model_cfg = model_config(cfg.model)
    data_cfg = structured(DataConfig, cfg.data)
    folder = latents_folder(data_cfg, model_cfg, str(cfg.output_dir))
    if folder is None:
        folder = Path(str(cfg.output_dir)) / CACHE_DIR
        print(f"note: this run would not read a cache (data.latents={data_cfg.latents}, model.codec="
              f"{model_cfg.codec}); encoding into {folder} anyway (pass data.latents={folder} to train to use it)")
    codec = build_codec(model_cfg).to(resolve_device("auto")).eval()
    reader = open_reader(data_cfg.path, data_cfg.backend, skip_bad_episodes=data_cfg.skip_bad_episodes)
    cache = prepare_latents(reader, folder, codec, model_cfg.image_size, data_cfg.latents_dtype,
                            data_cfg.decode_threads)
    print(f"{cache.folder}: {len(cache.episodes)} episodes, {cache.num_frames} frames, tokens "
          f"{cache.token_shape[0]}x{cache.token_shape[1]} {cache.key['dtype']}, {cache.nbytes / 2**20:.1f} MiB")
    return 0


__all__ = ["CACHE_DIR", "frame_tokens", "latents_folder", "main", "prepare_latents"]
