"""`load_pretrained`: the one loader that turns a checkpoint into everything inference needs.

The policy, the world model, the server, export and the scripts all call it, so the checks a checkpoint
must pass (complete folder, weights that match its config, one model frame per control step) and the
objects built from its files (normalisers, language table) exist once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from selfflow_robot.checkpoint.format import (
    check_state_dict,
    find_checkpoint,
    load_run_config,
    load_statistics,
    load_weights,
)
from selfflow_robot.constants import CONFIG_FILE, EMA_FILE, LANGUAGE_TABLE_FILE, MODEL_FILE, STATS_FILE
from selfflow_robot.data.language import LanguageTable
from selfflow_robot.data.statistics import ActionNormalizer, StateNormalizer
from selfflow_robot.errors import ConfigError
from selfflow_robot.model.autoencoder import CONFIG_FILE as AUTOENCODER_CONFIG
from selfflow_robot.model.build import build_model
from selfflow_robot.model.codecs import FrameCodec
from selfflow_robot.model.device import resolve_device


@dataclass
class Pretrained:
    """What `load_pretrained` returns: everything needed to run a trained checkpoint.

    Attributes:
        model: the `SelfFlowDiT` in eval mode, gradients off (EMA weights by default).
        codec: the `FrameCodec` the model was trained with, on the model's device.
        config: the full resolved train config (`config.model`, `config.data`, ...).
        stats: `dataset_statistics.json` content.
        language_table: instruction -> embedding, from the training data.
        actions: raw 7-D actions (+ terminate) <-> the model's 8-D action tokens.
        state: the robot state -> the model's state input, for checkpoints with `model.state_dim > 0`.
        path: the step folder it came from.
        device: where the model is.
    """

    model: torch.nn.Module
    codec: FrameCodec
    config: DictConfig
    stats: dict[str, Any]
    language_table: LanguageTable
    actions: ActionNormalizer
    state: StateNormalizer | None
    path: Path
    device: torch.device


def check_frame_stride(train_config: Any) -> None:
    """The policy and the world model step one dataset step (RT-1: 3 Hz) per model frame; a checkpoint
    trained on strided windows would need aggregated actions, which they do not produce."""
    stride = OmegaConf.select(train_config, "data.window.frame_stride", default=1) if train_config is not None else 1
    if int(stride or 1) != 1:
        raise ConfigError(f"this checkpoint was trained with data.window.frame_stride={stride}; SelfFlowPolicy and "
                          "WorldModel run one model frame per control step and support frame_stride=1 only")


def load_pretrained(path: str | Path, use_ema: bool = True, device: str | torch.device = "cpu") -> Pretrained:
    """Load a checkpoint (step folder, or run folder -> its newest complete step) for inference.

    `device`: `auto`, `cpu`, `cuda` or `cuda:N`. Raises `CheckpointError` for a missing, incomplete or damaged
    checkpoint (the files it reads are checked against the manifest's SHA-256; a run folder falls back to its
    newest good step, with a warning) or weights that do not match its config, `ConfigError` for a
    strided-window checkpoint.
    """
    dev = resolve_device(device)
    weights = EMA_FILE if use_ema else MODEL_FILE
    ckpt = find_checkpoint(path, checksums=(CONFIG_FILE, weights, STATS_FILE, LANGUAGE_TABLE_FILE))  # what it reads
    config = load_run_config(ckpt)
    check_frame_stride(config)
    # an `ae` codec's autoencoder travels inside the checkpoint (written by the trainer beside the weights)
    model, codec = build_model(config.model, autoencoder=ckpt if (ckpt / AUTOENCODER_CONFIG).is_file() else None)
    state = load_weights(ckpt, use_ema=use_ema)
    check_state_dict(model, state, str(ckpt / weights))
    model.load_state_dict(state)
    model.to(dev).eval().requires_grad_(False)
    codec.to(dev)
    stats = load_statistics(ckpt)
    return Pretrained(model=model, codec=codec, config=config, stats=stats,
                      language_table=LanguageTable.load(ckpt / LANGUAGE_TABLE_FILE),
                      actions=ActionNormalizer(dict(stats)),
                      state=StateNormalizer(dict(stats)) if getattr(model.cfg, "state_dim", 0) else None,
                      path=ckpt, device=dev)
