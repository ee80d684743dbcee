"""`draws=k`: k noise draws of each window share one context pass, and give the loss and gradients of k copies
of the window with the same noise (the copies run the plain one-pass path)."""
from __future__ import annotations

import copy

import pytest
import torch

from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE
from selfflow_robot.model import build_model, dit_config
from selfflow_robot.objective import FlowBatch, build_objective


def _setup(attention: str, aux_state_dim: int = 0, B: int = 3):
    torch.manual_seed(0)
    cfg = dit_config("tiny", image_size=(16, 24), context_frames=2, horizon=2, depth=3, attention=attention,
                     aux_state_dim=aux_state_dim)
    model, _ = build_model(cfg, with_codec=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    g = torch.Generator().manual_seed(1)
    x0 = {grp: torch.randn(B, cfg.num_tokens(grp), cfg.token_dim(grp), generator=g)
          for grp in (CONTEXT, FUTURE, ACTIONS)}
    policy = torch.tensor([False, True, False])            # row 1 is a policy example: no future frames
    batch = FlowBatch(
        x0=x0, noisy={CONTEXT: torch.zeros(B, dtype=torch.bool), FUTURE: ~policy,
                      ACTIONS: torch.tensor([False, True, True])},
        text=torch.randn(B, cfg.text_dim, generator=g), text_drop=torch.tensor([False, False, True]),
        key_mask={FUTURE: (~policy)[:, None].expand(B, cfg.num_tokens(FUTURE))},
        loss_mask={ACTIONS: torch.tensor([[True, True], [True, False], [True, True]])},
        state_target=torch.randn(B, aux_state_dim, generator=g) if aux_state_dim else None)
    return cfg, model, batch


def _loss_and_grads(objective, model, teacher, batch, draws):
    model.zero_grad()
    out = objective(model, teacher, batch, generator=torch.Generator().manual_seed(7), draws=draws)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ["selfflow", "vanilla"])
@pytest.mark.parametrize("attention", ["prefix", "full"])
def test_k_draws_equal_k_copies_with_the_same_noise(name, attention):
    cfg, model, batch = _setup(attention, aux_state_dim=8 if name == "vanilla" else 0)
    objective = build_objective({"name": name}, cfg)
    teacher = copy.deepcopy(model).requires_grad_(False)
    k = 3
    shared, g_shared = _loss_and_grads(objective, model, teacher, batch, draws=k)
    model.split_prefix = teacher.split_prefix = False   # the reference: plain one-pass forwards of k copies
    copies, g_copies = _loss_and_grads(objective, model, teacher, batch.repeat_interleave(k), draws=1)
    torch.testing.assert_close(shared.loss, copies.loss, rtol=1e-4, atol=1e-6)
    for key in shared.logs:
        torch.testing.assert_close(shared.logs[key], copies.logs[key], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(shared.per_example, copies.per_example.reshape(-1, k).mean(1), rtol=1e-4, atol=1e-6)
    assert g_shared.keys() == g_copies.keys()
    for n in g_shared:
        torch.testing.assert_close(g_shared[n], g_copies[n], rtol=2e-3, atol=1e-6, msg=n)


def test_draws_see_independent_noise():
    cfg, model, batch = _setup("prefix")
    objective = build_objective({"name": "vanilla"}, cfg)
    one = objective(model, None, batch, generator=torch.Generator().manual_seed(7), draws=1).loss
    four = objective(model, None, batch, generator=torch.Generator().manual_seed(7), draws=4).loss
    assert not torch.allclose(one, four)
