"""The building blocks of `SelfFlowDiT`: embedders, sin-cos positions, attention, the per-token adaLN-Zero block,
the final layer and the representation projector (DiT/SiT tensor names, so released weights load)."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

#               Embedding Layers for Timesteps, Text and Positions              #
#################################################################################

def norm_modulate(x: torch.Tensor, shift: torch.Tensor, scale1: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """LayerNorm without affine parameters (over the last dim), then the adaLN modulation ln(x)·(1 + scale) + shift,
    with `scale1` = 1 + scale; x (B, N, D), shift/scale1 (B, N or 1, D), or (D,) for every token. One row for
    every token of one example (B = 1, e.g. a policy's context or action tokens), or a (D,) row, is taken as the
    norm's affine parameters: one op, the same numbers up to rounding."""
    D = x.shape[-1]
    if shift.dim() == 1:
        return torch.layer_norm(x, (D,), scale1, shift, eps)
    if x.shape[0] == 1 and shift.shape[:-1].numel() == 1:
        return torch.layer_norm(x, (D,), scale1.reshape(D), shift.reshape(D), eps)
    return torch.addcmul(shift, torch.layer_norm(x, (D,), None, None, eps), scale1)


GELU_K = 2 * math.sqrt(2 / math.pi)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation (`F.gelu(x, approximate="tanh")`), written as the same function
    x·sigmoid(2·sqrt(2/pi)·(x + 0.044715·x³)): on the CPU without autograd, for tensors large enough that the
    five extra dispatches do not matter (a context's MLP), in place on a fresh tensor, about twice as fast as
    torch's kernel (equal up to rounding, ~1e-7); elsewhere torch's."""
    if x.is_cuda or torch.is_grad_enabled() or x.numel() < 32768:
        return F.gelu(x, approximate="tanh")
    u = x * x
    u.mul_(0.044715 * GELU_K).add_(GELU_K).mul_(x)                           # K·(x + 0.044715·x³)
    return u.sigmoid_().mul_(x)


class TimestepEmbedder(nn.Module):
    """Embeds scalar noise levels (any shape) into vectors (..., D). Same tensors as DiT's."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256, scale: float = 1.0):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size, bias=True),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size, bias=True),
        )
        self.frequency_embedding_size = frequency_embedding_size
        self.scale = scale

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
        """Sinusoidal embedding [cos(t·f), sin(t·f)] of a 1-D tensor t (N,) -> (N, dim), as in DiT."""
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        shape = t.shape
        t_freq = self.timestep_embedding(t.reshape(-1) * self.scale, self.frequency_embedding_size)
        t_freq = t_freq.to(self.mlp[0].weight.dtype)
        return self.mlp(t_freq).reshape(*shape, -1)                          # (*shape, D)


class ConditionEmbedder(nn.Module):
    """A per-example condition (B, in_dim) -> (B, D) through Linear-SiLU-Linear; rows that are missing (`x` None)
    or dropped (`drop` True) use a learned null input, stored as the parameter `null_name`.

    The instruction (`text_embedder`, `null_text`: the null text trains classifier-free guidance) and the
    robot state (`state_embedder`, `null_state`) use it.
    """

    def __init__(self, in_dim: int, hidden_size: int, null_name: str):
        super().__init__()
        self.null_name = null_name
        self.register_parameter(null_name, nn.Parameter(torch.zeros(in_dim)))
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, x: torch.Tensor | None, drop: torch.Tensor | None, batch: int) -> torch.Tensor:
        null = getattr(self, self.null_name).to(self.mlp[0].weight.dtype)
        if x is None:
            x = null.expand(batch, -1)
        else:
            x = x.to(null.dtype)
            if drop is not None:
                x = torch.where(drop.to(torch.bool)[:, None], null[None], x)
        return self.mlp(x)                                                   # (B, D)


def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """Fixed sin-cos embedding (N, dim) of integer positions (N,)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    out = pos.double()[:, None] * omega[None]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1).float()


def sincos_3d(dim: int, frame: torch.Tensor, row: torch.Tensor | None, col: torch.Tensor | None) -> torch.Tensor:
    """Sin-cos over (frame, row, col): row and col each take 2·(dim//6) channels, frame the rest.

    `row`/`col` None (action tokens) leave their channels zero, so those tokens carry only a frame position.
    """
    d_rc = 2 * (dim // 6)
    d_f = dim - 2 * d_rc
    parts = [sincos_1d(d_f, frame)]
    for p in (row, col):
        parts.append(sincos_1d(d_rc, p) if p is not None else torch.zeros(len(frame), d_rc))
    return torch.cat(parts, dim=1)


#################################################################################
#                                 Core DiT Model                                #
#################################################################################

KeyValue = tuple[torch.Tensor, torch.Tensor]  # keys, values: (B, heads, N, D/heads) each


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
           attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """`F.scaled_dot_product_attention`, in fp32 for bf16 inputs on the CPU: under CPU bf16 autocast the
    matmuls run ~2.5x faster than fp32 (AVX512-BF16), but torch's bf16 CPU attention backward runs ~4x slower
    than its fp32 one, which made bf16 training no faster at all. The result is cast back to bf16."""
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), keys.float(), values.float(),
                                                  attn_mask=attn_mask).to(q.dtype)
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=attn_mask)


class Attention(nn.Module):
    """Multi-head self-attention (timm names: qkv, proj) with an optional boolean mask and prefix keys/values."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None,
                prefix: KeyValue | None = None) -> tuple[torch.Tensor, KeyValue]:
        """Attend from the tokens of `x` to `prefix` (keys/values of tokens computed before, e.g. the cached
        clean context) and to themselves. `attn_mask`: bool, True = attend, over the prefix keys, then
        `x`'s. Returns the output (B, N, D) and `x`'s own keys/values (what a later call takes as `prefix`)."""
        B, N, D = x.shape
        qkv = F.linear(x, self.qkv.weight, self.qkv.bias)                  # (B, N, 3D)
        q, k, v = qkv.view(B, N, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        keys, values = (k, v) if prefix is None else (torch.cat([prefix[0], k], 2), torch.cat([prefix[1], v], 2))
        out = attend(q, keys, values, attn_mask)                             # (B, heads, N, D/heads)
        return F.linear(out.transpose(1, 2).reshape(B, N, D), self.proj.weight, self.proj.bias), (k, v)

    def keys_values(self, x: torch.Tensor) -> KeyValue:
        """Only the keys/values of the tokens of `x` (B, N, D), as `forward` returns them (no queries, no
        attention): for tokens whose output nobody reads."""
        B, N, D = x.shape
        kv = F.linear(x, self.qkv.weight[D:], self.qkv.bias[D:])           # (B, N, 2D)
        k, v = kv.view(B, N, 2, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        return k, v                                                          # (B, heads, N, D/heads) each


class Mlp(nn.Module):
    """fc1 -> GELU(tanh) -> fc2 (timm names)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(gelu_tanh(F.linear(x, self.fc1.weight, self.fc1.bias)), self.fc2.weight, self.fc2.bias)


class TokenRoute(NamedTuple):
    """Which of the M condition rows each token uses: `index` (N,) shared by all examples, or (B, N)."""

    index: torch.Tensor

    @property
    def per_example(self) -> bool:
        return self.index.dim() == 2


def _per_token(mod: torch.Tensor, route: TokenRoute | None) -> torch.Tensor:
    """Condition rows (B, M, ·) -> per-token rows (B, N, ·) (route None: M == N already). Copies are exact.

    One row shared by every token (M == 1, e.g. the context alone, or the action tokens alone) stays (B, 1, ·)
    and broadcasts: no copy. Otherwise CPU: `index_select`, whose backward is a serial, bit-reproducible
    index_add. CUDA: a one-hot matmul, whose backward is a matmul too (no atomic adds into a handful of rows;
    deterministic cuBLAS).
    """
    if route is None or (mod.shape[1] == 1 and not route.per_example):
        return mod
    return _route_matmul(mod, route) if mod.is_cuda else _route_select(mod, route)


def _route_matmul(mod: torch.Tensor, route: TokenRoute) -> torch.Tensor:
    return torch.matmul(F.one_hot(route.index, mod.shape[1]).to(mod.dtype), mod)


def _route_select(mod: torch.Tensor, route: TokenRoute) -> torch.Tensor:
    B, M, K = mod.shape
    if not route.per_example:
        return mod.index_select(1, route.index)
    flat = (route.index + M * torch.arange(B, device=mod.device)[:, None]).reshape(-1)   # (B*N,)
    return mod.reshape(B * M, K).index_select(0, flat).reshape(B, -1, K)


Modulation = tuple[torch.Tensor, ...]
"""The adaLN-Zero modulation of a block (shift, 1 + scale, gate for the attention, then for the MLP) or of the final
layer (shift, 1 + scale), each (B, N or 1, D), or (D,) for every token."""


def modulation(mod: torch.Tensor, route: TokenRoute | None, parts: int) -> Modulation:
    """Modulation rows (B, M, parts·D) (`adaLN_modulation(c)`) -> `parts` per-token tensors (B, N or 1, D), the
    scales (parts 1 and 4) as 1 + scale."""
    out = list(_per_token(mod, route).chunk(parts, dim=-1))
    for i in range(1, parts, 3):
        out[i] = out[i] + 1
    return tuple(out)


def modulation_ahead(mod: torch.Tensor, rows: list[int], parts: int) -> list[torch.Tensor] | list[Modulation]:
    """What each of several passes keeps of their modulation rows computed at once, (B, sum(rows), parts·D), the
    `rows[s]` rows of pass s after those of the passes before (`pre_mod=` of the block and the final layer): when every
    pass has one row for all its tokens, its `Modulation` ((D,) rows for one example: no per-token copies), else
    its rows (B, rows[s], parts·D), expanded to tokens during the pass (per-token copies for every denoising step
    would take much memory)."""
    if any(r != 1 for r in rows):
        return list(mod.split(rows, dim=1))
    B, R = mod.shape[:2]
    split = modulation(mod, None, parts)                                     # parts x (B, R, D)
    per = [p.reshape(R, -1).unbind(0) if B == 1 else p.transpose(0, 1).unsqueeze(2).unbind(0) for p in split]
    return list(zip(*per))


class PerTokenDiTBlock(nn.Module):
    """DiT block with adaLN-Zero modulation computed from a per-token condition."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, route: TokenRoute | None,
                attn_mask: torch.Tensor | None, prefix: KeyValue | None = None,
                pre_mod: torch.Tensor | Modulation | None = None,
                keys_only: bool = False) -> tuple[torch.Tensor | None, KeyValue]:
        """`x` (B, N, D) -> (B, N, D), and the attention keys/values of `x`'s tokens (see `Attention`).

        `c` (B, M, D): the condition rows; or `pre_mod`: their modulation computed beforehand (a sampler computes every
        step's at once), rows `adaLN_modulation(c)` (B, M, 6D) or a `Modulation`, and then `c` is not used.
        `keys_only`: compute the keys/values only (the last block of a context whose outputs nobody reads) and
        return None for x."""
        mod = pre_mod  # not named `mod`: torch.export passes the module itself by that name
        if not isinstance(mod, tuple):
            mod = modulation(self.adaLN_modulation(c) if mod is None else mod, route, 6)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        h = norm_modulate(x, shift_msa, scale_msa, self.norm1.eps)
        if keys_only:
            return None, self.attn.keys_values(h)
        a, kv = self.attn(h, attn_mask, prefix)
        x = torch.addcmul(x, gate_msa, a)                                    # x + gate·a (B, N, D)
        x = torch.addcmul(x, gate_mlp, self.mlp(norm_modulate(x, shift_mlp, scale_mlp, self.norm2.eps)))
        return x, kv                                                         # (B, N, D)

    def step(self, x: torch.Tensor, mod: Modulation, room: KeyValue) -> torch.Tensor:
        """`forward` for a denoising step against a cached prefix, without autograd: the same math (the same
        numbers), with fewer dispatches (no sub-module calls, no concatenation). `room`: the prefix's keys/values
        with room for `x`'s own (B, heads, N_prefix + N, D/heads) each; `x`'s are written into the last N."""
        B, N, D = x.shape
        attn, mlp, heads = self.attn, self.mlp, self.attn.num_heads
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        h = norm_modulate(x, shift_msa, scale_msa, self.norm1.eps)
        q, k, v = F.linear(h, attn.qkv.weight, attn.qkv.bias).view(B, N, 3, heads, D // heads).permute(
            2, 0, 3, 1, 4).unbind(0)                                         # (B, heads, N, D/heads)
        keys, values = room
        n_prefix = keys.shape[2] - N
        keys.narrow(2, n_prefix, N).copy_(k)
        values.narrow(2, n_prefix, N).copy_(v)
        a = attend(q, keys, values).transpose(1, 2).reshape(B, N, D)
        x = torch.addcmul(x, gate_msa, F.linear(a, attn.proj.weight, attn.proj.bias))
        h = F.linear(norm_modulate(x, shift_mlp, scale_mlp, self.norm2.eps), mlp.fc1.weight, mlp.fc1.bias)
        h = F.linear(gelu_tanh(h), mlp.fc2.weight, mlp.fc2.bias)
        return torch.addcmul(x, gate_mlp, h)                                 # (B, N, D)


class PerTokenFinalLayer(nn.Module):
    """Per-token adaLN, then one output projection per token kind (frame patches, actions)."""

    def __init__(self, hidden_size: int, frame_dim: int, action_dim: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, frame_dim, bias=True)
        self.action_linear = nn.Linear(hidden_size, action_dim, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, route: TokenRoute | None,
                pre_mod: torch.Tensor | Modulation | None = None) -> torch.Tensor:
        """`x` (B, N, D) -> (B, N, D) modulated by the condition rows `c` (B, M, D), or by their modulation computed
        beforehand: rows `adaLN_modulation(c)` (B, M, 2D) or a `Modulation`."""
        mod = pre_mod
        if not isinstance(mod, tuple):
            mod = modulation(self.adaLN_modulation(c) if mod is None else mod, route, 2)
        return norm_modulate(x, *mod, self.norm_final.eps)                   # (B, N, D)


class SimpleHead(nn.Module):
    """Representation projector: Linear(D, P) -> SiLU -> Linear(P, D), as the released `projector`."""

    def __init__(self, hidden_size: int, projector_dim: int):
        super().__init__()
        self.linear1 = nn.Linear(hidden_size, projector_dim)
        self.act = nn.SiLU()
        self.linear2 = nn.Linear(projector_dim, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.act(self.linear1(x)))
