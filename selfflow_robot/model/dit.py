"""SelfFlowDiT: a per-token-timestep adaLN-Zero transformer over context frames, future frames and actions.

The block is the released `SelfFlowPerTokenDiT` block (DiT/SiT geometry and tensor names, so the
ImageNet checkpoint loads): every token carries its own condition vector
`c = t_emb(tau) + text_emb + type_emb[group]` (+ state_emb with `state_dim > 0`), and the block's adaLN-Zero modulation
(shift/scale/gate for attention and MLP) is computed per token. t=1 is noise.

Token layout of one window (groups in `constants.GROUPS` order, any group may be absent):

    context  k frames x (h x w) patches      frame index 0 .. k-1
    future   H frames x (h x w) patches      frame index k .. k+H-1
    actions  H action tokens (8-D)            frame index k .. k+H-1 (the frame each action leads to)

Position encoding: fixed sin-cos over (frame, row, col); action tokens use the frame part only.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from selfflow_robot.constants import ACTIONS, CONTEXT, GROUPS
from selfflow_robot.model.config import DiTConfig

X_PRED_TAU_MIN = 0.05  # x-prediction: velocity = (x_tau - x0_hat) / max(tau, this), as JiT clips it


class DiTOutput(NamedTuple):
    """`velocity`: dict[group, (B, N_g, d_g)] (None when `stop_at` is set); `features`: (B, N, D) or None;
    `state`: (B, aux_state_dim) the state read off the last context frame (models with `aux_state_dim > 0`
    given context tokens, without `stop_at`), else None."""

    velocity: dict[str, torch.Tensor] | None
    features: torch.Tensor | None
    state: torch.Tensor | None = None


#################################################################################
#               Embedding Layers for Timesteps, Text and Positions              #
#################################################################################

def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


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

class Attention(nn.Module):
    """Multi-head self-attention (timm names: qkv, proj) with an optional boolean key mask."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)                                              # (B, heads, N, D/heads)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)    # (B, heads, N, D/heads)
        return self.proj(x.transpose(1, 2).reshape(B, N, D))                # (B, N, D)


class Mlp(nn.Module):
    """fc1 -> GELU(tanh) -> fc2 (timm names)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TokenRoute(NamedTuple):
    """Which of the M condition rows each token uses: `index` (N,) shared by all examples, or (B, N)."""

    index: torch.Tensor

    @property
    def per_example(self) -> bool:
        return self.index.dim() == 2


def _per_token(mod: torch.Tensor, route: TokenRoute | None) -> torch.Tensor:
    """Condition rows (B, M, ·) -> per-token rows (B, N, ·) (route None: M == N already). Copies are exact.

    CPU: `index_select`, whose backward is a serial, bit-reproducible index_add. CUDA: a one-hot matmul,
    whose backward is a matmul too (no atomic adds into a handful of rows; deterministic cuBLAS).
    """
    if route is None:
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


class PerTokenDiTBlock(nn.Module):
    """DiT block with adaLN-Zero modulation computed from a per-token condition."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor, route: TokenRoute | None,
                attn_mask: torch.Tensor | None) -> torch.Tensor:
        mod = _per_token(self.adaLN_modulation(c), route)                   # (B, N, 6D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=-1)
        x = x + gate_msa * self.attn(modulate(self.norm1(x), shift_msa, scale_msa), attn_mask)  # (B, N, D)
        x = x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))             # (B, N, D)
        return x


class PerTokenFinalLayer(nn.Module):
    """Per-token adaLN, then one output projection per token kind (frame patches, actions)."""

    def __init__(self, hidden_size: int, frame_dim: int, action_dim: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, frame_dim, bias=True)
        self.action_linear = nn.Linear(hidden_size, action_dim, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor, route: TokenRoute | None) -> torch.Tensor:
        shift, scale = _per_token(self.adaLN_modulation(c), route).chunk(2, dim=-1)
        return modulate(self.norm_final(x), shift, scale)                    # (B, N, D)


class SimpleHead(nn.Module):
    """Representation projector: Linear(D, P) -> SiLU -> Linear(P, D), as the released `projector`."""

    def __init__(self, hidden_size: int, projector_dim: int):
        super().__init__()
        self.linear1 = nn.Linear(hidden_size, projector_dim)
        self.act = nn.SiLU()
        self.linear2 = nn.Linear(projector_dim, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.act(self.linear1(x)))


class SelfFlowDiT(nn.Module):
    """Per-token-timestep diffusion transformer over (context, future, actions) token groups."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.hidden_size
        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Linear(cfg.frame_token_dim, D, bias=True)   # frame patches, (c p q) order
        self.action_embedder = nn.Sequential(nn.Linear(cfg.action_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.t_embedder = TimestepEmbedder(D, scale=cfg.timestep_scale)
        self.text_embedder = ConditionEmbedder(cfg.text_dim, D, "null_text")
        self.state_embedder = ConditionEmbedder(cfg.state_dim, D, "null_state") if cfg.state_dim else None
        self.group_embed = nn.Embedding(len(GROUPS), D)    # added to the token stream
        self.type_embed = nn.Embedding(len(GROUPS), D)     # added to the condition
        self.blocks = nn.ModuleList([PerTokenDiTBlock(D, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.final_layer = PerTokenFinalLayer(D, cfg.frame_token_dim, cfg.action_dim)
        self.projector = SimpleHead(D, cfg.projector_dim or 2 * D)
        self.state_head = nn.Linear(D, cfg.aux_state_dim) if cfg.aux_state_dim else None
        # compute adaLN once per distinct (example, group, tau) row; False = always per token (for checks)
        self.compress_condition = True
        for g in GROUPS:  # fixed positions of a full window; a group may use fewer tokens (its first N_g)
            self.register_buffer(f"pos_{g}", self._positions(g), persistent=False)
        self.initialize_weights()

    def _positions(self, group: str) -> torch.Tensor:
        cfg, (h, w) = self.cfg, self.cfg.grid
        if group == ACTIONS:
            frame = torch.arange(cfg.horizon) + cfg.context_frames
            return sincos_3d(cfg.hidden_size, frame, None, None)
        first, count = (0, cfg.context_frames) if group == CONTEXT else (cfg.context_frames, cfg.horizon)
        f, r, c = torch.meshgrid(torch.arange(first, first + count), torch.arange(h), torch.arange(w), indexing="ij")
        return sincos_3d(cfg.hidden_size, f.reshape(-1), r.reshape(-1), c.reshape(-1))

    def initialize_weights(self) -> None:
        """DiT init: xavier linears, N(0, .02) embeddings, zero adaLN modulation and zero output layers."""
        def _basic_init(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                torch.nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)
        self.apply(_basic_init)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        nn.init.normal_(self.text_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.text_embedder.mlp[2].weight, std=0.02)
        nn.init.zeros_(self.text_embedder.null_text)
        if self.state_embedder is not None:   # starts as no-op on the condition: zero output layer
            nn.init.normal_(self.state_embedder.mlp[0].weight, std=0.02)
            nn.init.zeros_(self.state_embedder.mlp[2].weight)
            nn.init.zeros_(self.state_embedder.null_state)
        nn.init.normal_(self.group_embed.weight, std=0.02)
        nn.init.normal_(self.type_embed.weight, std=0.02)
        for block in self.blocks:
            nn.init.constant_(block.adaLN_modulation[-1].weight, 0)
            nn.init.constant_(block.adaLN_modulation[-1].bias, 0)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear, self.final_layer.action_linear):
            nn.init.constant_(layer.weight, 0)
            nn.init.constant_(layer.bias, 0)

    def embed_tokens(self, group: str, tokens: torch.Tensor) -> torch.Tensor:
        """Raw tokens (B, N_g, d_g) -> (B, N_g, D) with group and position embeddings."""
        n = tokens.shape[1]
        pos = getattr(self, f"pos_{group}")
        if n > pos.shape[0]:
            raise ValueError(f"group '{group}' has {n} tokens, more than the window's {pos.shape[0]} "
                             f"(context_frames={self.cfg.context_frames}, horizon={self.cfg.horizon})")
        embed = self.action_embedder if group == ACTIONS else self.x_embedder.proj
        h = embed(tokens.to(self.x_embedder.proj.weight.dtype))              # (B, N_g, D)
        return h + pos[:n].to(h.dtype) + self.group_embed.weight[GROUPS.index(group)].to(h.dtype)

    def forward(self, x: Mapping[str, torch.Tensor], tau: Mapping[str, torch.Tensor] | torch.Tensor,
                text: torch.Tensor | None, *, text_drop: torch.Tensor | None = None,
                key_mask: Mapping[str, torch.Tensor] | None = None, feature_layer: int | None = None,
                stop_at: int | None = None, state: torch.Tensor | None = None,
                state_drop: torch.Tensor | None = None) -> DiTOutput:
        """Predict the velocity eps - x0 of every token (with `prediction=x`, via the clean frame tokens).

        Args:
            x: dict[group, (B, N_g, d_g)] raw tokens; absent groups are simply left out.
            tau: dict[group, (B, N_g) or (B,)] noise levels, or one (B,) tensor for all tokens (t=1 = noise).
            text: (B, text_dim) instruction embeddings (None = the learned null text for every row).
            text_drop: (B,) bool, True = replace the row's text with the learned null text (CFG).
            key_mask: dict[group, (B, N_g) bool], False = absent token: no other token attends to it.
            feature_layer: l in 1..depth: also return projector(hidden state after block l) as `features`.
            stop_at: k in 1..depth: run blocks 1..k only; return the raw hidden state after block k as
                `features` and `velocity=None` (the Self-Flow teacher).
            state: (B, state_dim) normalised proprioception (None = the learned null state for every row);
                only for models with `state_dim > 0`.
            state_drop: (B,) bool, True = use the learned null state for that row.
        """
        groups = [g for g in GROUPS if g in x]
        if not groups:
            raise ValueError("SelfFlowDiT.forward needs at least one token group in x")
        unknown = set(x) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown token groups {sorted(unknown)}; expected a subset of {list(GROUPS)}")
        if feature_layer is not None and stop_at is not None:
            raise ValueError("pass either feature_layer (student) or stop_at (teacher), not both")
        for name, layer in (("feature_layer", feature_layer), ("stop_at", stop_at)):
            if layer is not None and not 1 <= layer <= len(self.blocks):
                raise ValueError(f"{name}={layer} must be in 1..{len(self.blocks)}")
        B = x[groups[0]].shape[0]
        sizes = [x[g].shape[1] for g in groups]
        dtype = self.x_embedder.proj.weight.dtype
        if state is not None and self.state_embedder is None:
            raise ValueError("this model has no state input (model.state_dim=0) but was given a state")
        if state is not None and state.shape != (B, self.cfg.state_dim):
            raise ValueError(f"state must be (B, {self.cfg.state_dim}) = ({B}, {self.cfg.state_dim}), "
                             f"got {tuple(state.shape)}")

        h = torch.cat([self.embed_tokens(g, x[g]) for g in groups], dim=1)  # (B, N, D)
        cond = self.text_embedder(text, text_drop, B)                        # (B, D)
        if self.state_embedder is not None:
            cond = cond + self.state_embedder(state, state_drop, B)
        c, route = self._condition(groups, sizes, tau, cond, B)              # (B, M, D), TokenRoute or None
        c = c.to(dtype)
        attn_mask = None
        if key_mask is not None:
            keep = torch.cat([key_mask[g].to(torch.bool) if g in key_mask
                              else torch.ones(B, n, dtype=torch.bool, device=h.device)
                              for g, n in zip(groups, sizes)], dim=1)        # (B, N)
            attn_mask = keep[:, None, None, :]                               # (B, 1, 1, N) True = attend

        last = stop_at if stop_at is not None else len(self.blocks)
        features = None
        for i, block in enumerate(self.blocks[:last], start=1):
            h = block(h, c, route, attn_mask)                                # (B, N, D)
            if i == feature_layer:
                features = self.projector(h)                                 # (B, N, D)
        if stop_at is not None:
            return DiTOutput(velocity=None, features=h)
        state_hat = None
        if self.state_head is not None and CONTEXT in x:
            ctx = h[:, :sizes[0]]                                            # context is the first group
            state_hat = self.state_head(ctx[:, -self.cfg.tokens_per_frame:].mean(1))  # (B, aux_state_dim)
        h = self.final_layer(h, c, route)                                    # (B, N, D)
        velocity = {}
        for g, part in zip(groups, h.split(sizes, dim=1)):
            head = self.final_layer.action_linear if g == ACTIONS else self.final_layer.linear
            out = head(part)                                                 # (B, N_g, d_g)
            if g != ACTIONS and self.cfg.prediction == "x":                  # out = x0_hat
                t = tau[g] if isinstance(tau, Mapping) else tau
                t = (t[:, None] if t.dim() == 1 else t)[..., None].to(out.dtype)  # (B, N_g or 1, 1)
                out = (x[g].to(out.dtype) - out) / t.clamp_min(X_PRED_TAU_MIN)
            velocity[g] = out
        return DiTOutput(velocity=velocity, features=features, state=state_hat)

    def _condition(self, groups: list[str], sizes: list[int], tau: Mapping[str, torch.Tensor] | torch.Tensor,
                   cond: torch.Tensor, B: int) -> tuple[torch.Tensor, TokenRoute | None]:
        """Condition rows c = t_emb(tau) + cond + type_emb (B, M, D) and the token -> row route, where `cond`
        (B, D) is the per-example part (text embedding, plus the state embedding).

        The condition of a token depends only on (example, group, tau), so the adaLN modulation (the
        costliest part of per-token conditioning, 6·D² per token and block) is computed once per distinct
        row and expanded to tokens inside the blocks; the numbers are those of the per-token path.
          - every group's tau one value per example: M = G rows;
          - per-token tau with at most two levels per (example, group), as Dual-Timestep Scheduling
            draws (t or s): M = 2·G rows;
          - anything else (or `compress_condition = False`): M = N rows, `route` None.
        """
        if isinstance(tau, torch.Tensor):
            tau = {g: tau for g in groups}
        missing = [g for g in groups if g not in tau]
        if missing:
            raise ValueError(f"tau has no entry for token groups {missing}")
        device = self.t_embedder.mlp[0].weight.device
        cond = cond[:, None]                                                 # (B, 1, D)
        types = torch.tensor([GROUPS.index(g) for g in groups], device=device)
        type_emb = self.type_embed(types)                                    # (G, D)
        G = len(groups)
        group_of_token = torch.repeat_interleave(torch.arange(G, device="cpu"),
                                                 torch.tensor(sizes, device="cpu")).to(device)  # (N,)
        if all(tau[g].dim() <= 1 for g in groups) and self.compress_condition:
            t = torch.stack([tau[g].expand(B) for g in groups], dim=1)      # (B, G)
            c = self.t_embedder(t) + cond + type_emb[None]                   # (B, G, D)
            return c, TokenRoute(group_of_token)
        t = torch.cat([tau[g].expand(B, n) if tau[g].dim() == 2 else tau[g].reshape(-1, 1).expand(B, n)
                       for g, n in zip(groups, sizes)], dim=1)               # (B, N)
        if self.compress_condition:
            parts = t.split(sizes, dim=1)
            lo = torch.stack([p.amin(dim=1) for p in parts], dim=1)          # (B, G)
            hi = torch.stack([p.amax(dim=1) for p in parts], dim=1)          # (B, G)
            lo_tok, hi_tok = lo[:, group_of_token], hi[:, group_of_token]    # (B, N)
            if bool(((t == lo_tok) | (t == hi_tok)).all()):                 # two levels at most (one host sync)
                levels = torch.stack([lo, hi], dim=2).reshape(B, 2 * G)      # (B, 2G): rows (g, lo), (g, hi)
                c = self.t_embedder(levels) + cond + type_emb.repeat_interleave(2, dim=0)[None]  # (B, 2G, D)
                return c, TokenRoute(2 * group_of_token[None] + (t == hi_tok).long())  # (B, N)
        c = self.t_embedder(t) + cond + type_emb[group_of_token][None]       # (B, N, D)
        return c, None
