"""The policy's denoiser as two graphs, for prefix-attention checkpoints (`model.attention=prefix`): the context
pass, run once per chunk, and one denoising step against its cached keys/values, run `steps` times. The same
split as the eager policy's context cache (`SelfFlowDiT.encode_prefix`), in a form `export` can write out:

    ContextKV:             (context (B, k*h*w, d), text (B, 512), text_drop (B,) [, state (B, S)])
                               -> kv (depth, 2, B, heads, k*h*w, D/heads)
    CachedActionDenoiser:  (kv, actions (B, H, A), tau (B,), text, text_drop [, state]) -> velocity (B, H, A)

The context's keys/values depend on the text and state (their adaLN modulation), so both graphs take them; the
sampler (`export.ExportedSampler`) runs the first once per chunk, with the CFG branches stacked as rows.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn as nn

from selfflow_robot.constants import ACTIONS
from selfflow_robot.model.tokens import PrefixCache

CONTEXT_INPUTS = ("context", "text", "text_drop")
STEP_INPUTS = ("kv", "actions", "tau", "text", "text_drop")
KV_BATCH_DIM = 2   # kv is (depth, 2, B, heads, N, D/heads)


def is_prefix(model_cfg: object) -> bool:
    """Whether a checkpoint's context can be cached (its context attends only to itself)."""
    return getattr(model_cfg, "attention", "full") == "prefix"


class ContextKV(nn.Module):
    """Every block's keys/values of the clean context (tau = 0), stacked: (depth, 2, B, heads, N_ctx, D/heads)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, context: torch.Tensor, text: torch.Tensor, text_drop: torch.Tensor,
                state: torch.Tensor | None = None) -> torch.Tensor:
        extra = {} if state is None else {"state": state}
        cache = self.model.encode_prefix(context, text, text_drop=text_drop, keys_only=True, **extra)
        return torch.stack([torch.stack(kv) for kv in cache.kv])


class CachedActionDenoiser(nn.Module):
    """`export.ActionDenoiser` against the context's cached keys/values (from `ContextKV`, same rows)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, kv: torch.Tensor, actions: torch.Tensor, tau: torch.Tensor, text: torch.Tensor,
                text_drop: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        prefix = PrefixCache(kv=[(layer[0], layer[1]) for layer in kv.unbind(0)], hidden=None, features=None,
                             c=None, route=None)
        extra = {} if state is None else {"state": state}
        out = self.model({ACTIONS: actions}, {ACTIONS: tau}, text, text_drop=text_drop, prefix=prefix, **extra)
        return out.velocity[ACTIONS]


class CachedGraphs(NamedTuple):
    """The two callables a cached sampler runs: `context` (ContextKV's signature) and `step`
    (CachedActionDenoiser's), eager modules or loaded exported graphs."""

    context: Callable[..., torch.Tensor]
    step: Callable[..., torch.Tensor]

