"""The `model` config: `DiTConfig` (backbone geometry, token window, frame codec) and the one size table.

`SIZES` holds the presets behind `model=tiny|small|base|xl`: the CLI registers them as the options of
the `model` config group, so they exist only here (docs/architecture.md, "Configs").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from selfflow_robot.config import check_choice
from selfflow_robot.constants import ACTION_DIM, ACTIONS, CONTEXT, FUTURE, TEXT_DIM
from selfflow_robot.errors import ConfigError

CODECS = ("pixel", "vae", "ae")
LATENT_CODECS = ("vae", "ae")  # codecs whose tokens are latent cells: `latent_channels`, `vae_downsample`
PREDICTIONS = ("v", "x")
ATTENTIONS = ("full", "prefix")
SD_VAE = "stabilityai/sd-vae-ft-ema"  # the autoencoder the released ImageNet checkpoint was trained with


@dataclass
class DiTConfig:
    """Backbone geometry, token window and frame codec (the `model` config group).

    Args:
        depth: number of transformer blocks.
        hidden_size: width D.
        num_heads: attention heads (must divide `hidden_size`).
        mlp_ratio: MLP hidden width / D.
        context_frames: k, clean past frames in a window.
        horizon: H, future frames and action tokens in a window.
        image_size: (H_img, W_img) of the frames the codec sees.
        codec: `pixel` (normalised pixel patches), `vae` (frozen diffusers AutoencoderKL) or `ae` (the small
            convolutional autoencoder `selfflow-robot codec train` fits to the dataset's own frames).
        patch_size: patch side, in pixels (`pixel`) or latent cells (`vae`).
        vae: local dir or hub id of the diffusers AutoencoderKL (codec `vae`), or the folder of the trained
            autoencoder (codec `ae`; checkpoints carry a copy of it).
        vae_subfolder: subfolder of `vae` holding the autoencoder ("" = none, e.g. "vae" for a pipeline repo).
        latent_channels: latent channels of the VAE or autoencoder (checked against the loaded one).
        vae_downsample: spatial downsampling of the VAE or autoencoder (checked against the loaded one).
        action_dim: size of one action token (7-D RT-1 action + terminate).
        text_dim: size of the instruction embedding.
        projector_dim: hidden width of the representation projector (0 = 2 * hidden_size, as released).
        timestep_scale: tau is multiplied by this before the sinusoidal embedding (1.0 = SiT/Self-Flow, needed
            to import the released weights; 1000 = DiT, finer resolution when training from scratch).
        prediction: what the head outputs for frame tokens: `v` the velocity eps - x0 (SiT, the released
            weights), or `x` the clean tokens x0, turned into the velocity (x_tau - x0_hat) / tau (JiT, Li & He
            2025). `x` is needed when a frame token is wider than the model (pixel patches: 3·8·8 = 192 values
            in `tiny`'s width 128): a velocity head must reproduce the token's noise, which does not fit
            through the narrower hidden state, so sampled frames stay noise. Action tokens always predict v.
        state_dim: size of the proprioception input (0 = none; 8 = RT-1's base_pose_tool_reached +
            gripper_closed). Its embedding joins the condition of every token, like the instruction; rows
            without a state (and the world-model examples in training) use a learned null state.
        aux_state_dim: size of the robot state the model learns to read off its own frames (0 = none; 8 = the
            same 8 values as `state_dim`). A linear head on the mean hidden state of the last context frame's
            tokens predicts the normalised state, trained by the objective's `aux_state_weight` MSE. The state
            is a training target only, never an input, so the policy still acts from the image alone but its
            image features must encode where the gripper is (the overhead camera mostly hides the fingers).
        attention: `full` (every token attends to every token, as the released model) or `prefix` (the clean
            context tokens attend only among themselves; the noisy tokens attend to everything). Under `prefix`
            the context's activations never depend on the noise, so it is computed once per window: training
            shares it among `train.draws_per_window` noise draws, and inference caches its keys/values across
            all denoising steps. The weights are the same either way (docs/architecture.md, "Prefix attention").
        future_delta_scale: 0 = the model generates the future frames' own tokens; s > 0 = it generates
            s·(frame − last context frame) (`model/future.py`): predicting no change is copy-last-frame, and
            the capacity goes to the motion. s brings the change to about unit variance (the demos' autoencoder
            latents change by RMS 0.17 per frame, 0.31 over four: s = 4).
    """

    depth: int = 4
    hidden_size: int = 128
    num_heads: int = 4
    mlp_ratio: float = 4.0
    context_frames: int = 2
    horizon: int = 4
    image_size: tuple[int, int] = (64, 80)
    codec: str = "pixel"
    patch_size: int = 8
    vae: str = ""
    vae_subfolder: str = ""
    latent_channels: int = 4
    vae_downsample: int = 8
    action_dim: int = ACTION_DIM
    text_dim: int = TEXT_DIM
    projector_dim: int = 0
    timestep_scale: float = 1000.0
    prediction: str = "v"
    state_dim: int = 0
    aux_state_dim: int = 0
    attention: str = "full"
    future_delta_scale: float = 0.0

    def __post_init__(self) -> None:
        check_choice("model.codec", self.codec, CODECS)
        check_choice("model.attention", self.attention, ATTENTIONS)
        check_choice("model.prediction", self.prediction, PREDICTIONS)
        if len(self.image_size) != 2:
            raise ConfigError(f"model.image_size must be [height, width], got {list(self.image_size)}")
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"model.hidden_size={self.hidden_size} must be divisible by "
                              f"model.num_heads={self.num_heads}")
        if self.hidden_size % 2:
            raise ConfigError(f"model.hidden_size must be even, got {self.hidden_size}")
        if self.state_dim < 0:
            raise ConfigError(f"model.state_dim must be >= 0 (0 = no proprioception), got {self.state_dim}")
        if self.aux_state_dim < 0:
            raise ConfigError(f"model.aux_state_dim must be >= 0 (0 = no state-prediction head), "
                              f"got {self.aux_state_dim}")
        for name in ("depth", "context_frames", "patch_size", "action_dim", "text_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.future_delta_scale < 0:
            raise ConfigError(f"model.future_delta_scale must be >= 0 (0 = off), got {self.future_delta_scale}")
        if self.horizon < 0:
            raise ConfigError(f"model.horizon must be >= 0, got {self.horizon}")
        cell = self.patch_size * (self.vae_downsample if self.codec in LATENT_CODECS else 1)
        if self.image_size[0] % cell or self.image_size[1] % cell:
            raise ConfigError(f"model.image_size={list(self.image_size)} must be divisible by {cell} "
                              f"(patch_size {self.patch_size}" + (
                                  f" x vae_downsample {self.vae_downsample})" if self.codec in LATENT_CODECS else ")"))
        if self.codec == "ae" and not self.vae:
            raise ConfigError("model.codec=ae needs model.vae=<folder of an autoencoder trained with "
                              "`selfflow-robot codec train`>")
        if self.codec == "vae" and not self.vae:
            raise ConfigError("model.codec=vae needs model.vae=<local dir or hub id of a diffusers AutoencoderKL>, "
                              "e.g. model.vae=stabilityai/sd-vae-ft-ema")

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w): patches per frame along rows and columns."""
        cell = self.patch_size * (self.vae_downsample if self.codec in LATENT_CODECS else 1)
        return self.image_size[0] // cell, self.image_size[1] // cell

    @property
    def tokens_per_frame(self) -> int:
        h, w = self.grid
        return h * w

    @property
    def frame_token_dim(self) -> int:
        """Size of one frame token: 3·p·p pixels, or latent_channels·p·p latents."""
        channels = 3 if self.codec == "pixel" else self.latent_channels
        return channels * self.patch_size ** 2

    def num_tokens(self, group: str) -> int:
        """Tokens of `group` in a full window."""
        return {CONTEXT: self.context_frames * self.tokens_per_frame,
                FUTURE: self.horizon * self.tokens_per_frame,
                ACTIONS: self.horizon}[group]

    def token_dim(self, group: str) -> int:
        return self.action_dim if group == ACTIONS else self.frame_token_dim


# Every preset uses prefix attention (the context computed once per window and cached at inference); the
# dataclass default stays `full` so that checkpoints written before the option existed load as they were trained.
SIZES: dict[str, DiTConfig] = {
    # CPU tests and the demo (about 1.5M parameters): 64x80 frames, 8x8 pixel patches -> 80 tokens per frame;
    # x-prediction, since a 192-value pixel patch is wider than the model (see `DiTConfig.prediction`).
    "tiny": DiTConfig(depth=4, hidden_size=128, num_heads=4, prediction="x", attention="prefix"),
    # DiT-S / DiT-B geometry on 128x160 frames (RT-1's 256x320 halved), pixel patches.
    "small": DiTConfig(depth=12, hidden_size=384, num_heads=6, image_size=(128, 160), attention="prefix"),
    "base": DiTConfig(depth=12, hidden_size=768, num_heads=12, image_size=(128, 160), attention="prefix"),
    # SiT-XL/2 = the released Self-Flow backbone (675M): SD-VAE latents of 256x320 frames, patch 2 -> 16x20
    # tokens. Loads selfflow_imagenet256.pt via `selfflow_robot.model.import_selfflow` (timestep_scale stays 1).
    "xl": DiTConfig(depth=28, hidden_size=1152, num_heads=16, image_size=(256, 320), codec="vae",
                    patch_size=2, vae=SD_VAE, timestep_scale=1.0, attention="prefix"),
}


def dit_config(size: str = "tiny", **overrides: Any) -> DiTConfig:
    """The preset `size` of `SIZES` with field overrides, e.g. `dit_config("tiny", horizon=2)`."""
    check_choice("model size", size, list(SIZES))
    return dataclasses.replace(SIZES[size], **overrides)
