"""Dual-Timestep Scheduling: token marginals follow p(t) (KS), masked fraction = R_M, teacher never noisier."""
import pytest
import torch
from scipy import stats

from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE
from selfflow_robot.objective import ObjectiveConfig, TimeDistribution, dual_timesteps, mask_ratios, single_timestep

DISTS = [TimeDistribution("uniform"), TimeDistribution("logit_normal", mean=-0.4, std=1.2),
         TimeDistribution("shifted", shift=3.0)]


def draw(dist, B=4000, ratios=None, seed=0):
    shapes = {CONTEXT: (B, 6), FUTURE: (B, 40), ACTIONS: (B, 4)}
    noisy = {FUTURE: torch.ones(B, dtype=torch.bool), ACTIONS: torch.arange(B) % 2 == 0}
    ratios = ratios or {FUTURE: 0.1, ACTIONS: 0.25}
    return dual_timesteps(shapes, noisy, ratios, dist, device="cpu", generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dist", DISTS, ids=lambda d: d.kind)
def test_each_token_marginal_is_p_t(dist):
    d = draw(dist)
    for token in (0, 17, 39):
        tau = d.student[FUTURE][:, token]
        assert stats.kstest(tau.numpy(), lambda t: dist.cdf(torch.as_tensor(t)).numpy()).pvalue > 1e-3
    tau = d.student[ACTIONS][::2, 3]          # noisy examples only
    assert stats.kstest(tau.numpy(), lambda t: dist.cdf(torch.as_tensor(t)).numpy()).pvalue > 1e-3
    # the test has power: the teacher's min(t, s) is not distributed as p(t)
    t_min = d.teacher[FUTURE]
    assert stats.kstest(t_min.numpy(), lambda t: dist.cdf(torch.as_tensor(t)).numpy()).pvalue < 1e-6


@pytest.mark.parametrize("dist", DISTS, ids=lambda d: d.kind)
def test_sampler_matches_its_cdf(dist):
    t = dist.sample(20000, generator=torch.Generator().manual_seed(3))
    assert t.min() >= 0 and t.max() <= 1
    assert stats.kstest(t.numpy(), lambda x: dist.cdf(torch.as_tensor(x)).numpy()).pvalue > 1e-3


def test_masked_fraction_is_mask_ratio():
    d = draw(TimeDistribution("uniform"), ratios={FUTURE: 0.1, ACTIONS: 0.25})
    assert abs(d.mask[FUTURE].float().mean().item() - 0.1) < 0.005
    assert abs(d.mask[ACTIONS][::2].float().mean().item() - 0.25) < 0.02
    assert not d.mask[ACTIONS][1::2].any() and not d.mask[CONTEXT].any()   # clean tokens are never masked
    # masked tokens carry s, the others t
    s, t = d.s[:, None].expand(-1, 40), d.t[:, None].expand(-1, 40)
    assert torch.equal(d.student[FUTURE][d.mask[FUTURE]], s[d.mask[FUTURE]])
    assert torch.equal(d.student[FUTURE][~d.mask[FUTURE]], t[~d.mask[FUTURE]])


def test_mask_ratio_per_modality_defaults():
    cfg = ObjectiveConfig()
    assert mask_ratios(cfg, horizon=4)[FUTURE] == 0.1     # video
    assert mask_ratios(cfg, horizon=1)[FUTURE] == 0.25    # a single image
    assert mask_ratios(cfg, horizon=4)[ACTIONS] == cfg.mask_ratio_actions


def test_teacher_never_noisier_and_clean_stays_clean():
    d = draw(TimeDistribution("uniform"))
    for g in (FUTURE, ACTIONS):
        assert (d.teacher[g][:, None] <= d.student[g]).all()
    assert torch.equal(d.teacher[FUTURE], torch.minimum(d.t, d.s))
    assert (d.student[CONTEXT] == 0).all() and (d.teacher[CONTEXT] == 0).all()
    assert (d.student[ACTIONS][1::2] == 0).all() and (d.teacher[ACTIONS][1::2] == 0).all()


def test_t_and_s_are_not_sorted():
    d = draw(TimeDistribution("uniform"))
    frac = (d.t > d.s).float().mean().item()
    assert 0.45 < frac < 0.55


def test_single_timestep_for_vanilla():
    B = 6
    shapes = {CONTEXT: (B, 3), FUTURE: (B, 5)}
    t, tau = single_timestep(shapes, {FUTURE: torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool)},
                             TimeDistribution(), device="cpu")
    assert tau[FUTURE].shape == (B,) and (tau[CONTEXT] == 0).all()
    assert torch.equal(tau[FUTURE][[0, 1, 3, 5]], t[[0, 1, 3, 5]]) and (tau[FUTURE][[2, 4]] == 0).all()
