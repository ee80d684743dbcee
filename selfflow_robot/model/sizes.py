"""Size presets: one line per size; the keys are the `model=` choices (configs/model/<name>.yaml mirror them)."""
from __future__ import annotations

import dataclasses

from selfflow_robot.config import check_choice
from selfflow_robot.model.dit import DiTConfig

SD_VAE = "stabilityai/sd-vae-ft-ema"  # the autoencoder the released ImageNet checkpoint was trained with

SIZES: dict[str, DiTConfig] = {
    # CPU tests and the demo: 64x80 frames, 8x8 pixel patches -> 80 tokens per frame.
    "tiny": DiTConfig(depth=4, hidden_size=128, num_heads=4, prediction="x"),
    # DiT-S / DiT-B geometry on 128x160 frames (RT-1's 256x320 halved), pixel patches.
    "small": DiTConfig(depth=12, hidden_size=384, num_heads=6, image_size=(128, 160)),
    "base": DiTConfig(depth=12, hidden_size=768, num_heads=12, image_size=(128, 160)),
    # SiT-XL/2 = the released Self-Flow backbone: SD-VAE latents of 256x320 frames, patch 2 -> 16x20 tokens.
    "xl": DiTConfig(depth=28, hidden_size=1152, num_heads=16, image_size=(256, 320), codec="vae",
                    patch_size=2, vae=SD_VAE, timestep_scale=1.0),
}


def dit_config(size: str = "tiny", **overrides) -> DiTConfig:
    """The preset `size` with field overrides, e.g. `dit_config("tiny", horizon=2)`."""
    check_choice("model size", size, list(SIZES))
    return dataclasses.replace(SIZES[size], **overrides)
