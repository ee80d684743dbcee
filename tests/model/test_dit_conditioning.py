"""The fast paths of cached sampling: the adaLN modulation computed ahead for many passes at once
(`SelfFlowDiT.conditioning`), a keys-only context cache (`encode_prefix(keys_only=True)`) and the fused
LayerNorm + modulation. Each must give the numbers of the plain path."""
from __future__ import annotations

import pytest
import torch

from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE
from selfflow_robot.model.build import build_model
from selfflow_robot.model.config import dit_config
from selfflow_robot.model.layers import gelu_tanh, norm_modulate
from selfflow_robot.objective import sample

TOL = dict(rtol=1e-4, atol=1e-5)


def _model(attention="prefix", **over):
    torch.manual_seed(0)
    cfg = dit_config("tiny", image_size=(16, 24), depth=3, attention=attention, **over)
    model, _ = build_model(cfg, with_codec=False)
    for p in model.parameters():   # a fresh DiT's zero adaLN and output layers would hide the modulation
        if p.dim() > 1 and p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    return model.eval()


def _window(model, B, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    x = {grp: torch.randn(B, cfg.num_tokens(grp), cfg.token_dim(grp), generator=g)
         for grp in (CONTEXT, FUTURE, ACTIONS)}
    return x, torch.randn(B, cfg.text_dim, generator=g)


@pytest.mark.parametrize("B", [1, 3])
def test_conditioning_ahead_equals_the_pass_computing_it_with_a_cache(B):
    model = _model(state_dim=8)
    x, text = _window(model, B)
    state, drop = torch.randn(B, 8), torch.arange(B) % 2 == 1
    kw = dict(text_drop=drop, state=state, state_drop=~drop)
    cache = model.encode_prefix(x[CONTEXT], text, **kw)
    rest = {FUTURE: x[FUTURE], ACTIONS: x[ACTIONS]}
    taus = [{FUTURE: torch.rand(B), ACTIONS: torch.full((B,), t)} for t in (1.0, 0.6, 0.1)]
    ahead = model.conditioning({g: v.shape[1] for g, v in rest.items()}, taus, text, **kw)
    assert len(ahead) == 3
    outs = []
    for tau, cond in zip(taus, ahead):
        want = model(rest, tau, text, prefix=cache, **kw)
        got = model(rest, tau, text, prefix=cache, conditioning=cond, **kw)
        for g in rest:
            torch.testing.assert_close(got.velocity[g], want.velocity[g], **TOL)
        outs.append(got.velocity[ACTIONS])
    assert not torch.allclose(outs[0], outs[2], atol=1e-3)   # the noise level does reach the tokens


@pytest.mark.parametrize("attention", ["full", "prefix"])
def test_conditioning_ahead_in_one_pass_over_every_group(attention):
    """Full attention, or prefix attention run as one masked pass (split_prefix=False): the modulation covers the
    context tokens (tau = 0) too."""
    model = _model(attention)
    model.split_prefix = False
    x, text = _window(model, 2)
    tau = {CONTEXT: torch.zeros(2), FUTURE: torch.tensor([0.3, 0.9]), ACTIONS: torch.tensor([0.5, 0.2])}
    (cond,) = model.conditioning({g: v.shape[1] for g, v in x.items()}, [tau], text)
    want, got = model(x, tau, text, feature_layer=2), model(x, tau, text, feature_layer=2, conditioning=cond)
    for g in x:
        torch.testing.assert_close(got.velocity[g], want.velocity[g], **TOL)
    torch.testing.assert_close(got.features, want.features, **TOL)


def test_conditioning_ahead_refuses_what_it_was_not_made_for():
    model = _model()
    x, text = _window(model, 2)
    cache = model.encode_prefix(x[CONTEXT], text)
    (cond,) = model.conditioning({ACTIONS: x[ACTIONS].shape[1]}, [{ACTIONS: torch.rand(2)}], text)
    with pytest.raises(ValueError, match="made for tokens"):
        model({ACTIONS: x[ACTIONS][:, :2]}, torch.rand(2), text, prefix=cache, conditioning=cond)
    with pytest.raises(ValueError, match="split_prefix=False"):   # the pass would split the context off itself
        model(x, torch.rand(2), text, conditioning=cond)
    with pytest.raises(ValueError, match="one dict"):
        model.conditioning({ACTIONS: 4}, [{ACTIONS: torch.rand(2, 4)}], text)   # per-token levels
    mask = {FUTURE: torch.tensor([True, False])[:, None].expand(2, x[FUTURE].shape[1])}
    rest = {FUTURE: x[FUTURE], ACTIONS: x[ACTIONS]}
    (both,) = model.conditioning({g: v.shape[1] for g, v in rest.items()}, [{g: torch.rand(2) for g in rest}], text)
    with pytest.raises(ValueError, match="whole rows"):   # row 1 drops its future frames
        model(rest, {g: torch.rand(2) for g in rest}, text, prefix=cache, key_mask=mask, conditioning=both)


def test_a_keys_only_cache_serves_the_noisy_tokens_the_same():
    model = _model(aux_state_dim=8)
    x, text = _window(model, 2)
    full, lean = model.encode_prefix(x[CONTEXT], text), model.encode_prefix(x[CONTEXT], text, keys_only=True)
    assert lean.hidden is None and full.hidden is not None
    for (k, v), (k2, v2) in zip(full.kv, lean.kv):
        torch.testing.assert_close(k2, k, **TOL)
        torch.testing.assert_close(v2, v, **TOL)
    tau = torch.tensor([0.4, 0.7])
    a = model({ACTIONS: x[ACTIONS]}, tau, text, prefix=full)
    b = model({ACTIONS: x[ACTIONS]}, tau, text, prefix=lean.repeat_interleave(2).select(torch.tensor([0, 2])))
    torch.testing.assert_close(b.velocity[ACTIONS], a.velocity[ACTIONS], **TOL)
    assert a.state is not None and b.state is None   # no hidden state: no state read-out from it
    with pytest.raises(ValueError, match="keys_only"):
        model.encode_prefix(x[CONTEXT], text, keys_only=True, feature_layer=1)


@pytest.mark.parametrize("B, M", [(1, 1), (1, 5), (2, 1), (2, 5)])
def test_fused_norm_and_modulation(B, M):
    """B = 1 with one row goes through the norm's affine parameters; every case equals LN, then modulate."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 5, 16, generator=g) * 3 + 1
    shift, scale = torch.randn(B, M, 16, generator=g), torch.randn(B, M, 16, generator=g)
    want = torch.nn.functional.layer_norm(x, (16,), eps=1e-6) * (1 + scale) + shift
    torch.testing.assert_close(norm_modulate(x, shift, 1 + scale), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cfg_scale, state_scale, method", [(1.0, 1.0, "ode"), (3.0, 1.0, "ode"), (2.0, 1.5, "sde")])
def test_the_sampler_with_conditioning_ahead_equals_the_plain_sampler(cfg_scale, state_scale, method):
    """The sampler computes every step's modulation at once (per branch set: guided steps run 2-3 branches) and
    a keys-only cache; without `model.conditioning` it runs the plain forward every step."""
    model = _model(state_dim=8)
    x, text = _window(model, 2)
    x = {CONTEXT: x[CONTEXT], ACTIONS: x[ACTIONS]}
    calls = []
    forward = model.forward
    model.forward = lambda *a, **k: calls.append("conditioning" in k) or forward(*a, **k)
    kw = dict(steps=5, method=method, cfg_scale=cfg_scale, state_scale=state_scale, guidance_interval=(0.0, 0.7),
              robot_state=torch.randn(2, 8))
    fast = sample(model, x, [ACTIONS], text, generator=torch.Generator().manual_seed(3), **kw)
    assert calls == [True] * 5
    model.conditioning = None   # the plain path: each forward computes its own modulation
    plain = sample(model, x, [ACTIONS], text, generator=torch.Generator().manual_seed(3), **kw)
    assert calls[5:] == [False] * 5
    torch.testing.assert_close(fast[ACTIONS], plain[ACTIONS], **TOL)
    del model.conditioning
    model.split_prefix = False   # the one-pass reference (whose modulation also comes ahead)
    ref = sample(model, x, [ACTIONS], text, generator=torch.Generator().manual_seed(3), **kw)
    torch.testing.assert_close(fast[ACTIONS], ref[ACTIONS], **TOL)


@pytest.mark.parametrize("B", [1, 3])
def test_the_denoising_step_path_equals_the_blocks(B):
    """Tokens that share one modulation row against a cache, without autograd, run `PerTokenDiTBlock.step`
    (keys/values written into the cache's room, no concatenation): the numbers of the blocks' forward."""
    model = _model()
    x, text = _window(model, B)
    cache = model.encode_prefix(x[CONTEXT], text, keys_only=True)
    taus = [{ACTIONS: torch.full((B,), t)} for t in (0.9, 0.3)]
    ahead = model.conditioning({ACTIONS: x[ACTIONS].shape[1]}, taus, text)
    steps = []
    for block in model.blocks:
        block.step = (lambda f: lambda *a: steps.append(1) or f(*a))(block.step)
    with torch.inference_mode():
        for j, (tau, cond) in enumerate(zip(taus, ahead)):   # the room is reused: each step overwrites its part
            tokens = {ACTIONS: x[ACTIONS] * (1 + j)}
            want = model(tokens, tau, text, prefix=cache).velocity[ACTIONS]
            assert not steps
            got = model(tokens, tau, text, prefix=cache, conditioning=cond).velocity[ACTIONS]
            assert len(steps) == len(model.blocks)
            steps.clear()
            torch.testing.assert_close(got, want, **TOL)
    n_ctx = x[CONTEXT].shape[1]
    for (k, v), (rk, rv) in zip(cache.kv, cache.room(x[ACTIONS].shape[1])):
        assert rk.shape[2] == n_ctx + x[ACTIONS].shape[1]
        assert torch.equal(rk[:, :, :n_ctx], k) and torch.equal(rv[:, :, :n_ctx], v)


def test_gelu_tanh_is_torchs_gelu():
    x = torch.cat([torch.linspace(-12, 12, 40001), torch.tensor([-1e30, -3e4, 3e4, 1e30])]).reshape(1, -1, 1)
    want = torch.nn.functional.gelu(x.double(), approximate="tanh")
    for grad in (False, True):   # the in-place formula (no autograd, large tensor), then torch's kernel
        with torch.set_grad_enabled(grad):
            got = gelu_tanh(x.clone().requires_grad_(grad))
        torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    small = torch.randn(4, 512)
    torch.testing.assert_close(gelu_tanh(small), torch.nn.functional.gelu(small, approximate="tanh"))


@pytest.mark.parametrize("B", [1, 2])
def test_one_batch_for_the_context_pass_and_the_steps(B):
    """Passes over different groups (the context, then the steps) in one `conditioning` call: the context's feeds
    `encode_prefix` and gives the cache it makes itself; the steps' give the pass's own numbers."""
    model = _model()
    x, text = _window(model, B)
    n_ctx, H = x[CONTEXT].shape[1], x[ACTIONS].shape[1]
    drop = torch.arange(B) % 2 == 1
    taus = [{CONTEXT: torch.zeros(B)}, {ACTIONS: torch.full((B,), 0.8)}, {ACTIONS: torch.full((B,), 0.2)}]
    ctx, *steps = model.conditioning([{CONTEXT: n_ctx}, {ACTIONS: H}, {ACTIONS: H}], taus, text, text_drop=drop)
    with torch.inference_mode():
        want = model.encode_prefix(x[CONTEXT], text, text_drop=drop, keys_only=True)
        got = model.encode_prefix(x[CONTEXT], text, text_drop=drop, keys_only=True, conditioning=ctx)
        assert got.c is None
        for (k, v), (k2, v2) in zip(want.kv, got.kv):
            torch.testing.assert_close(k2, k, **TOL)
            torch.testing.assert_close(v2, v, **TOL)
        for tau, cond in zip(taus[1:], steps):
            a = model({ACTIONS: x[ACTIONS]}, tau, text, text_drop=drop, prefix=want).velocity[ACTIONS]
            b = model({ACTIONS: x[ACTIONS]}, tau, text, text_drop=drop, prefix=got, conditioning=cond)
            torch.testing.assert_close(b.velocity[ACTIONS], a, **TOL)
    with pytest.raises(ValueError, match="made for tokens"):
        model.encode_prefix(x[CONTEXT], text, conditioning=steps[0])
