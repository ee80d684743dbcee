"""Training modes per example, and the batch -> `FlowBatch` step (docs/architecture.md, "Model").

| mode        | future frames                | actions          |
|-------------|------------------------------|------------------|
| world_model | noisy (generated)            | clean condition  |
| policy      | absent (key_mask False)      | noisy            |
| joint       | noisy                        | noisy            |

Context frames are always clean. The loss covers noisy tokens that are not padding
(`frame_pad` / `action_pad` from the windows). Text dropout (learned null text) trains CFG.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import torch

from selfflow_robot import constants as C
from selfflow_robot.model.future import future_to_model
from selfflow_robot.objective.batch import FlowBatch


class Mode(str, Enum):
    """One training example's mode (index order = the order of `MODES`)."""

    world_model = "world_model"
    policy = "policy"
    joint = "joint"


MODES = (Mode.world_model, Mode.policy, Mode.joint)


def mode_probabilities(probs: Mapping[str, float]) -> torch.Tensor:
    """(3,) normalised probabilities in `MODES` order."""
    p = torch.tensor([float(probs[m.value]) for m in MODES], dtype=torch.float64)
    return p / p.sum()


def sample_modes(batch_size: int, probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) int64 mode index per example, drawn i.i.d. from `probs` (3,)."""
    return torch.multinomial(probs.float(), batch_size, replacement=True, generator=generator)


def build_flow_batch(batch: Mapping[str, Any], encode: Callable[[torch.Tensor], torch.Tensor],
                     action_tokens: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], modes: torch.Tensor,
                     text_dropout: float, device: torch.device,
                     generator: torch.Generator | None = None,
                     state_input: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     state_dropout: float = 0.0, state_noise: float = 0.0,
                     state_target: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     future_delta_scale: float = 0.0,
                     shift: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
                     context_noise: float = 0.0, world_model_state: bool = False) -> FlowBatch:
    """Turn a collated window batch into the objective's `FlowBatch`.

    Args:
        batch: collated windows (keys in `selfflow_robot.constants`).
        encode: the codec's `encode`: uint8 frames (B, T, H, W, 3) -> tokens (B, T*h*w, d).
        action_tokens: (raw actions (B, H, 7), terminate (B, H)) -> normalised 8-D tokens (B, H, 8).
        modes: (B,) mode indices into `MODES`.
        text_dropout: probability of the null text per example.
        device: where the tokens go.
        generator: CPU generator for the text-dropout draw (None = torch's global RNG).
        state_input: raw proprioception (B, 8) -> the model's normalised state, for models with a state
            input (None = no state). World-model examples get the null state: the actions they are given
            already say where the arm goes, and imagined rollouts have no measured state to give.
        state_dropout: probability of the null state for a policy or joint example, so the policy also
            learns to act from the image alone and cannot lean on the state for what only the image
            shows (where the drawer is): the copycat failure of behaviour cloning with proprioception.
        state_noise: std of Gaussian noise added to the normalised state (units of the q01..q99 half-range).
        The two draws use `generator` only when they are on, so runs without them are unchanged.
        state_target: raw proprioception (B, 8) -> the normalised target of the model's state-prediction
            head (models with `model.aux_state_dim > 0`), or None. Never noised or dropped: it is a label.
        future_delta_scale: the model's `future_delta_scale`: the future target is the scaled change from the
            last context frame (`model/future.py`) instead of the frames' own tokens (0).
        shift: `(x_ctx, x_fut, generator=) -> (x_ctx, x_fut)`, the random-shift augmentation of the encoded
            windows (`train/augment.py`; None = none, and no draw from `generator`).
        context_noise: the largest std of Gaussian noise on the context tokens of world-model and joint examples
            (each example draws its std uniformly from [0, context_noise]; 0 = clean, no draw). Policy examples
            keep a clean context. The future target stays what it was, so the world model learns to imagine from
            a corrupted past, as it must in a long rollout from its own frames (GameNGen's noise augmentation).
        world_model_state: world-model examples get the state as well (dropout and noise as for the others)
            instead of the null state.
    """
    ctx = torch.as_tensor(batch[C.CONTEXT_FRAMES]).to(device)
    fut = torch.as_tensor(batch[C.FUTURE_FRAMES]).to(device)
    B, H = fut.shape[:2]
    modes = modes.to(device)
    is_policy = modes == MODES.index(Mode.policy)
    frames_noisy = ~is_policy                                   # world_model, joint
    actions_noisy = modes != MODES.index(Mode.world_model)      # policy, joint
    with torch.no_grad():
        x_ctx = encode(ctx)                                     # (B, k*h*w, d)
        x_fut = encode(fut)                                     # (B, H*h*w, d)
        if shift is not None:
            x_ctx, x_fut = shift(x_ctx, x_fut, generator=generator)
    per_frame = x_fut.shape[1] // H
    x_fut = future_to_model(x_fut, x_ctx, per_frame, future_delta_scale)
    if context_noise > 0:
        std = context_noise * torch.rand(B, generator=generator) * frames_noisy.cpu()
        x_ctx = x_ctx + std.to(device)[:, None, None] * torch.randn(x_ctx.shape, generator=generator).to(device)
    acts = action_tokens(torch.as_tensor(batch[C.ACTIONS_RAW]).to(device).float(),
                         torch.as_tensor(batch[C.TERMINATE_FLAG]).to(device).float())  # (B, H, 8)
    frame_pad = torch.as_tensor(batch[C.FRAME_PAD]).to(device).bool()          # (B, H)
    action_pad = torch.as_tensor(batch[C.ACTION_PAD]).to(device).bool()        # (B, H)
    drop = torch.rand(B, generator=generator) < text_dropout
    state, state_drop = None, None
    if state_input is not None:
        state = state_input(torch.as_tensor(batch[C.STATE]).float())
        if state_noise > 0:
            state = state + state_noise * torch.randn(state.shape, generator=generator)
        state = state.to(device)
        state_drop = torch.zeros_like(actions_noisy) if world_model_state else ~actions_noisy
        if state_dropout > 0:
            state_drop = state_drop | (torch.rand(B, generator=generator) < state_dropout).to(device)
    target = None
    if state_target is not None:
        target = state_target(torch.as_tensor(batch[C.STATE]).float()).to(device)
    return FlowBatch(
        x0={C.CONTEXT: x_ctx, C.FUTURE: x_fut, C.ACTIONS: acts},
        noisy={C.CONTEXT: torch.zeros(B, dtype=torch.bool, device=device),
               C.FUTURE: frames_noisy, C.ACTIONS: actions_noisy},
        text=torch.as_tensor(batch[C.LANGUAGE_EMBEDDING]).to(device).float(),
        text_drop=drop.to(device),
        # policy examples drop the future frames: no token attends to them (and the loss ignores them)
        key_mask={C.FUTURE: (~is_policy)[:, None].expand(B, H * per_frame)},
        loss_mask={C.FUTURE: (~frame_pad).repeat_interleave(per_frame, dim=1),
                   C.ACTIONS: ~action_pad},
        state=state,
        state_drop=state_drop,
        state_target=target,
    )
