"""Validation on held-out episodes: the policy against the mean action, the world model against
copying the last context frame.

- Policy mode (future frames absent): sample the H action tokens from context + text, compare
  with the recorded actions on the 7 action dimensions, in normalised units and in raw RT-1
  units; the baseline predicts the training mean action (from `dataset_statistics.json`).
- World-model mode (clean recorded actions): sample the H future frames, decode them, and score
  PSNR / SSIM (selfflow_robot.data.video_metrics) against the recorded frames; the baseline
  repeats the last context frame. Padded steps past an episode's end are left out of both.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch

from selfflow_robot import constants as C
from selfflow_robot.data.video_metrics import psnr, ssim
from selfflow_robot.model.config import DiTConfig
from selfflow_robot.model.future import future_from_model
from selfflow_robot.objective.samplers import sample
from selfflow_robot.train.config import ValidationConfig


class _Mean:
    """Running mean of per-item values."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, values: np.ndarray | torch.Tensor) -> None:
        v = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, np.float64).ravel()
        self.total += float(v.sum())
        self.count += v.size

    @property
    def value(self) -> float:
        return self.total / max(1, self.count)


@torch.no_grad()
def validate(model: torch.nn.Module, codec: Any, data: Any, cfg: ValidationConfig, model_cfg: DiTConfig, *,
             device: torch.device, seed: int = 0,
             autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
             world_model_state: bool = False) -> dict[str, float]:
    """Score `model` (the EMA weights) on `cfg.batches` held-out batches of `data.val`.

    `data` provides `val` (an iterable of collated batches), `action_tokens(actions, terminate)`
    -> normalised (B, H, 8), `unnormalize(tokens)` -> raw (B, H, 7), `mean_action` (7,) raw, and
    `state_input` (raw (B, 8) proprioception -> model input, or None): the policy is given the state,
    the world model the null state (as in training), or the state too with `world_model_state`.
    Returns floats: `action_mse_norm`, `action_mse_raw` and their `_mean_baseline`s, and when
    `cfg.world_model`: `psnr`, `ssim`, `psnr_copy_last`, `ssim_copy_last`; plus `windows`.
    For a model with a state head (`data.state_target` not None): `state_aux_mse`, the normalised state read
    off the clean context frames against the recorded one, and `state_aux_mse_mean_baseline` (the training
    mean state).
    With `cfg.one_step`, the same metrics with suffix `_1step` for a single Euler step from pure
    noise, x0 = eps - v(eps, 1): the model's estimate of the conditional MEAN, the MSE-optimal point
    prediction (a multi-step sample draws one plausible future instead, which pays for the noise).
    The exact estimate does not depend on eps; a small, briefly trained model does not cancel its
    input noise exactly, so `cfg.one_step_draws` > 1 averages that many draws' estimates (for the
    pixel codec, decoding is linear, so averaging tokens = averaging frames).
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator(device).manual_seed(seed)   # the same noise every validation: comparable numbers
    runs = [("", cfg.sample_steps)] + ([("_1step", 1)] if cfg.one_step and cfg.sample_steps != 1 else [])
    m: dict[str, _Mean] = defaultdict(_Mean)
    mean_raw = torch.as_tensor(np.asarray(data.mean_action, np.float32), device=device)     # (7,)
    windows = 0
    for batch in _take(data.val, cfg.batches):
        ctx = torch.as_tensor(batch[C.CONTEXT_FRAMES]).to(device)
        fut = torch.as_tensor(batch[C.FUTURE_FRAMES]).to(device)
        B, H = fut.shape[:2]
        windows += B
        text = torch.as_tensor(batch[C.LANGUAGE_EMBEDDING]).to(device).float()
        raw = torch.as_tensor(batch[C.ACTIONS_RAW]).to(device).float()                    # (B, H, 7)
        term = torch.as_tensor(batch[C.TERMINATE_FLAG]).to(device).float()
        tokens = data.action_tokens(raw, term)                                             # (B, H, 8)
        valid_a = ~torch.as_tensor(batch[C.ACTION_PAD]).to(device).bool()                  # (B, H)
        x_ctx = codec.encode(ctx)
        state_input = getattr(data, "state_input", None)
        state = None if state_input is None else state_input(torch.as_tensor(batch[C.STATE]).float()).to(device)
        state_target = getattr(data, "state_target", None)
        if state_target is not None:
            _score_state_readout(model, x_ctx, text, state, state_target, batch, data, m, autocast)

        d = C.RAW_ACTION_DIM
        sel = valid_a
        base_tok = data.action_tokens(mean_raw.expand(B, H, d), torch.zeros(B, H, device=device))
        m["action_mse_norm_mean_baseline"].add(((base_tok[..., :d] - tokens[..., :d]) ** 2).mean(-1)[sel])
        m["action_mse_raw_mean_baseline"].add(((mean_raw - raw) ** 2).mean(-1)[sel])
        if cfg.world_model:
            x_fut = codec.encode(fut)
            target = fut.cpu()
            copy = ctx[:, -1:].expand_as(fut).cpu()
            valid_f = (~torch.as_tensor(batch[C.FRAME_PAD]).bool()).numpy()
            m["psnr_copy_last"].add(psnr(copy, target)[valid_f])
            m["ssim_copy_last"].add(ssim(copy, target)[valid_f])
        for suffix, steps in runs:
            draws = cfg.one_step_draws if suffix == "_1step" else 1
            # --- policy: actions from context + text (future frames absent)
            pred = _predict(model, {C.CONTEXT: x_ctx, C.ACTIONS: torch.zeros_like(tokens)}, C.ACTIONS, text,
                            steps=steps, draws=draws, generator=gen, autocast=autocast, state=state)
            pred_raw = data.unnormalize(pred)[..., :d]
            m["action_mse_norm" + suffix].add(((pred[..., :d] - tokens[..., :d]) ** 2).mean(-1)[sel])
            m["action_mse_raw" + suffix].add(((pred_raw - raw) ** 2).mean(-1)[sel])
            # --- world model: future frames from context + recorded actions + text
            if cfg.world_model:
                fut_tokens = _predict(model, {C.CONTEXT: x_ctx, C.FUTURE: torch.zeros_like(x_fut), C.ACTIONS: tokens},
                                      C.FUTURE, text, steps=steps, draws=draws, generator=gen, autocast=autocast,
                                      state=state if world_model_state else None)
                fut_tokens = future_from_model(fut_tokens, x_ctx, x_fut.shape[1] // H, model_cfg.future_delta_scale)
                frames = codec.decode(fut_tokens, H).clamp(0, 1).cpu()                      # (B, H, h, w, 3)
                m["psnr" + suffix].add(psnr(frames, target)[valid_f])
                m["ssim" + suffix].add(ssim(frames, target)[valid_f])
    model.train(was_training)
    result = {k: v.value for k, v in m.items() if v.count}
    result["windows"] = float(windows)
    return result


def _score_state_readout(model: torch.nn.Module, x_ctx: torch.Tensor, text: torch.Tensor,
                         state: torch.Tensor | None, state_target: Callable[[torch.Tensor], torch.Tensor],
                         batch: Mapping[str, Any], data: Any, m: Mapping[str, _Mean],
                         autocast: Callable[[], contextlib.AbstractContextManager]) -> None:
    """Add the state head's error on clean context frames, and the mean-state baseline's, to `m`."""
    device = x_ctx.device
    target = state_target(torch.as_tensor(batch[C.STATE]).float()).to(device)              # (B, 8)
    with autocast():
        read = model({C.CONTEXT: x_ctx}, torch.zeros(x_ctx.shape[0], device=device), text,
                     **({} if state is None else {"state": state})).state.float()
    mean_state = torch.as_tensor(np.asarray(data.statistics["state"]["mean"], np.float32))[None]
    m["state_aux_mse"].add(((read - target) ** 2).mean(-1))
    m["state_aux_mse_mean_baseline"].add(((state_target(mean_state).to(device) - target) ** 2).mean(-1))


def _predict(model: torch.nn.Module, x: dict[str, torch.Tensor], group: str, text: torch.Tensor, *, steps: int,
             draws: int, generator: torch.Generator,
             autocast: Callable[[], contextlib.AbstractContextManager],
             state: torch.Tensor | None = None) -> torch.Tensor:
    """`group` sampled from `x` in `steps` steps, averaged over `draws` noise draws (a Monte-Carlo mean), float."""
    outs = []
    for _ in range(draws):
        with autocast():
            outs.append(sample(model, x, [group], text, steps=steps, generator=generator,
                               robot_state=state)[group].float())
    return torch.stack(outs).mean(0)


def _take(batches: Iterable[Mapping[str, Any]], n: int) -> Iterable[Mapping[str, Any]]:
    for i, b in enumerate(batches):
        if i >= n:
            return
        yield b


def summarize(result: Mapping[str, float], suffix: str = "") -> str | None:
    """`model beats baseline` verdicts, e.g. for a demo's last line; `suffix="_1step"` judges the one-step estimate."""
    parts = []
    if "action_mse_norm" + suffix in result:
        parts.append("policy beats mean-action"
                     if result["action_mse_norm" + suffix] < result["action_mse_norm_mean_baseline"]
                     else "policy does NOT beat mean-action")
    if "psnr" + suffix in result:
        parts.append("world model beats copy-last-frame" if result["psnr" + suffix] > result["psnr_copy_last"]
                     else "world model does NOT beat copy-last-frame")
    return "; ".join(parts) if parts else None
