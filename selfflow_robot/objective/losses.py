"""The two training objectives: `SelfFlowObjective` and `VanillaObjective`, built by `build_objective`.

Both: linear interpolant (t=1 = noise), velocity target eps - x0, MSE on noisy tokens only
(per group: the mean over its noisy, present, in-loss tokens; groups weighted by
`future_weight` / `action_weight`). Self-Flow adds Dual-Timestep Scheduling and
gamma · mean(1 - cos(projector(h_l student), h_k teacher)) over the same tokens. Models with a
state-prediction head (`model.aux_state_dim > 0`) add `aux_state_weight` · MSE(predicted, recorded state).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig

from selfflow_robot.config import structured
from selfflow_robot.constants import ACTIONS, FUTURE, GROUPS
from selfflow_robot.model.build import model_config
from selfflow_robot.model.config import DiTConfig
from selfflow_robot.objective.batch import FlowBatch, LossOutput, state_kwargs
from selfflow_robot.objective.config import ObjectiveConfig
from selfflow_robot.objective.dts import dual_timesteps, mask_ratios, single_timestep
from selfflow_robot.objective.interpolant import interpolate, velocity_target
from selfflow_robot.objective.timesteps import TimeDistribution


class Objective:
    """Common parts: noise draws, interpolation, the masked flow loss."""

    name = "base"

    def __init__(self, cfg: ObjectiveConfig, model_cfg: DiTConfig):
        self.cfg = cfg
        self.model_cfg = model_cfg
        self.time_dist = TimeDistribution.from_config(cfg)
        self.group_weights = {FUTURE: cfg.future_weight, ACTIONS: cfg.action_weight}

    def __call__(self, student: nn.Module, teacher: nn.Module | None, batch: FlowBatch, *,
                 generator: torch.Generator | None = None) -> LossOutput:
        raise NotImplementedError

    @staticmethod
    def _groups(batch: FlowBatch) -> list[str]:
        return [g for g in GROUPS if g in batch.x0]

    @staticmethod
    def _noise(batch: FlowBatch, groups: list[str], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        return {g: torch.randn(batch.x0[g].shape, device=batch.x0[g].device, dtype=batch.x0[g].dtype,
                               generator=generator) for g in groups}

    def flow_loss(self, pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                  weights: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """sum over groups of weight_g · mean over weighted tokens of mean-over-channels squared error.

        Returns (loss, logs, per_example): `per_example` (B,) is the same sum with each example's own
        token mean, detached, so the trainer can log the loss of each mode (world model / policy / joint).
        """
        total = per_example = None
        logs = {}
        for g, w in weights.items():
            err = (pred[g].float() - target[g].float()).pow(2).mean(-1)             # (B, N_g)
            w = w.to(err.dtype)
            loss_g = (err * w).sum() / w.sum().clamp(min=1.0)
            logs[f"flow_{g}"] = loss_g.detach()
            gw = self.group_weights.get(g, 1.0)
            term = gw * loss_g
            total = term if total is None else total + term
            ex = gw * ((err * w).sum(1) / w.sum(1).clamp(min=1.0)).detach()       # (B,)
            per_example = ex if per_example is None else per_example + ex
        if total is None:
            raise ValueError("the batch has no future/actions group to compute a loss on")
        return total, logs, per_example

    def aux_state_loss(self, pred: torch.Tensor | None, batch: FlowBatch) -> torch.Tensor | None:
        """MSE of the model's state read-out against `batch.state_target` (None when either is missing).

        A model with a state head trained on a batch without targets is a wiring mistake: raise, don't skip."""
        if pred is None and batch.state_target is None:
            return None
        if pred is None or batch.state_target is None:
            raise ValueError("the state-prediction loss needs both the model's head (model.aux_state_dim > 0) "
                             "and the batch's state_target; got only the "
                             + ("target" if pred is None else "head"))
        if pred.shape != batch.state_target.shape:
            raise ValueError(f"the state head predicts {tuple(pred.shape[1:])} values per example but the "
                             f"recorded state has {tuple(batch.state_target.shape[1:])}: set model.aux_state_dim "
                             f"to {batch.state_target.shape[-1]}")
        return (pred.float() - batch.state_target.float()).pow(2).mean()

    def with_aux_state(self, loss: torch.Tensor, logs: dict[str, torch.Tensor], pred: torch.Tensor | None,
                       batch: FlowBatch) -> torch.Tensor:
        """`loss` plus the weighted state-prediction loss (logged as `state_aux`), if the model has the head."""
        aux = self.aux_state_loss(pred, batch)
        if aux is None:
            return loss
        logs["state_aux"] = aux.detach()
        return loss + self.cfg.aux_state_weight * aux


class VanillaObjective(Objective):
    """Plain flow matching: one t ~ p(t) per example for all noisy tokens; no teacher (`teacher` is ignored)."""

    name = "vanilla"

    def __call__(self, student: nn.Module, teacher: nn.Module | None, batch: FlowBatch, *,
                 generator: torch.Generator | None = None) -> LossOutput:
        groups = self._groups(batch)
        device = batch.x0[groups[0]].device
        shapes = {g: tuple(batch.x0[g].shape[:2]) for g in groups}
        _, tau = single_timestep(shapes, batch.noisy, self.time_dist, device=device, generator=generator)
        eps = self._noise(batch, groups, generator)
        x_tau = {g: interpolate(batch.x0[g], eps[g], tau[g]) for g in groups}
        out = student(x_tau, tau, batch.text, text_drop=batch.text_drop, key_mask=batch.key_mask,
                      **state_kwargs(batch))
        loss_groups = [g for g in groups if g in batch.noisy]
        target = {g: velocity_target(batch.x0[g], eps[g]) for g in loss_groups}
        flow, logs, per_example = self.flow_loss(out.velocity, target,
                                                 {g: batch.token_weights(g) for g in loss_groups})
        loss = self.with_aux_state(flow, logs, out.state, batch)
        return LossOutput(loss, {"flow": flow.detach(), **logs, "loss": loss.detach()}, per_example)


class SelfFlowObjective(Objective):
    """Self-Flow: DTS for the student, EMA teacher at min(t, s) (forward to block k, no grad),
    L = L_flow + gamma · mean(1 - cos(projector(student h_l), teacher h_k)) over the noisy tokens."""

    name = "selfflow"

    def __init__(self, cfg: ObjectiveConfig, model_cfg: DiTConfig):
        super().__init__(cfg, model_cfg)
        self.student_layer, self.teacher_layer = cfg.layers(model_cfg.depth)
        self.ratios = mask_ratios(cfg, model_cfg.horizon)

    def __call__(self, student: nn.Module, teacher: nn.Module | None, batch: FlowBatch, *,
                 generator: torch.Generator | None = None) -> LossOutput:
        if teacher is None:
            raise ValueError("objective=selfflow needs the EMA teacher (EMA(model).module); "
                             "use objective=vanilla to train without one")
        groups = self._groups(batch)
        device = batch.x0[groups[0]].device
        shapes = {g: tuple(batch.x0[g].shape[:2]) for g in groups}
        dts = dual_timesteps(shapes, batch.noisy, self.ratios, self.time_dist, device=device, generator=generator)
        eps = self._noise(batch, groups, generator)

        # Student: per-token noise levels (t or s); features = projector(hidden state after block l).
        x_student = {g: interpolate(batch.x0[g], eps[g], dts.student[g]) for g in groups}
        out = student(x_student, dts.student, batch.text, text_drop=batch.text_drop, key_mask=batch.key_mask,
                      feature_layer=self.student_layer, **state_kwargs(batch))
        # Teacher: same x0 and noise, every noisy token at the cleaner level min(t, s); clean tokens stay clean.
        with torch.no_grad():
            x_teacher = {g: interpolate(batch.x0[g], eps[g], dts.teacher[g]) for g in groups}
            target_h = teacher(x_teacher, dts.teacher, batch.text, text_drop=batch.text_drop,
                               key_mask=batch.key_mask, stop_at=self.teacher_layer, **state_kwargs(batch)).features

        loss_groups = [g for g in groups if g in batch.noisy]
        weights = {g: batch.token_weights(g) for g in loss_groups}
        target = {g: velocity_target(batch.x0[g], eps[g]) for g in loss_groups}
        flow, logs, per_example = self.flow_loss(out.velocity, target, weights)

        w = torch.cat([weights[g] if g in weights else torch.zeros(shapes[g], dtype=torch.bool, device=device)
                       for g in groups], dim=1).float()                                 # (B, N)
        cos = F.cosine_similarity(out.features.float(), target_h.float(), dim=-1)     # (B, N)
        denom = w.sum().clamp(min=1.0)
        rep = ((1 - cos) * w).sum() / denom
        loss = self.with_aux_state(flow + self.cfg.gamma * rep, logs, out.state, batch)
        logs.update(flow=flow.detach(), rep=rep.detach(), teacher_cos=((cos * w).sum() / denom).detach(),
                    loss=loss.detach())
        return LossOutput(loss, logs, per_example)


OBJECTIVE_CLASSES: dict[str, type[Objective]] = {"selfflow": SelfFlowObjective, "vanilla": VanillaObjective}


def build_objective(cfg: ObjectiveConfig | DictConfig | Mapping[str, Any],
                    model_cfg: DiTConfig | DictConfig | Mapping[str, Any]) -> Objective:
    """The objective named by `cfg.name`, for a backbone described by `model_cfg`."""
    cfg = cfg if isinstance(cfg, ObjectiveConfig) else structured(ObjectiveConfig, cfg)
    return OBJECTIVE_CLASSES[cfg.name](cfg, model_config(model_cfg))
