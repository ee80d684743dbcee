"""SelfFlowDiT forward: per-token vs scalar tau, absent groups, key mask, text dropout, teacher/student outputs."""
from itertools import combinations

import pytest
import torch

from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE, GROUPS
from selfflow_robot.errors import ConfigError
from selfflow_robot.model import DiTConfig, SelfFlowDiT, build_model, dit_config
from selfflow_robot.model.dit import X_PRED_TAU_MIN
from selfflow_robot.model.layers import TokenRoute, _route_matmul, _route_select


def randomised_model(**overrides) -> SelfFlowDiT:
    """A tiny model whose zero-initialised (adaLN-Zero, output) weights are randomised, so every path matters.

    Full attention unless asked otherwise: these tests are about one forward pass (prefix attention and its
    cache are checked against that pass in test_dit_prefix.py)."""
    torch.manual_seed(0)
    overrides = {"attention": "full", **overrides}
    model, _ = build_model(dit_config("tiny", image_size=(16, 24), context_frames=2, horizon=2, **overrides),
                           with_codec=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def window(cfg: DiTConfig, B: int = 3, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {grp: torch.randn(B, cfg.num_tokens(grp), cfg.token_dim(grp), generator=g) for grp in GROUPS}


def test_uniform_per_token_tau_equals_scalar_tau():
    model = randomised_model()
    x, text = window(model.cfg), torch.randn(3, 512)
    tau = torch.tensor([0.1, 0.5, 0.93])
    scalar = model(x, tau, text, feature_layer=2)
    per_group = model(x, {g: tau for g in GROUPS}, text, feature_layer=2)
    per_token = model(x, {g: tau[:, None].expand(3, x[g].shape[1]).clone() for g in GROUPS}, text, feature_layer=2)
    for g in GROUPS:
        assert per_token.velocity[g].abs().max() > 1e-3  # not trivially zero
        torch.testing.assert_close(scalar.velocity[g], per_token.velocity[g], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(per_group.velocity[g], per_token.velocity[g], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scalar.features, per_token.features, rtol=1e-5, atol=1e-5)
    # and tau really conditions the output
    other = model(x, tau.flip(0), text)
    assert not torch.allclose(other.velocity[FUTURE], scalar.velocity[FUTURE], atol=1e-4)


def per_token_reference(model, *args, **kwargs):
    """The plain per-token path: adaLN evaluated on every token's own condition vector."""
    model.compress_condition = False
    try:
        return model(*args, **kwargs)
    finally:
        model.compress_condition = True


def test_uniform_tau_matches_plain_per_token_path():
    model = randomised_model()
    x, text = window(model.cfg), torch.randn(3, 512)
    tau = torch.tensor([0.1, 0.5, 0.93])
    fast = model(x, tau, text, feature_layer=2)
    plain = per_token_reference(model, x, {g: tau[:, None].expand(3, x[g].shape[1]) for g in GROUPS}, text,
                                feature_layer=2)
    for g in GROUPS:
        torch.testing.assert_close(fast.velocity[g], plain.velocity[g], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.features, plain.features, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("levels", ["two", "many"])
def test_per_token_tau_compression_matches_plain_path(levels):
    """DTS-style tau (t or s per token) takes the two-level fast path; arbitrary tau falls back to per token."""
    model = randomised_model()
    x, text = window(model.cfg), torch.randn(3, 512)
    g = torch.Generator().manual_seed(2)
    t, s = torch.rand(3, 1, generator=g), torch.rand(3, 1, generator=g)
    tau = {}
    for grp in GROUPS:
        n = x[grp].shape[1]
        tau[grp] = torch.where(torch.rand(3, n, generator=g) < 0.3, s, t) if levels == "two" \
            else torch.rand(3, n, generator=g)
    tau[CONTEXT] = torch.zeros(3, x[CONTEXT].shape[1])
    fast = model(x, tau, text, feature_layer=3)
    plain = per_token_reference(model, x, tau, text, feature_layer=3)
    for grp in GROUPS:
        torch.testing.assert_close(fast.velocity[grp], plain.velocity[grp], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.features, plain.features, rtol=1e-5, atol=1e-5)
    # gradients agree too
    fast.velocity[FUTURE].square().sum().backward()
    g_fast = model.blocks[0].adaLN_modulation[1].weight.grad.clone()
    model.zero_grad()
    per_token_reference(model, x, tau, text).velocity[FUTURE].square().sum().backward()
    torch.testing.assert_close(g_fast, model.blocks[0].adaLN_modulation[1].weight.grad, rtol=1e-4, atol=1e-5)


def test_per_token_tau_mixed_with_per_example_tau():
    model = randomised_model()
    x = window(model.cfg)
    tau_f = torch.rand(3, x[FUTURE].shape[1])
    mixed = model(x, {CONTEXT: torch.zeros(3), FUTURE: tau_f, ACTIONS: torch.full((3,), 0.3)}, None)
    full = model(x, {CONTEXT: torch.zeros(3, x[CONTEXT].shape[1]), FUTURE: tau_f,
                     ACTIONS: torch.full((3, x[ACTIONS].shape[1]), 0.3)}, None)
    for g in GROUPS:
        torch.testing.assert_close(mixed.velocity[g], full.velocity[g])


@pytest.mark.parametrize("groups", [c for n in (1, 2, 3) for c in combinations(GROUPS, n)])
def test_any_group_may_be_absent(groups):
    model = randomised_model()
    x = {g: v for g, v in window(model.cfg, B=2).items() if g in groups}
    out = model(x, torch.rand(2), torch.randn(2, 512), feature_layer=1)
    assert set(out.velocity) == set(groups)
    for g in groups:
        assert out.velocity[g].shape == x[g].shape
        assert torch.isfinite(out.velocity[g]).all()
    assert out.features.shape == (2, sum(x[g].shape[1] for g in groups), model.cfg.hidden_size)


def test_key_mask_excludes_absent_tokens():
    model = randomised_model()
    x, text, tau = window(model.cfg, B=2), torch.randn(2, 512), torch.rand(2)
    key_mask = {g: torch.ones(2, x[g].shape[1], dtype=torch.bool) for g in GROUPS}
    key_mask[FUTURE][0, 5:] = False       # example 0: most future tokens absent (padding)
    key_mask[ACTIONS][1, 1] = False       # example 1: one action absent
    changed = {g: v.clone() for g, v in x.items()}
    changed[FUTURE][0, 5:] += 10 * torch.randn_like(changed[FUTURE][0, 5:])
    changed[ACTIONS][1, 1] += 10.0
    a = model(x, tau, text, key_mask=key_mask)
    b = model(changed, tau, text, key_mask=key_mask)
    torch.testing.assert_close(a.velocity[CONTEXT], b.velocity[CONTEXT])
    torch.testing.assert_close(a.velocity[FUTURE][0, :5], b.velocity[FUTURE][0, :5])
    torch.testing.assert_close(a.velocity[ACTIONS][0], b.velocity[ACTIONS][0])
    torch.testing.assert_close(a.velocity[FUTURE][1], b.velocity[FUTURE][1])
    torch.testing.assert_close(a.velocity[ACTIONS][1, [0]], b.velocity[ACTIONS][1, [0]])
    # without the mask the same change does leak into the other tokens
    c = model(x, tau, text)
    d = model(changed, tau, text)
    assert not torch.allclose(c.velocity[CONTEXT], d.velocity[CONTEXT], atol=1e-4)


def test_text_drop_uses_learned_null_text():
    model = randomised_model()
    x, text, tau = window(model.cfg, B=2), torch.randn(2, 512), torch.rand(2)
    drop = torch.tensor([True, False])
    mixed = model(x, tau, text, text_drop=drop)
    null = model(x, tau, None)
    cond = model(x, tau, text)
    torch.testing.assert_close(mixed.velocity[FUTURE][0], null.velocity[FUTURE][0])
    torch.testing.assert_close(mixed.velocity[FUTURE][1], cond.velocity[FUTURE][1])
    assert not torch.allclose(null.velocity[FUTURE][1], cond.velocity[FUTURE][1], atol=1e-4)


def test_stop_at_returns_raw_hidden_state_and_no_velocity():
    model = randomised_model()
    x, tau = window(model.cfg, B=2), torch.rand(2)
    teacher = model(x, tau, None, stop_at=2)
    assert teacher.velocity is None
    assert teacher.features.shape == (2, sum(v.shape[1] for v in x.values()), model.cfg.hidden_size)
    # the hidden state after block 2 is what the projector sees at feature_layer=2
    student = model(x, tau, None, feature_layer=2)
    torch.testing.assert_close(model.projector(teacher.features), student.features)
    with pytest.raises(ValueError, match="either"):
        model(x, tau, None, stop_at=1, feature_layer=1)
    with pytest.raises(ValueError, match="1..4"):
        model(x, tau, None, stop_at=5)


def test_fresh_model_predicts_zero_velocity_and_positions_differ():
    """adaLN-Zero init: every block is the identity and the output layer is zero."""
    model, _ = build_model(dit_config("tiny", image_size=(16, 24), prediction="v"), with_codec=False)
    x = window(model.cfg, B=1)
    out = model(x, torch.rand(1), None)
    for g in GROUPS:
        assert torch.count_nonzero(out.velocity[g]) == 0


def test_x_prediction_turns_the_clean_estimate_into_the_velocity():
    """prediction=x: a zero head means x0_hat = 0, so frame velocities are x_tau / max(tau, 0.05); actions stay v."""
    model, _ = build_model(dit_config("tiny", image_size=(16, 24), prediction="x"), with_codec=False)
    x = window(model.cfg, B=2)
    tau = {g: torch.rand(2, v.shape[1]) for g, v in x.items()}
    tau[FUTURE][0, :3] = 0.0                                  # clean tokens: the clamp keeps them finite
    out = model(x, tau, None)
    for g in (CONTEXT, FUTURE):
        want = x[g] / tau[g].clamp_min(X_PRED_TAU_MIN)[..., None]
        torch.testing.assert_close(out.velocity[g], want)
    assert torch.count_nonzero(out.velocity[ACTIONS]) == 0
    one = model(x, torch.full((2,), 0.5), None)               # one tau per example broadcasts too
    torch.testing.assert_close(one.velocity[FUTURE], x[FUTURE] / 0.5)
    with pytest.raises(Exception, match="prediction"):
        DiTConfig(prediction="eps")
    # the (frame, row, col) position table gives every frame token its own position
    pos = torch.cat([model.pos_context, model.pos_future])
    assert torch.unique(pos, dim=0).shape[0] == pos.shape[0]


def test_gradients_reach_every_trainable_parameter():
    model = randomised_model().train()
    x = window(model.cfg, B=2)
    out = model(x, {g: torch.rand(2, v.shape[1]) for g, v in x.items()}, torch.randn(2, 512),
                text_drop=torch.tensor([True, False]), feature_layer=2)
    loss = sum(v.square().mean() for v in out.velocity.values()) + out.features.square().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


@pytest.mark.parametrize("per_example", [False, True])
def test_condition_routes_agree(per_example):
    """The CPU (index_select) and CUDA (one-hot matmul) routes copy the same rows, forward and backward."""
    g = torch.Generator().manual_seed(0)
    mod = torch.randn(3, 6, 10, generator=g, requires_grad=True)
    index = torch.randint(0, 6, (3, 40) if per_example else (40,), generator=g)
    grad = torch.randn(3, 40, 10, generator=g)
    a = _route_select(mod, TokenRoute(index))
    (ga,) = torch.autograd.grad(a, mod, grad)
    b = _route_matmul(mod, TokenRoute(index))
    (gb,) = torch.autograd.grad(b, mod, grad)
    expected = mod[torch.arange(3)[:, None], index] if per_example else mod[:, index]
    assert torch.equal(a, expected) and torch.equal(b, expected)
    torch.testing.assert_close(ga, gb)


def test_state_input_conditions_every_token_and_starts_as_a_no_op():
    model = randomised_model(state_dim=8)
    x, text, tau = window(model.cfg, B=2), torch.randn(2, 512), torch.rand(2)
    s1, s2 = torch.randn(2, 8), torch.randn(2, 8)
    a, b = model(x, tau, text, state=s1).velocity, model(x, tau, text, state=s2).velocity
    for g in GROUPS:   # the state reaches every group through the shared condition
        assert not torch.allclose(a[g], b[g], atol=1e-5), g
    drop = torch.tensor([True, False])
    mixed = model(x, tau, text, state=s1, state_drop=drop).velocity
    null = model(x, tau, text).velocity                      # no state = the learned null state
    torch.testing.assert_close(mixed[ACTIONS][0], null[ACTIONS][0])
    torch.testing.assert_close(mixed[ACTIONS][1], a[ACTIONS][1])
    # a fresh model: the state embedding's output layer is zero, so the state changes nothing yet
    torch.manual_seed(0)
    fresh = SelfFlowDiT(dit_config("tiny", image_size=(16, 24), context_frames=2, horizon=2, state_dim=8))
    with torch.no_grad():
        for blk in fresh.blocks:
            blk.adaLN_modulation[-1].weight.normal_(0, 0.05)
        fresh.final_layer.action_linear.weight.normal_(0, 0.05)
        fresh.final_layer.adaLN_modulation[-1].weight.normal_(0, 0.05)
    torch.testing.assert_close(fresh(x, tau, text, state=s1).velocity[ACTIONS],
                               fresh(x, tau, text, state=s2).velocity[ACTIONS])
    with pytest.raises(ValueError, match=r"state must be \(B, 8\)"):
        model(x, tau, text, state=torch.randn(2, 7))
    with pytest.raises(ValueError, match="no state input"):
        randomised_model()(x, tau, text, state=s1)


def test_state_head_reads_the_mean_hidden_state_of_the_last_context_frame():
    """model.aux_state_dim=8: a linear read-out of the last context frame's tokens after the last block;
    none without the head, without context tokens, or for the teacher (`stop_at`)."""
    model = randomised_model(aux_state_dim=8)
    cfg, depth = model.cfg, len(model.blocks)
    x, text, tau = window(model.cfg, B=2), torch.randn(2, 512), torch.rand(2)
    out = model(x, tau, text)
    assert out.state.shape == (2, 8)
    hidden = model(x, tau, text, stop_at=depth)
    assert hidden.state is None
    last_frame = hidden.features[:, cfg.num_tokens(CONTEXT) - cfg.tokens_per_frame:cfg.num_tokens(CONTEXT)]
    torch.testing.assert_close(out.state, model.state_head(last_frame.mean(1)))
    assert model({FUTURE: x[FUTURE], ACTIONS: x[ACTIONS]}, tau, text).state is None
    assert randomised_model()(x, tau, text).state is None
    with pytest.raises(ConfigError, match="aux_state_dim must be >= 0"):
        dit_config("tiny", aux_state_dim=-1)
