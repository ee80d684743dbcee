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

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from selfflow_robot.constants import ACTIONS, CONTEXT, GROUPS
from selfflow_robot.model.config import DiTConfig
from selfflow_robot.model.layers import (
    ConditionEmbedder,
    PerTokenDiTBlock,
    PerTokenFinalLayer,
    SimpleHead,
    TimestepEmbedder,
    TokenRoute,
    modulation_ahead,
    sincos_3d,
)
from selfflow_robot.model.tokens import Conditioning, DiTOutput, PrefixCache, attention_mask, check_groups, scatter_rows

X_PRED_TAU_MIN = 0.05  # x-prediction: velocity = (x_tau - x0_hat) / max(tau, this), as JiT clips it


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
        # attention='prefix': run the context once and the rest against its keys/values; False = one pass
        # under the prefix mask (the reference the cached path is checked against)
        self.split_prefix = True
        # rows that leave a token group out entirely run without those tokens (False: keep them, masked)
        self.drop_absent_tokens = True
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
        for layer in [block.adaLN_modulation[-1] for block in self.blocks] + [
                self.final_layer.adaLN_modulation[-1], self.final_layer.linear, self.final_layer.action_linear]:
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
                state_drop: torch.Tensor | None = None, prefix: PrefixCache | None = None,
                draws: int = 1, conditioning: Conditioning | None = None) -> DiTOutput:
        """Predict the velocity eps - x0 of every token (with `prediction=x`, via the clean frame tokens).

        Args:
            x: dict[group, (B, N_g, d_g)] raw tokens; absent groups are simply left out.
            tau: dict[group, (B, N_g) or (B,)] noise levels, or one (B,) tensor for all tokens (t=1 = noise).
            text: (B, text_dim) instruction embeddings (None = the learned null text for every row).
            text_drop: (B,) bool, True = replace the row's text with the learned null text (CFG).
            key_mask: dict[group, (B, N_g) bool], False = absent token: no other token attends to it. A group
                absent for a whole row (the policy examples' future frames) is dropped from that row's sequence.
            feature_layer: l in 1..depth: also return projector(hidden state after block l) as `features`.
            stop_at: k in 1..depth: run blocks 1..k only; return the raw hidden state after block k as
                `features` and `velocity=None` (the Self-Flow teacher).
            state: (B, state_dim) normalised proprioception (None = the learned null state for every row);
                only for models with `state_dim > 0`.
            state_drop: (B,) bool, True = use the learned null state for that row.
            prefix: the clean context's keys/values from `encode_prefix` (models with `attention="prefix"`):
                `x` then holds the other groups only, row for row with the cache, and `text`/`state` must be
                those the cache was made with. `features` then cover `x`'s tokens only.
            draws: k noise draws per window: the context, `text`, `text_drop`, `state` and `state_drop` have B
                rows, every other group (and its tau and key_mask) B·k rows, row i·k + j = draw j of window i.
                The outputs then cover the other groups only (B·k rows). Under `attention="prefix"` the
                context is computed once per window; otherwise it is repeated.
            conditioning: the adaLN modulation of `x`'s tokens at these `tau`, `text` and `state`, computed ahead
                by `conditioning` (a sampler: every step's at once); the pass then skips computing it. Not with
                `draws > 1`, with rows that drop a token group, or with the context in `x` under prefix
                attention (the pass then splits its tokens itself).

        With `attention="prefix"` and context tokens in `x`, the context is run once on its own and the other
        tokens attend to its cached keys/values: the same numbers as one pass under the prefix mask. Outputs of
        dropped tokens are zeros.
        """
        groups = check_groups(len(self.blocks), x, feature_layer, stop_at)
        if prefix is not None and CONTEXT in x:
            raise ValueError("with a prefix cache, x must not hold the context tokens again")
        if draws > 1 and (CONTEXT not in x or len(groups) == 1):
            raise ValueError("draws > 1 needs the context and at least one other group in x")
        prefix_attention = self.cfg.attention == "prefix" and CONTEXT in x and len(groups) > 1
        if conditioning is not None:
            conditioning.check({g: x[g].shape[1] for g in groups}, draws > 1 or prefix_attention and self.split_prefix)
            return self._run_rows(x, tau, None, key_mask, feature_layer, stop_at, prefix, prefix_attention,
                                  conditioning)
        cond = self._cond(text, text_drop, state, state_drop, x[groups[0]].shape[0])   # (B, D)
        if prefix_attention and self.split_prefix:
            prefix = self._encode_prefix(x[CONTEXT], cond, feature_layer, stop_at)
        elif draws > 1:   # full attention (or the one-pass reference): every draw carries its own context copy
            x = {g: v.repeat_interleave(draws, 0) if g == CONTEXT else v for g, v in x.items()}
            if isinstance(tau, Mapping):
                tau = {g: v.repeat_interleave(draws, 0) if g == CONTEXT else v for g, v in tau.items()}
            if key_mask is not None and CONTEXT in key_mask:
                key_mask = {**key_mask, CONTEXT: key_mask[CONTEXT].repeat_interleave(draws, 0)}
        cond = cond.repeat_interleave(draws, 0) if draws > 1 else cond
        if not (prefix_attention and self.split_prefix):
            out = self._run_rows(x, tau, cond, key_mask, feature_layer, stop_at, prefix, prefix_attention)
            if draws == 1:
                return out
            n_ctx = x[CONTEXT].shape[1]
            return DiTOutput(velocity=None if out.velocity is None else
                             {g: v for g, v in out.velocity.items() if g != CONTEXT},
                             features=None if out.features is None else out.features[:, n_ctx:], state=out.state)
        cache = prefix.repeat_interleave(draws)   # the context's cache, once per draw (itself when draws == 1)
        rest = {g: x[g] for g in groups[1:]}
        out = self._run_rows(rest, tau if isinstance(tau, torch.Tensor) else {g: tau[g] for g in rest}, cond,
                             None if key_mask is None else {g: m for g, m in key_mask.items() if g != CONTEXT},
                             feature_layer, stop_at, cache)
        if draws > 1:
            return out
        features = None if out.features is None else torch.cat([prefix.features, out.features], dim=1)
        if stop_at is not None:
            return DiTOutput(velocity=None, features=features)
        t_ctx = tau[CONTEXT] if isinstance(tau, Mapping) else tau
        v_ctx = self._velocity(CONTEXT, self.final_layer(prefix.hidden, prefix.c, prefix.route), x[CONTEXT], t_ctx)
        return DiTOutput(velocity={CONTEXT: v_ctx, **out.velocity}, features=features, state=out.state)

    def _run_rows(self, x: Mapping[str, torch.Tensor], tau: Mapping[str, torch.Tensor] | torch.Tensor,
                  cond: torch.Tensor | None, key_mask: Mapping[str, torch.Tensor] | None, feature_layer: int | None,
                  stop_at: int | None, prefix: PrefixCache | None, prefix_mask: bool = False,
                  conditioning: Conditioning | None = None) -> DiTOutput:
        """`_run`, with the rows split by the groups they use when a group is absent from whole rows (key_mask):
        those tokens are dropped from the sequence instead of masked; their outputs come back as zeros.
        `drop_absent_tokens = False` masks them instead (FSDP: every process must call the blocks equally often)."""
        groups = [g for g in GROUPS if g in x]
        whole = {g: key_mask[g].any(1) for g in groups if key_mask is not None and g in key_mask}
        if prefix_mask or not self.drop_absent_tokens or not whole or all(bool(w.all()) for w in whole.values()):
            return self._run(x, tau, cond, key_mask, feature_layer, stop_at, prefix, prefix_mask, conditioning)
        if conditioning is not None:
            raise ValueError("a conditioning computed ahead serves whole rows: leave it out when rows drop a group")
        B = x[groups[0]].shape[0]
        used = torch.stack([whole[g] if g in whole else torch.ones(B, dtype=torch.bool, device=cond.device)
                            for g in groups], 1)                             # (B, G) which groups each row uses
        patterns, row_pattern = torch.unique(used, dim=0, return_inverse=True)
        parts = []
        for p, pattern in enumerate(patterns.tolist()):
            rows = (row_pattern == p).nonzero().squeeze(1)
            keep = [g for g, u in zip(groups, pattern) if u]
            if not keep:
                raise ValueError("a row with every token group masked out has nothing to attend to")
            sub_tau = tau.index_select(0, rows) if isinstance(tau, torch.Tensor) else \
                {g: tau[g].index_select(0, rows) for g in keep}
            sub_mask = {g: key_mask[g].index_select(0, rows) for g in keep if g in key_mask}
            out = self._run({g: x[g].index_select(0, rows) for g in keep}, sub_tau, cond.index_select(0, rows),
                            sub_mask, feature_layer, stop_at, None if prefix is None else prefix.select(rows))
            parts.append((rows, keep, out))
        return scatter_rows(parts, x, groups, B)

    def encode_prefix(self, context: torch.Tensor, text: torch.Tensor | None, *, text_drop: torch.Tensor | None = None,
                      state: torch.Tensor | None = None, state_drop: torch.Tensor | None = None,
                      feature_layer: int | None = None, stop_at: int | None = None,
                      keys_only: bool = False, conditioning: Conditioning | None = None) -> PrefixCache:
        """Run the clean context tokens (B, N_ctx, d) alone, tau = 0, and keep every block's keys/values, for
        `forward(..., prefix=cache)` calls of the noisy tokens (models with `attention="prefix"`).

        `keys_only`: the caller needs the keys/values only (a sampler): the last block stops once it has them,
        and the cache holds no `hidden` (so no context velocity or state read-out from it). `conditioning`: the
        context's modulation computed ahead (`conditioning`, e.g. in one batch with a sampler's steps)."""
        if self.cfg.attention != "prefix":
            raise ValueError("encode_prefix needs a model with attention='prefix' (its context attends only to "
                             "itself); this one has attention='full'")
        check_groups(len(self.blocks), {CONTEXT: context}, feature_layer, stop_at)
        if keys_only and (feature_layer is not None or stop_at is not None):
            raise ValueError("keys_only gives no hidden states: not with feature_layer or stop_at")
        if conditioning is not None:
            conditioning.check({CONTEXT: context.shape[1]}, False)
            return self._encode_prefix(context, None, feature_layer, stop_at, keys_only, conditioning)
        cond = self._cond(text, text_drop, state, state_drop, context.shape[0])
        return self._encode_prefix(context, cond, feature_layer, stop_at, keys_only)

    def conditioning(self, sizes: Mapping[str, int] | Sequence[Mapping[str, int]],
                     taus: Sequence[Mapping[str, torch.Tensor]], text: torch.Tensor | None, *,
                     text_drop: torch.Tensor | None = None, state: torch.Tensor | None = None,
                     state_drop: torch.Tensor | None = None) -> list[Conditioning]:
        """The adaLN modulation (every block's and the final layer's) of tokens `sizes` (group -> N_g; or one such
        dict per pass, e.g. a sampler's context, then its steps) at each set of noise levels in `taus` (dict[group,
        (B,)], one value per example and group), all in one batch (each weight read once): `forward(x, taus[i],
        text, ..., conditioning=out[i])` (or `encode_prefix(..., conditioning=out[i])`) then skips it and gives the
        same numbers. `text`/`state` (and the drops) are those the passes get."""
        per = [sizes] * len(taus) if isinstance(sizes, Mapping) else list(sizes)
        groups = [[g for g in GROUPS if g in s] for s in per]
        if not taus or len(per) != len(taus) or any(set(t) != set(gs) or any(v.dim() != 1 for v in t.values())
                                                    for t, gs in zip(taus, groups)):
            raise ValueError("taus: one dict[group, (B,) tensor] per pass, over exactly the groups of its sizes")
        B = taus[0][groups[0][0]].shape[0]
        flat = [(g, t[g].expand(B)) for t, gs in zip(taus, groups) for g in gs]   # R condition rows per example
        types = self.type_embed(torch.tensor([GROUPS.index(g) for g, _ in flat], device=flat[0][1].device))
        c = self.t_embedder(torch.stack([v for _, v in flat], 1)) + \
            self._cond(text, text_drop, state, state_drop, B)[:, None] + types[None]   # (B, R, D), as `_condition`
        dev = c.device.type   # the dtype the tokens' embedding gets (`_run` casts c to it): autocast's, if on
        c = c.to(torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else self.x_embedder.proj.weight.dtype)
        silu_c = F.silu(c)   # each adaLN_modulation is SiLU, then a linear: the SiLU once for all of them
        rows = [F.linear(silu_c, m[-1].weight, m[-1].bias) for m in
                [block.adaLN_modulation for block in self.blocks] + [self.final_layer.adaLN_modulation]]
        mods = [modulation_ahead(m, [len(gs) for gs in groups], 6 if i < len(self.blocks) else 2)
                for i, m in enumerate(rows)]
        routes = {tuple(s[g] for g in gs): TokenRoute(torch.repeat_interleave(torch.arange(len(gs)), torch.tensor(
            [s[g] for g in gs])).to(c.device)) for s, gs in zip(per, groups)}     # token -> row, per pass
        return [Conditioning(sizes={g: s[g] for g in gs}, blocks=[m[k] for m in mods[:-1]], final=mods[-1][k],
                             route=routes[tuple(s[g] for g in gs)]) for k, (s, gs) in enumerate(zip(per, groups))]

    def _encode_prefix(self, context: torch.Tensor, cond: torch.Tensor | None, feature_layer: int | None,
                       stop_at: int | None, keys_only: bool = False,
                       conditioning: Conditioning | None = None) -> PrefixCache:
        B, n = context.shape[:2]
        h = self.embed_tokens(CONTEXT, context)                              # (B, N_ctx, D)
        if conditioning is None:
            c, route = self._condition([CONTEXT], [n], {CONTEXT: h.new_zeros(B)}, cond, B)
            c, mods = c.to(h.dtype), [None] * len(self.blocks)
        else:
            c, route, mods = None, conditioning.route, conditioning.blocks
        kv, features, last = [], None, stop_at or len(self.blocks)
        for i, (block, mod) in enumerate(zip(self.blocks, mods), start=1):
            if i > last:
                break
            h, block_kv = block(h, c, route, None, pre_mod=mod, keys_only=keys_only and i == last)   # h None: keys_only
            kv.append(block_kv)
            if i == feature_layer:
                features = self.projector(h)
        return PrefixCache(kv=kv, hidden=h, features=h if stop_at is not None else features, c=c, route=route)

    def _cond(self, text: torch.Tensor | None, text_drop: torch.Tensor | None, state: torch.Tensor | None,
              state_drop: torch.Tensor | None, B: int) -> torch.Tensor:
        """The per-example part of every token's condition (B, D): text embedding (+ state embedding)."""
        if state is not None and self.state_embedder is None:
            raise ValueError("this model has no state input (model.state_dim=0) but was given a state")
        if state is not None and state.shape != (B, self.cfg.state_dim):
            raise ValueError(f"state must be (B, {self.cfg.state_dim}) = ({B}, {self.cfg.state_dim}), "
                             f"got {tuple(state.shape)}")
        cond = self.text_embedder(text, text_drop, B)                        # (B, D)
        return cond if self.state_embedder is None else cond + self.state_embedder(state, state_drop, B)

    def _run(self, x: Mapping[str, torch.Tensor], tau: Mapping[str, torch.Tensor] | torch.Tensor,
             cond: torch.Tensor | None, key_mask: Mapping[str, torch.Tensor] | None, feature_layer: int | None,
             stop_at: int | None, prefix: PrefixCache | None, prefix_mask: bool = False,
             conditioning: Conditioning | None = None) -> DiTOutput:
        """One pass over the tokens of `x` (after a cached `prefix`, if given), conditioned on `cond` (B, D) or on
        the modulation computed ahead (`conditioning`)."""
        groups = [g for g in GROUPS if g in x]
        B = x[groups[0]].shape[0]
        sizes = [x[g].shape[1] for g in groups]
        h = self.embed_tokens(groups[0], x[groups[0]]) if len(groups) == 1 else \
            torch.cat([self.embed_tokens(g, x[g]) for g in groups], dim=1)  # (B, N, D)
        if conditioning is None:
            c, route = self._condition(groups, sizes, tau, cond, B)          # (B, M, D), TokenRoute or None
            c, mods, final = c.to(h.dtype), [None] * len(self.blocks), None
        else:
            c, route, mods, final = None, conditioning.route, conditioning.blocks, conditioning.final
        attn_mask = attention_mask(groups, sizes, key_mask, B, h.device, prefix, prefix_mask)
        last = stop_at if stop_at is not None else len(self.blocks)
        features = None
        step = prefix is not None and attn_mask is None and feature_layer is None and last == len(self.blocks) \
            and not torch.is_grad_enabled() and all(isinstance(m, tuple) for m in mods)   # a denoising step
        for i, (block, mod) in enumerate(zip(self.blocks, mods), start=1):
            if i > last:
                break
            if step:   # the same math, fewer dispatches
                h = block.step(h, mod, prefix.room(h.shape[1])[i - 1])
                continue
            h, _ = block(h, c, route, attn_mask, None if prefix is None else prefix.kv[i - 1], mod)
            if i == feature_layer:
                features = self.projector(h)                                 # (B, N, D)
        if stop_at is not None:
            return DiTOutput(velocity=None, features=h)
        state_hat = None
        ctx = prefix.hidden if prefix is not None else h[:, :sizes[0]] if groups[0] == CONTEXT else None   # or None
        if self.state_head is not None and ctx is not None:
            state_hat = self.state_head(ctx[:, -self.cfg.tokens_per_frame:].mean(1))  # (B, aux_state_dim)
        h = self.final_layer(h, c, route, final)                             # (B, N, D)
        velocity = {g: self._velocity(g, part, x[g], tau[g] if isinstance(tau, Mapping) else tau)
                    for g, part in zip(groups, h.split(sizes, dim=1) if len(groups) > 1 else [h])}
        return DiTOutput(velocity=velocity, features=features, state=state_hat)

    def _velocity(self, group: str, h: torch.Tensor, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """The output head of one group: (B, N_g, D) -> velocity (B, N_g, d_g)."""
        head = self.final_layer.action_linear if group == ACTIONS else self.final_layer.linear
        out = head(h)                                                        # (B, N_g, d_g)
        if group != ACTIONS and self.cfg.prediction == "x":                  # out = x0_hat
            t = (tau[:, None] if tau.dim() == 1 else tau)[..., None].to(out.dtype)  # (B, N_g or 1, 1)
            out = (x.to(out.dtype) - out) / t.clamp_min(X_PRED_TAU_MIN)
        return out

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
        if missing := [g for g in groups if g not in tau]:
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
