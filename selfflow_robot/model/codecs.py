"""Frame codecs: uint8 frames <-> frame tokens (B, T*h*w, d).

`pixel` patchifies normalised pixels (CPU default, no weights); `vae` encodes each frame with a frozen
diffusers `AutoencoderKL` and patchifies the latents. Both use (c p q) order inside a token, the order
of the released checkpoint's `x_embedder.proj`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn as nn

from selfflow_robot.errors import ConfigError, UserError, require
from selfflow_robot.model.autoencoder import FrameAutoencoder
from selfflow_robot.model.config import DiTConfig


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T*h*w, C*p*p), tokens in (frame, row, col) order, channels in (c p q) order."""
    B, T, C, H, W = x.shape
    h, w = H // p, W // p
    x = x.reshape(B, T, C, h, p, w, p).permute(0, 1, 3, 5, 2, 4, 6)          # (B, T, h, w, C, p, p)
    return x.reshape(B, T * h * w, C * p * p)


def unpatchify(tokens: torch.Tensor, T: int, grid: tuple[int, int], p: int) -> torch.Tensor:
    """Inverse of `patchify`: (B, T*h*w, C*p*p) -> (B, T, C, h*p, w*p)."""
    B, N, d = tokens.shape
    h, w = grid
    if N != T * h * w:
        raise ValueError(f"{N} tokens do not make {T} frames of {h}x{w} patches")
    C = d // (p * p)
    x = tokens.reshape(B, T, h, w, C, p, p).permute(0, 1, 4, 2, 5, 3, 6)     # (B, T, C, h, p, w, p)
    return x.reshape(B, T, C, h * p, w * p)


def frames_to_unit(frames: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) (or float in [0, 1]) -> float (B, T, 3, H, W) in [-1, 1], with a shape check."""
    if frames.dim() != 5 or frames.shape[-1] != 3 or tuple(frames.shape[2:4]) != tuple(image_size):
        raise ValueError(f"frames must be (B, T, {image_size[0]}, {image_size[1]}, 3), got {tuple(frames.shape)}; "
                         f"resize them to the model's image_size first")
    x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    return (x * 2 - 1).permute(0, 1, 4, 2, 3)


def unit_to_frames(x: torch.Tensor) -> torch.Tensor:
    """float (B, T, 3, H, W) in [-1, 1] -> float (B, T, H, W, 3) in [0, 1]."""
    return ((x.float() + 1) / 2).clamp(0, 1).permute(0, 1, 3, 4, 2)


class FrameCodec(nn.Module):
    """Interface: `encode(uint8 (B,T,H,W,3)) -> (B, T*h*w, d)`, `decode(tokens, T) -> (B,T,H,W,3) in [0,1]`."""

    token_dim: int
    grid: tuple[int, int]

    def encode(self, frames: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, tokens: torch.Tensor, T: int) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def fingerprint(self) -> str:
        """sha256 of what decides this codec's tokens: its class, frame size, patch size and every weight.

        Two codecs with the same fingerprint encode every frame to the same tokens, so a latent cache is
        valid for a run exactly when the fingerprints agree (`data/latent_cache.py`).
        """
        h = hashlib.sha256(json.dumps([type(self).__name__, list(getattr(self, "image_size", ())),
                                       getattr(self, "patch_size", None), self.token_dim]).encode())
        for name, t in sorted(self.state_dict().items()):
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()


class PixelCodec(FrameCodec):
    """Pixel patches: values scaled to [-1, 1], p x p x 3 per token."""

    def __init__(self, image_size: tuple[int, int], patch_size: int):
        super().__init__()
        self.image_size = tuple(image_size)
        self.patch_size = patch_size
        self.grid = (image_size[0] // patch_size, image_size[1] // patch_size)
        self.token_dim = 3 * patch_size ** 2

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return patchify(frames_to_unit(frames, self.image_size), self.patch_size)      # (B, T*h*w, 3p²)

    def decode(self, tokens: torch.Tensor, T: int) -> torch.Tensor:
        return unit_to_frames(unpatchify(tokens, T, self.grid, self.patch_size))       # (B, T, H, W, 3)


class LatentCodec(FrameCodec):
    """Frames -> an autoencoder's latents (N, C, h, w) per frame, patchified p x p; subclasses give the two maps.

    `encode_latents((N, 3, H, W) in [-1, 1]) -> (N, C, h, w)` and `decode_latents(latents) -> (N, 3, H, W)`;
    `image_size`, `patch_size` and `grid` (latent patches per frame) are set by the subclass.
    """

    image_size: tuple[int, int]
    patch_size: int

    def encode_latents(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames_to_unit(frames, self.image_size)                          # (B, T, 3, H, W)
        B, T = x.shape[:2]
        z = self.encode_latents(x.reshape(B * T, *x.shape[2:]))              # (B*T, C, h, w)
        return patchify(z.reshape(B, T, *z.shape[1:]), self.patch_size)       # (B, T*h'*w', C*p²)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, T: int) -> torch.Tensor:
        z = unpatchify(tokens.float(), T, self.grid, self.patch_size)         # (B, T, C, h, w)
        B = z.shape[0]
        x = self.decode_latents(z.reshape(B * T, *z.shape[2:]))              # (B*T, 3, H, W)
        return unit_to_frames(x.reshape(B, T, *x.shape[1:]))                  # (B, T, H, W, 3)


class VAECodec(LatentCodec):
    """Frozen diffusers AutoencoderKL (e.g. SD-VAE): latents (x scaling_factor) patchified p x p.

    `source` is a local directory (as written by `save_pretrained`) or a hub id (downloads when online).
    Encoding uses the posterior mean, so it is deterministic.
    """

    def __init__(self, source: str, image_size: tuple[int, int], patch_size: int, *, subfolder: str = "",
                 expect_channels: int | None = None, expect_downsample: int | None = None, chunk: int = 16):
        super().__init__()
        diffusers = require("diffusers", "vae")
        kwargs = {"subfolder": subfolder} if subfolder else {}
        try:
            vae = diffusers.AutoencoderKL.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as e:
            where = "local directory" if Path(source).exists() else "hub id (needs network access)"
            raise UserError(f"could not load the VAE from {source!r} ({where}): {str(e).splitlines()[0]}; "
                            f"set model.vae to a diffusers AutoencoderKL directory or hub id") from e
        vae.requires_grad_(False).eval()
        self.vae = vae
        self.image_size = tuple(image_size)
        self.patch_size = patch_size
        self.chunk = chunk
        self.channels = int(vae.config.latent_channels)
        self.downsample = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scaling_factor = float(getattr(vae.config, "scaling_factor", None) or 1.0)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)
        if expect_channels is not None and expect_channels != self.channels:
            raise ConfigError(f"the VAE at {source!r} has {self.channels} latent channels but "
                              f"model.latent_channels={expect_channels}; set model.latent_channels={self.channels}")
        if expect_downsample is not None and expect_downsample != self.downsample:
            raise ConfigError(f"the VAE at {source!r} downsamples by {self.downsample} but "
                              f"model.vae_downsample={expect_downsample}; set model.vae_downsample={self.downsample}")
        cell = self.downsample * patch_size
        self.grid = (image_size[0] // cell, image_size[1] // cell)
        self.token_dim = self.channels * patch_size ** 2

    def train(self, mode: bool = True) -> VAECodec:
        super().train(mode)
        self.vae.eval()  # frozen: never in train mode
        return self

    def encode_latents(self, x: torch.Tensor) -> torch.Tensor:
        dtype = next(self.vae.parameters()).dtype
        z = torch.cat([self.vae.encode(part).latent_dist.mean for part in x.to(dtype).split(self.chunk)])
        return (z.float() - self.shift_factor) * self.scaling_factor

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        z = z / self.scaling_factor + self.shift_factor
        dtype = next(self.vae.parameters()).dtype
        return torch.cat([self.vae.decode(part.to(dtype)).sample for part in z.split(self.chunk)])


class AECodec(LatentCodec):
    """The repository's frame autoencoder (`model/autoencoder.py`): latents patchified p x p, frozen."""

    def __init__(self, autoencoder: FrameAutoencoder, image_size: tuple[int, int], patch_size: int, *,
                 expect_channels: int | None = None, expect_downsample: int | None = None, source: str = ""):
        super().__init__()
        ae_cfg = autoencoder.cfg
        for name, want, have in (("model.image_size", tuple(image_size), ae_cfg.image_size),
                                 ("model.latent_channels", expect_channels, ae_cfg.latent_channels),
                                 ("model.vae_downsample", expect_downsample, ae_cfg.downsample)):
            if want is not None and want != have:
                raise ConfigError(f"the autoencoder {source} was trained with {name.split('.')[-1]}={have} but "
                                  f"{name}={want}; set {name}={list(have) if isinstance(have, tuple) else have} "
                                  "or train a matching autoencoder")
        self.autoencoder = autoencoder.eval().requires_grad_(False)
        self.image_size, self.patch_size = tuple(image_size), patch_size
        h, w = ae_cfg.grid
        self.grid = (h // patch_size, w // patch_size)
        self.token_dim = ae_cfg.latent_channels * patch_size ** 2

    def train(self, mode: bool = True) -> AECodec:
        super().train(mode)
        self.autoencoder.eval()  # frozen: never in train mode
        return self

    def encode_latents(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(x)

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(z)


def build_codec(cfg: DiTConfig, autoencoder: str | Path | None = None) -> FrameCodec:
    """The codec named by `cfg.codec`; `autoencoder` overrides where an `ae` codec's weights are read from
    (a checkpoint's own copy)."""
    if cfg.codec == "pixel":
        return PixelCodec(cfg.image_size, cfg.patch_size)
    if cfg.codec == "ae":
        source = str(autoencoder or cfg.vae)
        return AECodec(FrameAutoencoder.load(source), cfg.image_size, cfg.patch_size,
                       expect_channels=cfg.latent_channels, expect_downsample=cfg.vae_downsample, source=source)
    return VAECodec(cfg.vae, cfg.image_size, cfg.patch_size, subfolder=cfg.vae_subfolder,
                    expect_channels=cfg.latent_channels, expect_downsample=cfg.vae_downsample)
