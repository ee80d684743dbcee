"""A small convolutional frame autoencoder, trained in this repository on a dataset's own frames.

The CPU presets model its latents instead of pixel patches: a 64x80 frame becomes an 8x10 (downsample 8) or
4x5 (downsample 16) grid of `latent_channels`-wide cells, so a frame costs the transformer a few narrow tokens
instead of 80 tokens of 192 pixel values. Its reconstruction PSNR bounds the world model's (`codec train`
reports it). Saved as a folder: `autoencoder.safetensors` (weights, with the latent scale) and
`autoencoder.json` (its `AutoencoderConfig` and the held-out PSNR).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save

from selfflow_robot.errors import ConfigError, UserError
from selfflow_robot.files import atomic_write_bytes

WEIGHTS_FILE = "autoencoder.safetensors"
CONFIG_FILE = "autoencoder.json"


@dataclass
class AutoencoderConfig:
    """Geometry of the frame autoencoder.

    Args:
        image_size: (H, W) of the frames it encodes (the model's `image_size`).
        latent_channels: channels of a latent cell.
        downsample: spatial downsampling, a power of two (8: 64x80 -> 8x10).
        width: channels of the first stage (doubled at the next, then kept).
    """

    image_size: tuple[int, int] = (64, 80)
    latent_channels: int = 8
    downsample: int = 8
    width: int = 32

    def __post_init__(self) -> None:
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        if self.downsample < 2 or self.downsample & (self.downsample - 1):
            raise ConfigError(f"codec downsample must be a power of two >= 2, got {self.downsample}")
        if self.image_size[0] % self.downsample or self.image_size[1] % self.downsample:
            raise ConfigError(f"image_size {list(self.image_size)} must be divisible by the codec's downsample "
                              f"{self.downsample}")
        if self.latent_channels < 1 or self.width < 8 or self.width % 8:
            raise ConfigError(f"codec latent_channels must be >= 1 and width a multiple of 8, got "
                              f"{self.latent_channels} and {self.width}")

    @property
    def stages(self) -> int:
        return int(math.log2(self.downsample))

    @property
    def grid(self) -> tuple[int, int]:
        return self.image_size[0] // self.downsample, self.image_size[1] // self.downsample


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> 3x3 conv, twice, plus the input."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
                                  nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FrameAutoencoder(nn.Module):
    """Frames in [-1, 1] (N, 3, H, W) <-> latents (N, C, H/d, W/d), scaled to unit variance on the training
    frames (`latent_scale`, fitted once and saved with the weights)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        # stage i works at 1/2^(i+1) of the frame with widths[i] channels: no layer runs at full resolution, so a
        # training step stays cheap on a CPU
        widths = [min(cfg.width * 2 ** i, cfg.width * 2) for i in range(cfg.stages)]
        enc: list[nn.Module] = []
        for i in range(cfg.stages):
            enc += [nn.Conv2d(3 if i == 0 else widths[i - 1], widths[i], 4, stride=2, padding=1), ResBlock(widths[i])]
        enc += [nn.GroupNorm(8, widths[-1]), nn.SiLU(), nn.Conv2d(widths[-1], cfg.latent_channels, 1)]
        dec: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, widths[-1], 3, padding=1)]
        for i in reversed(range(cfg.stages)):
            dec += [ResBlock(widths[i]), nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(widths[i], widths[i - 1] if i else widths[0], 3, padding=1)]
        dec += [nn.GroupNorm(8, widths[0]), nn.SiLU(), nn.Conv2d(widths[0], 3, 3, padding=1)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.register_buffer("latent_scale", torch.ones(()))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, C, h, w), about unit variance."""
        return self.encoder(x) / self.latent_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, C, h, w) -> (N, 3, H, W), about [-1, 1] (not clamped)."""
        return self.decoder(z * self.latent_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def save(self, folder: str | Path, **report: float) -> Path:
        """Write `autoencoder.safetensors` and `autoencoder.json` (config + `report`) into `folder`, atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_write_bytes(folder / WEIGHTS_FILE, save(state))
        meta = {"config": {**dataclasses.asdict(self.cfg), "image_size": list(self.cfg.image_size)}, **report}
        atomic_write_bytes(folder / CONFIG_FILE, json.dumps(meta, indent=2).encode())
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> FrameAutoencoder:
        """The autoencoder saved in `folder` (by `save` / `selfflow-robot codec train`), in eval mode."""
        folder = Path(folder).expanduser()
        if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
            raise UserError(f"no trained autoencoder in {folder} (expected {CONFIG_FILE} and {WEIGHTS_FILE}); "
                            "train one with `selfflow-robot codec train data.path=DIR output_dir=FOLDER`")
        try:
            meta = json.loads((folder / CONFIG_FILE).read_text())
            model = cls(AutoencoderConfig(**meta["config"]))
            model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise UserError(f"the autoencoder in {folder} cannot be loaded ({type(e).__name__}: "
                            f"{str(e).splitlines()[0]}); retrain it with `selfflow-robot codec train`") from e
        return model.eval().requires_grad_(False)


def read_report(folder: str | Path) -> dict:
    """What `codec train` measured (`autoencoder.json` minus the config)."""
    meta = json.loads((Path(folder) / CONFIG_FILE).read_text())
    return {k: v for k, v in meta.items() if k != "config"}
