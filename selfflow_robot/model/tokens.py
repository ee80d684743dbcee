"""What passes between `SelfFlowDiT` calls: its output, the clean context's cache (`PrefixCache`), the adaLN
modulation computed ahead of a pass (`Conditioning`), and the re-assembly of row subsets run apart (rows that
drop a token group)."""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from selfflow_robot.constants import GROUPS
from selfflow_robot.model.layers import KeyValue, Modulation, TokenRoute


def check_groups(depth: int, x: Mapping[str, torch.Tensor], feature_layer: int | None,
                 stop_at: int | None) -> list[str]:
    """The token groups of `x` in `GROUPS` order, after checking them and the layers asked for (1..depth)."""
    groups = [g for g in GROUPS if g in x]
    if not groups:
        raise ValueError("SelfFlowDiT.forward needs at least one token group in x")
    if unknown := set(x) - set(GROUPS):
        raise ValueError(f"unknown token groups {sorted(unknown)}; expected a subset of {list(GROUPS)}")
    if feature_layer is not None and stop_at is not None:
        raise ValueError("pass either feature_layer (student) or stop_at (teacher), not both")
    for name, layer in (("feature_layer", feature_layer), ("stop_at", stop_at)):
        if layer is not None and not 1 <= layer <= depth:
            raise ValueError(f"{name}={layer} must be in 1..{depth}")
    return groups


class DiTOutput(NamedTuple):
    """`velocity`: dict[group, (B, N_g, d_g)] (None when `stop_at` is set); `features`: (B, N, D) or None;
    `state`: (B, aux_state_dim) the state read off the last context frame (models with `aux_state_dim > 0`
    given context tokens, without `stop_at`), else None."""

    velocity: dict[str, torch.Tensor] | None
    features: torch.Tensor | None
    state: torch.Tensor | None = None


@dataclass
class PrefixCache:
    """The clean context run on its own (`SelfFlowDiT.encode_prefix`): every block's keys/values for the noisy
    tokens to attend to, the hidden state after the last block run (None when made `keys_only`), and the features
    the caller asked for.

    `c` / `route` are the context tokens' condition rows (`c` None when made from a `Conditioning`). Rows are
    examples; `repeat_interleave(k)` gives each example's cache to k consecutive rows (k noise draws of one window,
    or guidance branches), `select(rows)` picks examples. Both are differentiable, so a training step can share one
    context pass among k draws.
    """

    kv: list[KeyValue]
    hidden: torch.Tensor | None
    features: torch.Tensor | None
    c: torch.Tensor | None
    route: TokenRoute | None
    rooms: dict[int, list[KeyValue]] = field(default_factory=dict, repr=False, compare=False)

    def room(self, n: int) -> list[KeyValue]:
        """Every block's keys/values in buffers with room for n more tokens (B, heads, N_ctx + n, D/heads), the
        context's first: a denoising step (`PerTokenDiTBlock.step`) writes its own into the last n instead of
        concatenating. Made once per n (the context part never changes) and kept; not for autograd."""
        if n not in self.rooms:
            self.rooms[n] = [tuple(torch.cat([t, t.new_empty(*t.shape[:2], n, t.shape[3])], 2) for t in kv)
                             for kv in self.kv]
        return self.rooms[n]

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> PrefixCache:
        route = self.route if self.route is None or not self.route.per_example else TokenRoute(fn(self.route.index))
        opt = lambda t: None if t is None else fn(t)   # noqa: E731 - hidden/features may be absent
        return PrefixCache(kv=[(fn(k), fn(v)) for k, v in self.kv], hidden=opt(self.hidden),
                           features=opt(self.features), c=opt(self.c), route=route)

    def repeat_interleave(self, k: int) -> PrefixCache:
        """Each example's cache for k consecutive rows (row i*k + j = example i)."""
        return self if k == 1 else self._map(lambda t: t.repeat_interleave(k, dim=0))

    def select(self, rows: torch.Tensor) -> PrefixCache:
        """The cache of the examples `rows` (an index tensor)."""
        return self._map(lambda t: t.index_select(0, rows))


@dataclass
class Conditioning:
    """The adaLN-Zero modulation of one set of tokens, computed ahead of the pass (`SelfFlowDiT.conditioning`).

    `blocks[i]`: block i's modulation, rows (B, M, 6D) or, when one row serves every token, the ready
    `Modulation` (`layers.modulation_ahead`); `final`: the final layer's, likewise (2D); `route`: which row each
    token uses (as `SelfFlowDiT._condition` gives it); `sizes`: tokens per group it was made for. The rows depend
    only on the noise levels and the text/state, never on the tokens themselves, so a sampler computes those of
    all its denoising steps in one batch, once per chunk.
    """

    sizes: dict[str, int]
    blocks: list[torch.Tensor | Modulation]
    final: torch.Tensor | Modulation
    route: TokenRoute | None

    def check(self, sizes: Mapping[str, int], splits: bool) -> None:
        """Raise unless it serves a pass over tokens `sizes` that does not split them itself (`splits`: draws > 1,
        or the context in `x` under prefix attention)."""
        if splits:
            raise ValueError("a conditioning computed ahead needs draws=1 and, under prefix attention, the "
                             "context in a cache (prefix=) or split_prefix=False")
        if self.sizes != dict(sizes):
            raise ValueError(f"the conditioning was made for tokens {self.sizes}, not {dict(sizes)}")


def attention_mask(groups: list[str], sizes: list[int], key_mask: Mapping[str, torch.Tensor] | None, B: int,
                   device: torch.device, prefix: PrefixCache | None, prefix_mask: bool) -> torch.Tensor | None:
    """The attention mask of one pass, bool, True = attend: None (attend to all), (B, 1, 1, keys) from `key_mask`
    (keys = the cached prefix, then `x`'s), or (B, 1, N, N) under the prefix pattern, where the context's queries
    see only context keys."""
    if key_mask is None and not prefix_mask:
        return None
    keep = torch.cat([key_mask[g].to(torch.bool) if key_mask is not None and g in key_mask
                      else torch.ones(B, n, dtype=torch.bool, device=device)
                      for g, n in zip(groups, sizes)], dim=1)            # (B, N)
    if prefix is not None:
        keep = torch.cat([torch.ones(B, prefix.kv[0][0].shape[2], dtype=torch.bool, device=device), keep], 1)
    if not prefix_mask:
        return keep[:, None, None, :]                                    # (B, 1, 1, keys)
    is_ctx = torch.arange(sum(sizes), device=device) < sizes[0]          # context comes first
    allowed = keep[:, None, :] & (~is_ctx[:, None] | is_ctx[None, :])[None]   # (B, N queries, N keys)
    return allowed[:, None]                                              # (B, 1, N, N)


def scatter_rows(parts: list[tuple[torch.Tensor, list[str], DiTOutput]], x: Mapping[str, torch.Tensor],
                  groups: list[str], B: int) -> DiTOutput:
    """Put the outputs of row subsets (each over the groups it kept) back into full-batch tensors, zeros where a
    row dropped a group. Differentiable in the parts."""
    sizes = {g: x[g].shape[1] for g in groups}
    first = parts[0][2]

    def tokens(out_t: torch.Tensor, keep: list[str]) -> torch.Tensor:   # (rows, N_kept, D) -> (rows, N, D)
        chunks = dict(zip(keep, out_t.split([sizes[g] for g in keep], dim=1)))
        return torch.cat([chunks[g] if g in chunks else out_t.new_zeros(out_t.shape[0], sizes[g], out_t.shape[2])
                          for g in groups], dim=1)

    def gather(get: Callable[[DiTOutput, list[str]], torch.Tensor]) -> torch.Tensor:
        rows_out = [(rows, get(out, keep)) for rows, keep, out in parts]
        # under autocast one part can come out in bf16 and another in fp32 (zeros for a dropped group)
        dtype = functools.reduce(torch.promote_types, [t.dtype for _, t in rows_out])
        full = rows_out[0][1].new_zeros((B, *rows_out[0][1].shape[1:]), dtype=dtype)
        for rows, t in rows_out:
            full = full.index_copy(0, rows, t.to(dtype))
        return full

    features = None if first.features is None else gather(lambda o, k: tokens(o.features, k))
    velocity = None
    if first.velocity is not None:
        velocity = {}
        for g in groups:   # a velocity has its tokens' shape; rows that dropped the group get zeros
            velocity[g] = gather(lambda o, k, g=g: o.velocity[g] if g in k else
                                 x[g].new_zeros(o.velocity[k[0]].shape[0], *x[g].shape[1:]))
    state = None if first.state is None else gather(lambda o, k: o.state)
    return DiTOutput(velocity=velocity, features=features, state=state)
