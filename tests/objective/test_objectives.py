"""Objective configs, the factory, and 'loss only on noisy, present, in-loss tokens'."""

import pytest
import torch
from omegaconf import OmegaConf

from selfflow_robot.config import load_config, structured
from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE
from selfflow_robot.errors import ConfigError
from selfflow_robot.model import build_model, dit_config
from selfflow_robot.objective import (
    EMA,
    FlowBatch,
    ObjectiveConfig,
    SelfFlowObjective,
    VanillaObjective,
    build_objective,
)
from selfflow_robot.train.config import TrainRunConfig


@pytest.mark.parametrize("name", ["selfflow", "vanilla"])
def test_objective_group_option_is_the_dataclass(name):
    cfg = load_config("train", [f"objective={name}"], schema=TrainRunConfig)
    assert structured(ObjectiveConfig, cfg.objective) == ObjectiveConfig(name=name)


def test_factory_and_default_layers():
    assert isinstance(build_objective({"name": "vanilla"}, dit_config("tiny")), VanillaObjective)
    xl_like = dit_config("tiny", depth=28)
    objective = build_objective(OmegaConf.create({"name": "selfflow"}), xl_like)
    assert isinstance(objective, SelfFlowObjective)
    assert (objective.student_layer, objective.teacher_layer) == (8, 20)    # the released l=8, k=20
    assert objective.cfg.gamma == 0.8 and objective.cfg.ema_decay == 0.9999
    assert ObjectiveConfig().layers(4) == (1, 3)


@pytest.mark.parametrize("bad, match", [({"name": "repa"}, "did you mean|must be one of"),
                                        ({"mask_ratio_video": 0.7}, r"\[0, 0.5\]"),
                                        ({"time_dist": "cosine"}, "must be one of"),
                                        ({"ema_decay": 1.0}, "ema_decay")])
def test_bad_objective_config(bad, match):
    with pytest.raises(ConfigError, match=match):
        structured(ObjectiveConfig, bad)
    with pytest.raises(ConfigError, match="teacher_layer=9"):
        build_objective({"teacher_layer": 9}, dit_config("tiny"))


def make(B=2, seed=0):
    torch.manual_seed(seed)
    cfg = dit_config("tiny", image_size=(16, 24), context_frames=1, horizon=2)
    model, _ = build_model(cfg, with_codec=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    x0 = {g: torch.randn(B, cfg.num_tokens(g), cfg.token_dim(g)) for g in (CONTEXT, FUTURE, ACTIONS)}
    return cfg, model, x0


@pytest.mark.parametrize("name", ["selfflow", "vanilla"])
def test_clean_groups_get_no_loss(name):
    cfg, model, x0 = make()
    batch = FlowBatch(x0, {FUTURE: torch.ones(2, dtype=torch.bool), ACTIONS: torch.zeros(2, dtype=torch.bool)},
                      text=torch.randn(2, 512))
    out = build_objective({"name": name}, cfg)(model, EMA(model).module, batch)
    out.loss.backward()
    # the action head only produces action velocities: with every action clean it gets no gradient
    assert torch.count_nonzero(model.final_layer.action_linear.weight.grad) == 0
    assert torch.count_nonzero(model.final_layer.linear.weight.grad) > 0
    assert out.logs["flow_actions"] == 0


@pytest.mark.parametrize("name", ["selfflow", "vanilla"])
def test_absent_and_unlossed_tokens_do_not_change_the_loss(name):
    cfg, model, x0 = make()
    B, N = x0[FUTURE].shape[:2]
    key_mask = {FUTURE: torch.ones(B, N, dtype=torch.bool)}
    key_mask[FUTURE][:, -6:] = False           # padding frame: absent
    loss_mask = {ACTIONS: torch.tensor([[True, False], [True, True]])}
    noisy = {FUTURE: torch.ones(B, dtype=torch.bool), ACTIONS: torch.ones(B, dtype=torch.bool)}
    objective = build_objective({"name": name}, cfg)
    teacher = EMA(model).module

    def loss(x):
        batch = FlowBatch(x, noisy, text=torch.randn(B, 512, generator=torch.Generator().manual_seed(1)),
                          key_mask=key_mask, loss_mask=loss_mask)
        return objective(model, teacher, batch, generator=torch.Generator().manual_seed(0)).loss

    base = loss(x0)
    changed = {g: v.clone() for g, v in x0.items()}
    changed[FUTURE][:, -6:] += 5.0                # absent tokens: invisible
    assert torch.equal(loss(changed), base)
    changed = {g: v.clone() for g, v in x0.items()}
    changed[FUTURE][:, :3] += 5.0                 # present tokens: they count
    assert not torch.equal(loss(changed), base)


def test_flow_loss_is_velocity_mse_on_noisy_tokens():
    """With a fresh v-prediction model (velocity 0) the vanilla loss is the mean of |eps - x0|^2 over noisy tokens."""
    cfg = dit_config("tiny", image_size=(16, 24), context_frames=1, horizon=2, prediction="v")
    model, _ = build_model(cfg, with_codec=False)
    x0 = {FUTURE: torch.zeros(512, 12, cfg.frame_token_dim)}
    batch = FlowBatch(x0, {FUTURE: torch.ones(512, dtype=torch.bool)})
    out = build_objective({"name": "vanilla"}, cfg)(model, None, batch)
    assert abs(out.logs["flow"].item() - 1.0) < 0.01   # E|eps|^2 per channel


def test_per_example_flow_averages_to_the_flow_loss():
    """`per_example` is each example's own flow error; with equal token counts its mean is the flow loss."""
    cfg = dit_config("tiny", image_size=(16, 24), context_frames=1, horizon=2)
    model, _ = build_model(cfg, with_codec=False)
    x0 = {FUTURE: torch.randn(6, 12, cfg.frame_token_dim)}
    noisy = {FUTURE: torch.tensor([True, True, False, True, False, True])}
    for name in ("vanilla", "selfflow"):
        out = build_objective({"name": name}, cfg)(model, model, FlowBatch(x0, noisy),
                                                   generator=torch.Generator().manual_seed(0))
        assert out.per_example.shape == (6,) and not out.per_example.requires_grad
        assert torch.all(out.per_example[~noisy[FUTURE]] == 0)          # clean examples have no flow loss
        assert torch.allclose(out.per_example[noisy[FUTURE]].mean(), out.logs["flow"], rtol=1e-5)


@pytest.mark.parametrize("name", ["selfflow", "vanilla"])
def test_state_readout_loss_adds_its_weighted_mse_and_trains_the_head(name):
    """model.aux_state_dim > 0: loss = the objective's loss + aux_state_weight · MSE(head, state_target)."""
    torch.manual_seed(0)
    cfg = dit_config("tiny", image_size=(16, 24), context_frames=1, horizon=2, aux_state_dim=8)
    model, _ = build_model(cfg, with_codec=False)
    x0 = {g: torch.randn(2, cfg.num_tokens(g), cfg.token_dim(g)) for g in (CONTEXT, FUTURE, ACTIONS)}
    noisy = {FUTURE: torch.ones(2, dtype=torch.bool), ACTIONS: torch.ones(2, dtype=torch.bool)}
    target = torch.randn(2, 8)
    teacher = EMA(model).module

    def run(weight, state_target):
        batch = FlowBatch(x0, noisy, text=torch.zeros(2, 512), state_target=state_target)
        return build_objective({"name": name, "aux_state_weight": weight}, cfg)(
            model, teacher, batch, generator=torch.Generator().manual_seed(0))

    off, on = run(0.0, target), run(2.0, target)
    # a fresh model's blocks are identities (adaLN-Zero): the read-out sees the clean context tokens only
    read = model(x0, torch.zeros(2), torch.zeros(2, 512)).state
    mse = (read - target).pow(2).mean()
    torch.testing.assert_close(on.logs["state_aux"], mse.detach())
    torch.testing.assert_close(on.loss, off.loss + 2.0 * on.logs["state_aux"])
    on.loss.backward()
    assert model.state_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="got only the head"):
        run(1.0, None)
    with pytest.raises(ValueError, match="set model.aux_state_dim to 7"):
        run(1.0, torch.randn(2, 7))
    with pytest.raises(ConfigError, match="aux_state_weight must be >= 0"):
        structured(ObjectiveConfig, {"aux_state_weight": -1.0})
