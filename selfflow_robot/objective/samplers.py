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
from selfflow_robot.model.tokens import Conditioning

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
    # prefix attention: the clean context's keys/values are computed once and serve every step (per branch set)
    prefix_model = getattr(getattr(model, "cfg", None), "attention", "full") == "prefix" and CONTEXT in x \
        and len(x) > 1 and getattr(model, "split_prefix", True)
    cached = prefix_model and CONTEXT not in generate
    mask = key_mask if key_mask is None or not cached else {g: m for g, m in key_mask.items() if g != CONTEXT}
    tokens1 = [g for g in GROUPS if g in x and not (cached and g == CONTEXT)]   # the tokens every step runs
    # the adaLN modulation depends on the noise levels and the text/state only: every step's is computed at
    # once, per branch set (not when the pass splits its rows or its context itself)
    ahead = callable(getattr(model, "conditioning", None)) and not mask and not (prefix_model and not cached)

    def branch_set(tau: float) -> tuple[bool, bool, dict]:
        """Whether to guide on text / state at `tau`, and the model's condition keywords for its branches,
        batched: conditional, [null text], [null state]."""
        inside = guidance_interval[0] <= tau <= guidance_interval[1]
        guide_text, guide_state = inside and cfg_scale != 1.0, inside and state_scale != 1.0
        if not (guide_text or guide_state):
            return False, False, {"text": text, **({} if robot_state is None else {"state": robot_state})}
        no, yes = torch.zeros(B, dtype=torch.bool, device=device), torch.ones(B, dtype=torch.bool, device=device)
        text_drop = [no] + [yes] * guide_text + [no] * guide_state
        state_drop = [no] + [no] * guide_text + [yes] * guide_state
        n = len(text_drop)
        kw = {"text": None if text is None else torch.cat([text] * n), "text_drop": torch.cat(text_drop)}
        if robot_state is not None:   # only state-conditioned models take it
            kw.update(state=torch.cat([robot_state] * n), state_drop=torch.cat(state_drop))
        return guide_text, guide_state, kw

    grid = time_grid(steps, method, sde_last)
    plans = [branch_set(tau) for tau in grid[:-1]]
    branches = {(gt, gs): kw for gt, gs, kw in plans}   # at most two branch sets: outside/inside the interval
    taus = [{g: torch.full((B,), tau if g in generate else 0.0, device=device) for g in tokens1} for tau in grid[:-1]]
    conditioning: dict[int, Conditioning] = {}
    caches: dict[tuple[bool, bool], dict] = {}
    for key, kw in branches.items():
        n = 1 + key[0] + key[1]
        extra = {} if mask is None else {"key_mask": {g: torch.cat([m] * n) for g, m in mask.items()}}
        context_kw = {}
        if ahead:   # the modulation of every step of this branch set (and of its context pass) in one batch
            idx = [i for i, plan in enumerate(plans) if plan[:2] == key]
            sizes = [{g: x[g].shape[1] for g in tokens1}] * len(idx)
            rep = [{g: t if n == 1 else torch.cat([t] * n) for g, t in taus[i].items()} for i in idx]
            if cached:
                sizes, rep = [{CONTEXT: x[CONTEXT].shape[1]}, *sizes], [{CONTEXT: x[CONTEXT].new_zeros(n * B)}, *rep]
            out = model.conditioning(sizes, rep, **kw)
            context_kw = {"conditioning": out.pop(0)} if cached else {}
            conditioning.update(zip(idx, out))
        if cached:
            context = x[CONTEXT] if n == 1 else torch.cat([x[CONTEXT]] * n)
            extra["prefix"] = model.encode_prefix(context, **kw, keys_only=True, **context_kw)
        caches[key] = extra

    def velocity(i: int) -> dict[str, torch.Tensor]:
        guide_text, guide_state, kw = plans[i]
        n = 1 + guide_text + guide_state
        ahead_kw = {"conditioning": conditioning[i]} if i in conditioning else {}
        out = model({g: state[g] if n == 1 else torch.cat([state[g]] * n) for g in tokens1},
                    {g: t if n == 1 else torch.cat([t] * n) for g, t in taus[i].items()},
                    **kw, **caches[(guide_text, guide_state)], **ahead_kw).velocity
        if n == 1:
            return out
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

    for i, (tau, tau_next) in enumerate(zip(grid[:-1], grid[1:])):
        dt = tau_next - tau                                                  # < 0
        v = velocity(i)
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
