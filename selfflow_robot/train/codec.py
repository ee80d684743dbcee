"""`selfflow-robot codec train`: fit the frame autoencoder (`model/autoencoder.py`) to a dataset's own frames.

Frames are decoded once at the model's image size (an episode-level split holds some episodes out), then the
autoencoder is trained with an L1 + MSE reconstruction loss and AdamW, with a progress bar. At the end its latents
are scaled to unit variance on the training frames and the held-out reconstruction PSNR is measured: the ceiling
of any world model that predicts these latents (a perfect latent prediction decodes to this PSNR). Minutes on
2 CPU cores for the demo's 64x80 frames.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm.auto import tqdm

from selfflow_robot.config import structured
from selfflow_robot.data.backend import open_reader
from selfflow_robot.data.dataset import split_episodes
from selfflow_robot.data.frames import decode_frames
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.video_metrics import psnr
from selfflow_robot.errors import ConfigError, DataError
from selfflow_robot.files import check_writable_dir
from selfflow_robot.model.autoencoder import AutoencoderConfig, FrameAutoencoder
from selfflow_robot.model.device import resolve_device


@dataclass
class CodecTrainConfig:
    """`selfflow-robot codec train` options.

    Args:
        data_path: the dataset whose frames the autoencoder learns (an RT-1 RLDS builder dir or its parent).
        output_dir: the folder it is written to (`autoencoder.safetensors`, `autoencoder.json`); point
            `model.vae=` at it with `model.codec=ae`.
        codec: the autoencoder's geometry (`image_size` must be the model's).
        steps: optimiser steps.
        batch_size: frames per step.
        lr: peak AdamW learning rate (cosine decay to 10%).
        val_fraction: share of episodes held out for the PSNR (the same split rule as training).
        max_frames: frames decoded for training at most (evenly spaced over the episodes; 0 = all).
        seed: split, sampling and initialisation seed.
        device: auto | cpu | cuda.
        threads: torch CPU threads (0 = torch's default).
    """

    data_path: str = "data/synth"
    output_dir: str = "runs/codec"
    codec: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    val_fraction: float = 0.05
    max_frames: int = 20000
    seed: int = 0
    device: str = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"codec train: {name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"codec train: val_fraction must be in [0, 1), got {self.val_fraction}")


def load_frames(reader: RLDSReader, size: tuple[int, int], ids: list[int], max_frames: int) -> np.ndarray:
    """uint8 (N, H, W, 3): the frames of episodes `ids`, decoded at `size` (at most `max_frames`, evenly spaced)."""
    episodes = [ep for ep in reader.read_many(ids) if ep is not None]   # JPEG bytes, not decoded yet
    total = sum(len(ep) for ep in episodes)
    stride = max(1, math.ceil(total / max_frames)) if max_frames else 1
    frames, seen = [], 0
    for ep in tqdm(episodes, desc="decode frames", unit="ep"):
        keep = [s for s in range(len(ep)) if (seen + s) % stride == 0]
        seen += len(ep)
        if keep:
            frames.append(decode_frames([ep.images[s] for s in keep], size, where=ep.where(), steps=keep))
    if not frames:
        raise DataError(f"{reader.builder_dir}: no frames to train the autoencoder on")
    return np.concatenate(frames)


def to_unit(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@torch.no_grad()
def reconstruction_psnr(model: FrameAutoencoder, frames: np.ndarray, device: torch.device, batch: int = 64) -> float:
    """Mean PSNR (dB, frames in [0, 1]) of the autoencoder's reconstructions of `frames`."""
    scores = []
    for i in range(0, len(frames), batch):
        x = to_unit(frames[i:i + batch], device)
        rec = model(x).clamp(-1, 1)
        scores.append(psnr((rec + 1) / 2, (x + 1) / 2))
    return float(np.concatenate(scores).mean())


def train_codec(cfg: CodecTrainConfig) -> dict[str, float]:
    """Train, scale, measure and save the autoencoder; returns the report written to `autoencoder.json`."""
    check_writable_dir(cfg.output_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    reader = open_reader(cfg.data_path)
    split = split_episodes(reader.episode_ids, cfg.val_fraction, cfg.seed)
    size = cfg.codec.image_size
    train = load_frames(reader, size, split["train"], cfg.max_frames)
    val = load_frames(reader, size, split["val"] or split["train"][:1], max(1, cfg.max_frames // 10))
    torch.manual_seed(cfg.seed)
    model = FrameAutoencoder(cfg.codec).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / cfg.steps))))
    gen = torch.Generator().manual_seed(cfg.seed)
    start = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="codec train", unit="step")
    for step in bar:
        idx = torch.randint(len(train), (cfg.batch_size,), generator=gen).numpy()
        x = to_unit(train[idx], device)
        rec = model.decoder(model.encoder(x))
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    model.eval()
    with torch.no_grad():   # unit-variance latents: the transformer's tokens come out on a known scale
        z = torch.cat([model.encoder(to_unit(train[i:i + 64], device)) for i in range(0, min(len(train), 2048), 64)])
        model.latent_scale.fill_(float(z.std()))
    report = {"psnr_val": reconstruction_psnr(model, val, device),
              "psnr_train": reconstruction_psnr(model, train[:len(val)], device),
              "train_frames": int(len(train)), "val_frames": int(len(val)), "steps": cfg.steps,
              "seconds": round(time.perf_counter() - start, 1), "data_path": str(cfg.data_path)}
    model.cpu().save(cfg.output_dir, **report)
    return report


def main(cfg: DictConfig) -> int:
    """CLI entry of `selfflow-robot codec train`."""
    conf = structured(CodecTrainConfig, cfg)
    report = train_codec(conf)
    out = Path(conf.output_dir)
    h, w = conf.codec.grid
    print(f"autoencoder -> {out}: {conf.codec.image_size[0]}x{conf.codec.image_size[1]} frames -> {h}x{w}x"
          f"{conf.codec.latent_channels} latents; reconstruction PSNR {report['psnr_val']:.2f} dB held out "
          f"({report['val_frames']} frames), {report['psnr_train']:.2f} dB on training frames; "
          f"{report['seconds']:.0f} s")
    print(f"use it: selfflow-robot train model.codec=ae model.vae={out} model.latent_channels="
          f"{conf.codec.latent_channels} model.vae_downsample={conf.codec.downsample} model.patch_size=1 ...")
    return 0
