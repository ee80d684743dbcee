"""Samplers: integrate tau 1 -> 0 for the generated groups while the other groups stay clean (tau = 0).

`ode`: Euler on dx/dtau = v. `sde`: Euler-Maruyama on the reverse SDE with diffusion g(tau)^2 = 2·tau
(REPA/SiT "sigma" form), from tau = 1 to `sde_last`, then one deterministic step to 0.
Classifier-free guidance on the text: v = v_null + cfg_scale·(v_text - v_null), applied only while
tau lies in `guidance_interval` (the released sampler guides for tau in [0, 0.7]). Guidance on the
robot state works the same way with the learned null state (`state_scale`; models trained with
`train.state_dropout > 0`); both together add up: v = v_c + (cfg - 1)(v_c - v_null_text) +
(state_scale - 1)(v_c - v_null_state), one batched forward of up to three branches.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

from selfflow_robot.config import check_choice
from selfflow_robot.constants import CONTEXT, GROUPS
from selfflow_robot.model.tokens import PrefixCache

METHODS = ("ode", "sde")


def time_grid(steps: int, method: str, sde_last: float = 0.04) -> list[float]:
    """Noise levels visited, from 1 down to 0 (steps + 1 values)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if method == "ode" or steps == 1:
        grid = torch.linspace(1.0, 0.0, steps + 1)
    else:
        grid = torch.cat([torch.linspace(1.0, sde_last, steps), torch.zeros(1)])
    return grid.tolist()


def _score(x: torch.Tensor, v: torch.Tensor, tau: float) -> torch.Tensor:
    """grad log p_tau(x) from the velocity: E[eps | x] = x + (1 - tau)·v, score = -E[eps | x] / tau."""
    return -(x + (1 - tau) * v) / tau


@torch.no_grad()
def sample(model: nn.Module, x: Mapping[str, torch.Tensor], generate: Sequence[str], text: torch.Tensor | None,
           *, steps: int = 20, method: str = "ode", cfg_scale: float = 1.0,
           guidance_interval: tuple[float, float] = (0.0, 1.0), key_mask: Mapping[str, torch.Tensor] | None = None,
           generator: torch.Generator | None = None, noise: Mapping[str, torch.Tensor] | None = None,
           sde_last: float = 0.04, robot_state: torch.Tensor | None = None,
           state_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Generate the groups in `generate` conditioned on the clean groups of `x`.

    Args:
        model: a `SelfFlowDiT` (its mode is left as it is; call `.eval()` first).
        x: dict[group, (B, N_g, d_g)]: clean tokens of the conditioning groups, and tensors of the right shape
            (values ignored) for the generated groups.
        generate: groups to generate, e.g. `[ACTIONS]` (policy) or `[FUTURE]` (world model).
        text: (B, text_dim) instruction embeddings, or None (null text).
        steps: number of model evaluations per guidance branch.
        method: `ode` (Euler) or `sde` (Euler-Maruyama).
        cfg_scale: 1.0 = no guidance (one forward per step); otherwise two (text and null text).
        guidance_interval: (lo, hi): guide only while lo <= tau <= hi.
        key_mask: dict[group, (B, N_g) bool], False = absent token.
        generator: RNG for the initial noise and the SDE noise.
        noise: optional initial noise per generated group (overrides the draw).
        robot_state: (B, state_dim) normalised proprioception for a model with `state_dim > 0` (None = the
            learned null state).
        state_scale: guidance on `robot_state` against the learned null state (1.0 = off; > 1 leans harder on
            the state, < 1 towards the image alone). Needs `robot_state`.
    Returns:
        dict[group, Tensor] with every group of `x`: generated groups replaced by the samples.
    """
    check_choice("sampler method", method, METHODS)
    generate = [g for g in GROUPS if g in generate]
    missing = [g for g in generate if g not in x]
    if missing:
        raise ValueError(f"groups to generate {missing} need a tensor of their shape in x")
    if cfg_scale != 1.0 and text is None:
        raise ValueError("classifier-free guidance (cfg_scale != 1) needs a text condition")
    if state_scale != 1.0 and robot_state is None:
        raise ValueError("state guidance (state_scale != 1) needs a robot_state")
    state = dict(x)
    for g in generate:
        ref = x[g]
        state[g] = noise[g].to(ref) if noise is not None and g in noise else \
            torch.randn(ref.shape, device=ref.device, dtype=ref.dtype, generator=generator)
    B = next(iter(x.values())).shape[0]
    device = next(iter(x.values())).device
    extra = {} if robot_state is None else {"state": robot_state}   # only state-conditioned models take it
    # prefix attention: the clean context's keys/values are computed once and serve every step (per branch set)
    cached = getattr(getattr(model, "cfg", None), "attention", "full") == "prefix" and CONTEXT in x \
        and CONTEXT not in generate and len(x) > 1 and getattr(model, "split_prefix", True)
    caches: dict[int, PrefixCache] = {}
    mask = key_mask if key_mask is None or not cached else {g: m for g, m in key_mask.items() if g != CONTEXT}

    def prefix(n: int, text_drop: torch.Tensor | None, state_drop: torch.Tensor | None) -> dict:
        if not cached:
            return {}
        if n not in caches:
            rep = (lambda v: v) if n == 1 else (lambda v: torch.cat([v] * n))
            kw = {} if robot_state is None else {"state": rep(robot_state), "state_drop": state_drop}
            caches[n] = model.encode_prefix(rep(x[CONTEXT]), None if text is None else rep(text),
                                            text_drop=text_drop, **kw)
        return {"prefix": caches[n]}

    def tokens(n: int) -> dict[str, torch.Tensor]:
        return {g: (v if n == 1 else torch.cat([v] * n)) for g, v in state.items() if not (cached and g == CONTEXT)}

    def velocity(tau: float) -> dict[str, torch.Tensor]:
        t = {g: torch.full((B,), tau if g in generate else 0.0, device=device) for g in tokens(1)}
        inside = guidance_interval[0] <= tau <= guidance_interval[1]
        guide_text, guide_state = inside and cfg_scale != 1.0, inside and state_scale != 1.0
        if not (guide_text or guide_state):
            return model(tokens(1), t, text, key_mask=mask, **extra, **prefix(1, None, None)).velocity
        # branches, batched: conditional, [null text], [null state]
        no, yes = torch.zeros(B, dtype=torch.bool, device=device), torch.ones(B, dtype=torch.bool, device=device)
        text_drop, state_drop = [no], [no]
        if guide_text:
            text_drop, state_drop = text_drop + [yes], state_drop + [no]
        if guide_state:
            text_drop, state_drop = text_drop + [no], state_drop + [yes]
        n = len(text_drop)

        def rep(v: torch.Tensor) -> torch.Tensor:
            return torch.cat([v] * n)

        kwargs = {} if robot_state is None else {"state": rep(robot_state), "state_drop": torch.cat(state_drop)}
        out = model(tokens(n), {g: rep(v) for g, v in t.items()},
                    None if text is None else rep(text), text_drop=torch.cat(text_drop),
                    key_mask=None if mask is None else {g: rep(m) for g, m in mask.items()}, **kwargs,
                    **prefix(n, torch.cat(text_drop), kwargs.get("state_drop"))).velocity
        result = {}
        for g in generate:
            branch = out[g].chunk(n)
            v, k = branch[0], 1
            if guide_text:
                v, k = branch[k] + cfg_scale * (branch[0] - branch[k]), k + 1
            if guide_state:
                v = v + (state_scale - 1.0) * (branch[0] - branch[k])
            result[g] = v
        return result

    grid = time_grid(steps, method, sde_last)
    for i, (tau, tau_next) in enumerate(zip(grid[:-1], grid[1:])):
        dt = tau_next - tau                                                  # < 0
        v = velocity(tau)
        last = i == len(grid) - 2
        for g in generate:
            if method == "ode" or last:
                state[g] = state[g] + dt * v[g].to(state[g].dtype)
            else:
                diffusion = 2.0 * tau                                        # g(tau)^2
                drift = v[g] - 0.5 * diffusion * _score(state[g], v[g], tau)
                dw = torch.randn(state[g].shape, device=device, dtype=state[g].dtype, generator=generator)
                state[g] = state[g] + dt * drift + (diffusion * -dt) ** 0.5 * dw
    return state
