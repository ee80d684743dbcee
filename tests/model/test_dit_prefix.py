"""Prefix attention (`model.attention=prefix`): the clean context attends only to itself, so it can be computed
once and its keys/values reused; the cached path must give the numbers of one pass under the prefix mask."""
from __future__ import annotations

import pytest
import torch

from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE
from selfflow_robot.model.build import build_model
from selfflow_robot.model.config import dit_config
from selfflow_robot.model.layers import attend
from selfflow_robot.objective import sample


def _model(attention="prefix", **over):
    torch.manual_seed(0)
    cfg = dit_config("tiny", image_size=(16, 24), depth=3, attention=attention, **over)
    model, _ = build_model(cfg, with_codec=False)
    # a fresh DiT has zero adaLN gates and output layers (its blocks are the identity): draw them so the
    # attention pattern matters
    for p in model.parameters():
        if p.dim() > 1 and p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    return model.eval()


def _window(model, B=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    x = {grp: torch.randn(B, cfg.num_tokens(grp), cfg.token_dim(grp), generator=g)
         for grp in (CONTEXT, FUTURE, ACTIONS)}
    tau = {CONTEXT: torch.zeros(B), FUTURE: torch.rand(B, generator=g),
           ACTIONS: torch.rand(B, cfg.horizon, generator=g)}
    text = torch.randn(B, cfg.text_dim, generator=g)
    return x, tau, text


def _both(model, *args, **kwargs):
    model.split_prefix = True
    cached = model(*args, **kwargs)
    model.split_prefix = False
    masked = model(*args, **kwargs)
    model.split_prefix = True
    return cached, masked


@pytest.mark.parametrize("layer", [None, 2])
def test_cached_context_equals_one_pass_under_the_prefix_mask(layer):
    model = _model(aux_state_dim=8)
    x, tau, text = _window(model)
    key_mask = {FUTURE: torch.tensor([True, False, True])[:, None].expand(3, x[FUTURE].shape[1])}  # row 1: policy
    cached, masked = _both(model, x, tau, text, text_drop=torch.tensor([False, True, False]), key_mask=key_mask,
                           feature_layer=layer)
    present = [0, 2]   # row 1 (a policy example) drops its future frames: zeros come back for them
    for g in (CONTEXT, ACTIONS):
        torch.testing.assert_close(cached.velocity[g], masked.velocity[g], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cached.velocity[FUTURE][present], masked.velocity[FUTURE][present],
                               rtol=1e-4, atol=1e-5)
    assert not cached.velocity[FUTURE][1].any()
    torch.testing.assert_close(cached.state, masked.state, rtol=1e-4, atol=1e-5)
    if layer:
        n_ctx, n_fut = x[CONTEXT].shape[1], x[FUTURE].shape[1]
        used = torch.ones_like(cached.features[..., 0], dtype=torch.bool)
        used[1, n_ctx:n_ctx + n_fut] = False
        torch.testing.assert_close(cached.features[used], masked.features[used], rtol=1e-4, atol=1e-5)
        assert not cached.features[~used].any()


def test_teacher_features_match_too():
    model = _model()
    x, tau, text = _window(model)
    cached, masked = _both(model, x, tau, text, stop_at=2)
    assert cached.velocity is None
    torch.testing.assert_close(cached.features, masked.features, rtol=1e-4, atol=1e-5)


def test_the_context_does_not_see_the_noisy_tokens():
    model = _model()
    model.split_prefix = False   # one pass: the mask alone must keep the context independent of the rest
    x, tau, text = _window(model)
    a = model(x, tau, text, feature_layer=3).features[:, :x[CONTEXT].shape[1]]
    x2 = {**x, FUTURE: torch.randn_like(x[FUTURE]), ACTIONS: torch.randn_like(x[ACTIONS])}
    b = model(x2, tau, text, feature_layer=3).features[:, :x[CONTEXT].shape[1]]
    torch.testing.assert_close(a, b)


def test_a_reused_prefix_cache_serves_many_calls_and_repeats_per_draw():
    model = _model()
    x, tau, text = _window(model, B=2)
    rest = {FUTURE: x[FUTURE], ACTIONS: x[ACTIONS]}
    rest_tau = {FUTURE: tau[FUTURE], ACTIONS: tau[ACTIONS]}
    full = model(x, tau, text)
    cache = model.encode_prefix(x[CONTEXT], text)
    for _ in range(2):   # the cache is read, never changed
        out = model(rest, rest_tau, text, prefix=cache)
        for g in rest:
            torch.testing.assert_close(out.velocity[g], full.velocity[g], rtol=1e-4, atol=1e-5)
    # k draws per window: each example's cache for k consecutive rows
    k = 3
    rep = {g: v.repeat_interleave(k, 0) for g, v in rest.items()}
    rep_tau = {g: v.repeat_interleave(k, 0) for g, v in rest_tau.items()}
    out = model(rep, rep_tau, text.repeat_interleave(k, 0), prefix=cache.repeat_interleave(k))
    torch.testing.assert_close(out.velocity[ACTIONS][::k], full.velocity[ACTIONS], rtol=1e-4, atol=1e-5)
    swap = torch.tensor([1, 0])
    picked = model(rest, rest_tau, text[swap], prefix=cache.select(swap))
    fresh = model(rest, rest_tau, text[swap], prefix=model.encode_prefix(x[CONTEXT][swap], text[swap]))
    torch.testing.assert_close(picked.velocity[ACTIONS], fresh.velocity[ACTIONS])


def test_prefix_and_full_attention_share_the_weights():
    full, _ = build_model(dit_config("tiny", attention="full"), with_codec=False)
    prefix, _ = build_model(dit_config("tiny", attention="prefix"), with_codec=False)
    assert {k: v.shape for k, v in full.state_dict().items()} == {k: v.shape for k, v in prefix.state_dict().items()}
    with pytest.raises(ValueError, match="attention='prefix'"):
        full.encode_prefix(torch.zeros(1, full.cfg.num_tokens(CONTEXT), full.cfg.token_dim(CONTEXT)), None)


def test_full_attention_lets_the_context_see_the_noisy_tokens():
    """The baseline the mask changes: with attention=full the context's features do move with the noise."""
    model = _model(attention="full")
    x, tau, text = _window(model)
    a = model(x, tau, text, feature_layer=3).features[:, :x[CONTEXT].shape[1]]
    b = model({**x, FUTURE: torch.randn_like(x[FUTURE])}, tau, text, feature_layer=3).features[:, :x[CONTEXT].shape[1]]
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("cfg_scale", [1.0, 2.0])
def test_the_sampler_reuses_the_context_cache_with_the_same_result(cfg_scale):
    model = _model()
    x, _, text = _window(model, B=2)
    calls = []
    encode = model.encode_prefix
    model.encode_prefix = lambda *a, **k: calls.append(1) or encode(*a, **k)
    kwargs = dict(steps=4, cfg_scale=cfg_scale, guidance_interval=(0.0, 0.7))
    cached = sample(model, x, [ACTIONS], text, generator=torch.Generator().manual_seed(3), **kwargs)
    assert len(calls) == (1 if cfg_scale == 1.0 else 2)   # once per branch set, not once per step
    model.split_prefix = False
    del model.encode_prefix
    plain = sample(model, x, [ACTIONS], text, generator=torch.Generator().manual_seed(3), **kwargs)
    assert len(calls) == (1 if cfg_scale == 1.0 else 2)   # the one-pass reference never builds a cache
    torch.testing.assert_close(cached[ACTIONS], plain[ACTIONS], rtol=1e-4, atol=1e-5)


def test_a_batch_where_every_row_drops_a_group():
    """All policy examples: the future frames are dropped from every row and come back as zeros."""
    model = _model()
    x, tau, text = _window(model)
    key_mask = {FUTURE: torch.zeros(3, x[FUTURE].shape[1], dtype=torch.bool)}
    out = model(x, tau, text, key_mask=key_mask, feature_layer=2)
    policy_only = model({CONTEXT: x[CONTEXT], ACTIONS: x[ACTIONS]}, {CONTEXT: tau[CONTEXT], ACTIONS: tau[ACTIONS]},
                        text, feature_layer=2)
    assert not out.velocity[FUTURE].any() and out.velocity[FUTURE].shape == x[FUTURE].shape
    torch.testing.assert_close(out.velocity[ACTIONS], policy_only.velocity[ACTIONS])


def test_bf16_autocast_on_the_cpu_attends_in_fp32():
    """Under CPU bf16 autocast (train.precision=bf16) the matmuls run in bf16 but attention in fp32 (torch's bf16
    CPU attention backward is several times slower): same attention numbers as fp32 on the same bf16 inputs,
    bf16 out, and gradients reach every weight."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 16, generator=g).bfloat16().requires_grad_() for _ in range(3))
    mask = torch.rand(9, 9, generator=g) > 0.3
    mask.fill_diagonal_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attend(q, k, v, mask)
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref.bfloat16(), rtol=0, atol=0)
    out.float().sum().backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 for t in (q, k, v))

    model = _model().train()
    x, tau, text = _window(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        velocity = model(x, tau, text).velocity
    sum(vel.float().pow(2).mean() for vel in velocity.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.blocks.parameters())


def test_rows_that_drop_a_group_reassemble_across_dtypes():
    """bf16 weights (as under CUDA autocast, which unlike the CPU's does not promote `index_copy`): rows that keep
    the future frames give bf16 velocities, rows that drop them fp32 zeros; the batch comes back whole."""
    model = _model().to(torch.bfloat16)
    x, tau, text = _window(model)
    key_mask = {FUTURE: torch.ones(3, x[FUTURE].shape[1], dtype=torch.bool)}
    key_mask[FUTURE][0] = False                                   # row 0 is a policy example
    velocity = model(x, tau, text, key_mask=key_mask).velocity
    assert velocity[FUTURE].shape == x[FUTURE].shape and not velocity[FUTURE][0].any()
    assert velocity[FUTURE][1:].abs().sum() > 0 and torch.isfinite(velocity[FUTURE]).all()
