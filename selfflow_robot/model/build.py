"""`build_model(cfg) -> (SelfFlowDiT, FrameCodec)`: the one constructor the trainer and loaders use."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from selfflow_robot.config import structured
from selfflow_robot.model.codecs import FrameCodec, build_codec
from selfflow_robot.model.config import DiTConfig
from selfflow_robot.model.dit import SelfFlowDiT


def model_config(cfg: DiTConfig | DictConfig | Mapping[str, Any]) -> DiTConfig:
    """Validate a `model` config (DictConfig or dict) into a `DiTConfig`."""
    return cfg if isinstance(cfg, DiTConfig) else structured(DiTConfig, cfg)


def build_model(cfg: DiTConfig | DictConfig | Mapping[str, Any], *, with_codec: bool = True,
                autoencoder: str | Path | None = None) -> tuple[SelfFlowDiT, FrameCodec | None]:
    """Build the backbone (fresh init) and its frame codec (None when `with_codec=False`, e.g. on the meta device).
    `autoencoder`: where an `ae` codec's weights are (default `cfg.vae`; a checkpoint passes its own copy)."""
    cfg = model_config(cfg)
    model = SelfFlowDiT(cfg)
    codec = build_codec(cfg, autoencoder) if with_codec else None
    return model, codec
