"""Samplers: integrate tau 1 -> 0 for the generated groups while the other groups stay clean (tau = 0).

`ode`: Euler on dx/dtau = v. `sde`: Euler-Maruyama on the reverse SDE with diffusion g(tau)^2 = 2·tau
(REPA/SiT "sigma" form), from tau = 1 to `sde_last`, then one deterministic step to 0.
Classifier-free guidance on the text: v = v_null + cfg_scale·(v_text - v_null), applied only while
tau lies in `guidance_interval` (the released sampler guides for tau in [0, 0.7]).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
import torch.nn as nn

from selfflow_robot.config import check_choice
from selfflow_robot.constants import GROUPS

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
def sample(model: nn.Module, x: Mapping[str, torch.Tensor], generate: Sequence[str], text: Optional[torch.Tensor],
           *, steps: int = 20, method: str = "ode", cfg_scale: float = 1.0,
           guidance_interval: tuple[float, float] = (0.0, 1.0), key_mask: Optional[Mapping[str, torch.Tensor]] = None,
           generator: Optional[torch.Generator] = None, noise: Optional[Mapping[str, torch.Tensor]] = None,
           sde_last: float = 0.04, robot_state: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
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
    state = dict(x)
    for g in generate:
        ref = x[g]
        state[g] = noise[g].to(ref) if noise is not None and g in noise else \
            torch.randn(ref.shape, device=ref.device, dtype=ref.dtype, generator=generator)
    B = next(iter(x.values())).shape[0]
    device = next(iter(x.values())).device
    extra = {} if robot_state is None else {"state": robot_state}   # only state-conditioned models take it

    def velocity(tau: float) -> dict[str, torch.Tensor]:
        t = {g: torch.full((B,), tau if g in generate else 0.0, device=device) for g in state}
        guide = cfg_scale != 1.0 and guidance_interval[0] <= tau <= guidance_interval[1]
        if not guide:
            return model(state, t, text, key_mask=key_mask, **extra).velocity
        both = {g: torch.cat([v, v]) for g, v in state.items()}
        drop = torch.cat([torch.zeros(B, dtype=torch.bool, device=device), torch.ones(B, dtype=torch.bool, device=device)])
        mask2 = {g: torch.cat([m, m]) for g, m in key_mask.items()} if key_mask is not None else None
        extra2 = {} if robot_state is None else {"state": torch.cat([robot_state, robot_state])}
        out = model(both, {g: torch.cat([v, v]) for g, v in t.items()}, torch.cat([text, text]),
                    text_drop=drop, key_mask=mask2, **extra2).velocity
        return {g: out[g][B:] + cfg_scale * (out[g][:B] - out[g][B:]) for g in generate}

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
