"""The EMA teacher: no gradient reaches it, it sees the same x0 and noise at min(t, s), stops at block k;
EMA is exact."""
import pytest
import torch

from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE
from selfflow_robot.model import build_model, dit_config
from selfflow_robot.objective import EMA, FlowBatch, ObjectiveConfig, build_objective


def setup(B=3, seed=0):
    torch.manual_seed(seed)
    cfg = dit_config("tiny", image_size=(16, 24), context_frames=1, horizon=2, depth=5)
    model, _ = build_model(cfg, with_codec=False)
    with torch.no_grad():  # leave adaLN-Zero init so features and outputs are non-trivial
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    x0 = {g: torch.randn(B, cfg.num_tokens(g), cfg.token_dim(g)) for g in (CONTEXT, FUTURE, ACTIONS)}
    noisy = {FUTURE: torch.tensor([True, True, False]), ACTIONS: torch.tensor([True, False, True])}
    batch = FlowBatch(x0, noisy, text=torch.randn(B, 512), text_drop=torch.tensor([False, True, False]))
    return cfg, model, batch


def test_no_gradient_reaches_the_teacher():
    cfg, model, batch = setup()
    ema = EMA(model, 0.9999)
    objective = build_objective(ObjectiveConfig(), cfg)
    out = objective(model, ema.module, batch)
    out.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in ema.module.parameters())
    assert model.projector.linear1.weight.grad is not None and model.projector.linear1.weight.grad.abs().sum() > 0
    assert set(out.logs) >= {"flow", "rep", "teacher_cos"}
    assert 0 < out.logs["rep"] < 2 and -1 <= out.logs["teacher_cos"] <= 1


def test_teacher_sees_same_sample_at_min_t_s_and_stops_at_k():
    cfg, model, batch = setup()
    ema = EMA(model)
    seen = {}

    def capture(name):
        def hook(module, args, kwargs):
            seen[name] = (args, kwargs)
        return hook

    model.register_forward_pre_hook(capture("student"), with_kwargs=True)
    ema.module.register_forward_pre_hook(capture("teacher"), with_kwargs=True)
    calls = []
    for i, block in enumerate(ema.module.blocks):
        block.register_forward_hook(lambda *a, i=i: calls.append(i))
    objective = build_objective(ObjectiveConfig(mask_ratio_video=0.5, mask_ratio_actions=0.5), cfg)
    objective(model, ema.module, batch)
    assert objective.student_layer == 2 and objective.teacher_layer == 4    # round(0.3·5), round(0.7·5)
    # the teacher runs blocks 1..4 only (under prefix attention once for the context, once for the rest)
    assert set(calls) == {0, 1, 2, 3} and seen["teacher"][1]["stop_at"] == 4
    assert seen["student"][1]["feature_layer"] == 2
    (xs, taus, text_s), (xt, taut, text_t) = seen["student"][0], seen["teacher"][0]
    assert torch.equal(text_s, text_t) and torch.equal(seen["student"][1]["text_drop"], seen["teacher"][1]["text_drop"])
    for g in (CONTEXT, FUTURE, ACTIONS):
        noisy = batch.noisy.get(g, torch.zeros(3, dtype=torch.bool))
        assert taut[g].shape == (3,)
        assert (taut[g][:, None] <= taus[g] + 0).all()                      # never noisier, token by token
        clean = ~noisy
        assert torch.equal(xs[g][clean], batch.x0[g][clean]) and torch.equal(xt[g][clean], batch.x0[g][clean])
        if not noisy.any():
            continue
        # where the student token is at the teacher's (cleaner) level, the inputs are identical: same x0, same noise
        same = (taus[g] == taut[g][:, None]) & noisy[:, None]
        assert same.any()
        torch.testing.assert_close(xs[g][same], xt[g][same])
    # with R_M = 0.5 over 24 future tokens both t and s occur: the teacher level is the smaller one, min(t, s)
    for b in (0, 1):
        assert taut[FUTURE][b] == taus[FUTURE][b].min() < taus[FUTURE][b].max()

def test_ema_update_is_exact():
    _, model, _ = setup()
    ema = EMA(model, decay=0.9)
    old = {n: p.clone() for n, p in ema.module.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    new = {n: p.clone() for n, p in model.named_parameters()}
    ema.update(model)
    for n, p in ema.module.named_parameters():
        torch.testing.assert_close(p, 0.9 * old[n] + 0.1 * new[n], rtol=0, atol=1e-6)
    ema.update(model, decay=0.0)
    for n, p in ema.module.named_parameters():
        assert torch.equal(p, new[n])
    assert ema.decay == 0.9


def test_ema_copy_is_independent_and_frozen():
    _, model, _ = setup()
    ema = EMA(model, 0.5)
    with torch.no_grad():
        model.projector.linear1.weight.zero_()
    assert ema.module.projector.linear1.weight.abs().sum() > 0
    assert not ema.module.training
    with pytest.raises(ValueError, match="decay"):
        EMA(model, 1.0)


def test_selfflow_without_teacher_is_a_clear_error():
    cfg, model, batch = setup()
    with pytest.raises(ValueError, match="objective=vanilla"):
        build_objective(ObjectiveConfig(), cfg)(model, None, batch)
