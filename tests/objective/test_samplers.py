"""Samplers: the Euler ODE and Euler-Maruyama SDE recover a Gaussian whose exact velocity is known; with the real
model: conditioning groups stay clean, CFG algebra and the guidance interval, seeding."""
import pytest
import torch
import torch.nn as nn

from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE
from selfflow_robot.model import DiTOutput, build_model, dit_config
from selfflow_robot.objective import sample, time_grid


class GaussianVelocity(nn.Module):
    """Exact velocity E[eps - x0 | x_tau] for data x0 ~ N(m, s^2) per channel (linear interpolant, t=1 noise)."""

    def __init__(self, m: float, s: float):
        super().__init__()
        self.m, self.s = m, s

    def forward(self, x, tau, text, *, text_drop=None, key_mask=None, feature_layer=None, stop_at=None):
        out = {}
        for g, v in x.items():
            t = tau[g][:, None, None]
            a, var = 1 - t, (1 - t) ** 2 * self.s ** 2 + t ** 2
            r = v - a * self.m
            e_x0 = self.m + a * self.s ** 2 / var * r
            e_eps = t / var * r
            out[g] = e_eps - e_x0
        return DiTOutput(out, None)


@pytest.mark.parametrize("method, steps", [("ode", 50), ("sde", 100)])
def test_samplers_recover_gaussian_data(method, steps):
    model = GaussianVelocity(m=1.5, s=0.3)
    x = {FUTURE: torch.zeros(4000, 4, 2), CONTEXT: torch.full((4000, 3, 2), 7.0)}
    out = sample(model, x, [FUTURE], None, steps=steps, method=method, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[CONTEXT], x[CONTEXT])
    assert abs(out[FUTURE].mean().item() - 1.5) < 0.02
    assert abs(out[FUTURE].std().item() - 0.3) < 0.02


def test_time_grids():
    assert time_grid(4, "ode") == pytest.approx([1, 0.75, 0.5, 0.25, 0])
    grid = time_grid(5, "sde")
    assert grid[0] == 1 and grid[-2] == pytest.approx(0.04) and grid[-1] == 0 and len(grid) == 6


def real_model():
    torch.manual_seed(0)
    cfg = dit_config("tiny", image_size=(16, 24), context_frames=1, horizon=2)
    model, _ = build_model(cfg, with_codec=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = {CONTEXT: torch.randn(2, 6, 192), FUTURE: torch.zeros(2, 12, 192), ACTIONS: torch.zeros(2, 2, 8)}
    return model.eval(), x, torch.randn(2, 512)


def run(model, x, text, **kw):
    return sample(model, x, kw.pop("generate", [ACTIONS]), text, steps=4, generator=torch.Generator().manual_seed(5),
                  **kw)


@pytest.mark.parametrize("method", ["ode", "sde"])
def test_cfg_algebra_and_interval(method):
    model, x, text = real_model()
    plain = run(model, x, text, method=method)
    assert torch.equal(plain[CONTEXT], x[CONTEXT]) and torch.equal(plain[FUTURE], x[FUTURE])
    unguided = run(model, x, None, method=method)
    # cfg_scale 0 = the null-text model
    torch.testing.assert_close(run(model, x, text, method=method, cfg_scale=0.0)[ACTIONS], unguided[ACTIONS])
    # a guidance interval that no step falls into = no guidance
    torch.testing.assert_close(run(model, x, text, method=method, cfg_scale=4.0, guidance_interval=(2.0, 3.0))[ACTIONS],
                               plain[ACTIONS])
    guided = run(model, x, text, method=method, cfg_scale=4.0)
    assert not torch.allclose(guided[ACTIONS], plain[ACTIONS], atol=1e-4)
    # guiding only the last steps changes less than guiding all of them
    late = run(model, x, text, method=method, cfg_scale=4.0, guidance_interval=(0.0, 0.5))
    assert (late[ACTIONS] - plain[ACTIONS]).abs().sum() < (guided[ACTIONS] - plain[ACTIONS]).abs().sum()


def test_sampling_is_seeded_and_any_subset_can_be_generated():
    model, x, text = real_model()
    a = run(model, x, text, generate=[FUTURE, ACTIONS])
    b = run(model, x, text, generate=[FUTURE, ACTIONS])
    assert torch.equal(a[FUTURE], b[FUTURE]) and torch.equal(a[ACTIONS], b[ACTIONS])
    assert not torch.equal(a[FUTURE], x[FUTURE])
    world = run(model, {CONTEXT: x[CONTEXT], FUTURE: x[FUTURE], ACTIONS: torch.ones(2, 2, 8)}, text, generate=[FUTURE])
    assert torch.equal(world[ACTIONS], torch.ones(2, 2, 8))
    with pytest.raises(ValueError, match="need a tensor"):
        sample(model, {CONTEXT: x[CONTEXT]}, [ACTIONS], text)
    with pytest.raises(ValueError, match="text condition"):
        sample(model, x, [ACTIONS], None, cfg_scale=2.0)


def test_state_guidance_algebra():
    """state_scale guides on the robot state against the learned null state, and composes with text CFG:
    v = v_c + (cfg - 1)(v_c - v_null_text) + (state_scale - 1)(v_c - v_null_state)."""
    torch.manual_seed(0)
    cfg = dit_config("tiny", image_size=(16, 24), context_frames=1, horizon=2, state_dim=8)
    model, _ = build_model(cfg, with_codec=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    x = {CONTEXT: torch.randn(2, 6, 192), ACTIONS: torch.zeros(2, 2, 8)}
    text, state = torch.randn(2, 512), torch.randn(2, 8)
    one = dict(steps=1, noise={ACTIONS: torch.randn(2, 2, 8)})  # one Euler step: the output is noise - v
    plain = sample(model, x, [ACTIONS], text, robot_state=state, **one)[ACTIONS]
    null_state = sample(model, x, [ACTIONS], text, **one)[ACTIONS]
    assert not torch.allclose(plain, null_state, atol=1e-4)
    torch.testing.assert_close(sample(model, x, [ACTIONS], text, robot_state=state, state_scale=0.0, **one)[ACTIONS],
                               null_state)
    both = sample(model, x, [ACTIONS], text, robot_state=state, state_scale=2.5, cfg_scale=3.0, **one)[ACTIONS]
    null_text = sample(model, x, [ACTIONS], None, robot_state=state, **one)[ACTIONS]
    # outputs are affine in v with the same noise, so the guidance algebra holds on them too
    expected = plain + 2.0 * (plain - null_text) + 1.5 * (plain - null_state)
    torch.testing.assert_close(both, expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="needs a robot_state"):
        sample(model, x, [ACTIONS], text, state_scale=2.0, **one)
